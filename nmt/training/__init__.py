"""Loss, learning-rate schedule, checkpoints, validation and the training loop."""
