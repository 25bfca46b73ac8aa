"""Token ids shared by the tokenizer, the model and the search: fixed so every run agrees."""

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
