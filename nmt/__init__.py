"""nmt: GNMT-style LSTM neural machine translation with Keras 3 and TensorFlow.

from nmt import Translator, train, load_config
train(load_config("config.yaml"), "runs/my-run")
Translator.load("runs/my-run").translate(["A man is riding a bike."])
"""

import os

# TensorFlow's C++ start-up chatter hides our own messages; users can still set it themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow turns its oneDNN (MKL) kernels on by itself only on CPUs with AVX512_VNNI, BF16 or
# AMX; elsewhere its matmuls fall back to Eigen. On an AVX2-only CPU oneDNN trained ref-small
# 1.15x faster in float32 (BENCHMARKS.md, sitting N). Read when TensorFlow is first imported, so it
# acts only if nmt is imported first, as by the `nmt` command; a user's own setting wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

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
