"""`nmt demo`: the whole toolkit on the built-in toy task, in a few minutes on 2 CPU cores."""

from __future__ import annotations

from pathlib import Path

from nmt.atomic import atomic_write_text
from nmt.config import config_from_dict
from nmt.data.text import read_lines
from nmt.decoding.translator import Translator
from nmt.evaluation import score
from nmt.toy import write_toy_corpus
from nmt.training.trainer import train

DEMO_SETTINGS = {
    "tokenizer": {"vocab_size": 100},
    "data": {"batch_size": 64, "max_source_length": 40, "max_target_length": 40},
    "model": {
        "embedding_size": 64,
        "hidden_size": 128,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "dropout": 0.1,
        "input_feeding": True,
    },
    "training": {
        "learning_rate": 0.003,
        "max_steps": 1200,
        "max_epochs": 0,
        "log_every": 100,
        "validate_every": 400,
        "checkpoint_every": 400,
        "label_smoothing": 0.1,
        "decay": "exponential",
        "decay_start": 600,
        "decay_steps": 200,
        "decay_rate": 0.5,
    },
    "decoding": {"beam_size": 5, "batch_size": 64},
}


def run_demo(run_dir: str | Path, max_steps: int | None = None) -> dict:
    """Generates the toy corpus, trains, translates the held-out test file and scores it.

    Returns:
        The scores of `nmt.evaluation.score` on the held-out toy test set.
    """
    run_dir = Path(run_dir)
    paths = write_toy_corpus(run_dir / "data")
    settings = {section: dict(values) for section, values in DEMO_SETTINGS.items()}
    settings["data"].update(
        train_source=str(paths["train.en"]),
        train_target=str(paths["train.de"]),
        valid_source=str(paths["valid.en"]),
        valid_target=str(paths["valid.de"]),
    )
    if max_steps is not None:
        settings["training"]["max_steps"] = max_steps
    train(config_from_dict(settings, base_dir=None), run_dir)
    translator = Translator.load(run_dir)
    sources = list(read_lines(paths["test.en"]))
    hypotheses = translator.translate(sources)
    atomic_write_text(run_dir / "test.hyp.de", "".join(h + "\n" for h in hypotheses))
    scores = score(hypotheses, list(read_lines(paths["test.de"])), lang="de")
    for source, hypothesis in list(zip(sources, hypotheses, strict=True))[:3]:
        print(f"  {source}  ->  {hypothesis}")
    return scores
