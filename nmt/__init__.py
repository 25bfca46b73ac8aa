"""nmt: GNMT-style LSTM neural machine translation with Keras 3 and TensorFlow.

from nmt import Translator, train, load_config
train(load_config("config.yaml"), "runs/my-run")
Translator.load("runs/my-run").translate(["A man is riding a bike."])
"""

import os

# TensorFlow's C++ start-up chatter hides our own messages; users can still set it themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
__all__ = ["Translator", "train", "load_config", "score"]


def __getattr__(name):
    # Lazy, so `nmt --help` and config checks do not pay TensorFlow's import time.
    if name == "Translator":
        from nmt.decoding.translator import Translator

        return Translator
    if name == "train":
        from nmt.training.trainer import train

        return train
    if name == "load_config":
        from nmt.config import load_config

        return load_config
    if name == "score":
        from nmt.evaluation import score

        return score
    raise AttributeError(f"module 'nmt' has no attribute {name!r}")
