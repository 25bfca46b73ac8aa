"""Text files, SentencePiece tokenizer and tf.data pipelines."""
