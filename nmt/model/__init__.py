"""The GNMT-style encoder-decoder: residual LSTM stacks, attention, step-wise decoding."""
