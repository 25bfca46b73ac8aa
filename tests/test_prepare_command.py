"""`nmt prepare` and tools/data_order.py as a user runs them: several corpora with weights and a
tag, a shared tokenizer and prepared folder, and one-line errors for bad settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import run_nmt

from nmt.data.tokenizer import Tokenizer

DATA_ORDER = Path(__file__).resolve().parents[1] / "tools" / "data_order.py"

CONFIG = """\
tokenizer: {{vocab_size: 60{tokenizer}}}
data:
  train:
    - {{source: {data}/train.en, target: {data}/train.de, name: real}}
    - {{source: {data}/test.en, target: {data}/test.de, name: synthetic, weight: 2, tag: "<bt>"}}
  batch_size: 16
{data_extra}
training: {{max_steps: 10, max_epochs: 0}}
"""


def _config(tmp_path, toy_data, tokenizer="", data_extra="", name="c.yaml") -> Path:
    path = tmp_path / name
    folder = toy_data["train.en"].parent
    path.write_text(CONFIG.format(data=folder, tokenizer=tokenizer, data_extra=data_extra))
    return path


def _data_order(config: Path, run_dir: Path | None, *args: str) -> subprocess.CompletedProcess:
    where = ["--run-dir", str(run_dir)] if run_dir else []
    return subprocess.run(
        [sys.executable, str(DATA_ORDER), "--config", str(config), *where, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_prepare_reports_each_corpus_and_data_order_lists_the_batches(toy_data, tmp_path):
    config = _config(tmp_path, toy_data)
    result = run_nmt("prepare", "--config", str(config), "--run-dir", str(tmp_path / "run"))
    out = result.stdout
    assert "data: real: 2,500 pairs read, 0 with an empty side" in out
    assert "data: synthetic: 100 pairs read" in out and "tagged <bt>" in out
    assert "% unknown" in out
    # 2,500 pairs once and 100 twice, in batches of at most 16.
    assert "epoch 1: 2,700 pairs in " in out
    tokenizer = Tokenizer.load(tmp_path / "run" / "tokenizer")
    assert tokenizer.source_piece_id("<bt>") is not None  # the tag is one piece

    listed = _data_order(config, tmp_path / "run", "--epoch", "1", "--batches", "100000")
    assert listed.returncode == 0, listed.stderr
    words = [line.split() for line in listed.stdout.splitlines()]
    assert all(0 < len(batch) <= 16 for batch in words)
    pairs = [word.split(":") for batch in words for word in batch]
    real = sorted(int(n) for name, n in pairs if name == "real")
    synthetic = sorted(int(n) for name, n in pairs if name == "synthetic")
    assert real == list(range(2500)) and synthetic == sorted(list(range(100)) * 2)
    first = _data_order(config, tmp_path / "run", "--epoch", "2", "--batches", "3")
    assert len(first.stdout.splitlines()) == 3
    # Without a run directory: the tokenizer trained and the data prepared in a scratch folder.
    assert _data_order(config, None, "--epoch", "2", "--batches", "3").stdout == first.stdout
    assert first.stdout != listed.stdout[: len(first.stdout)]  # another order every epoch


def test_runs_share_a_tokenizer_and_a_prepared_folder(toy_data, tmp_path):
    shared = f"  prepared_dir: {tmp_path / 'shared'}"
    first = _config(tmp_path, toy_data, data_extra=shared)
    run_nmt("prepare", "--config", str(first), "--run-dir", str(tmp_path / "one"))
    reuse = f", model: {tmp_path / 'one' / 'tokenizer'}"
    second = _config(tmp_path, toy_data, tokenizer=reuse, data_extra=shared, name="d.yaml")
    result = run_nmt("prepare", "--config", str(second), "--run-dir", str(tmp_path / "two"))
    assert "training the SentencePiece tokenizer" not in result.stdout
    assert result.stdout.count("is up to date") == 2
    one, two = (tmp_path / run / "tokenizer" / "spm.model" for run in ("one", "two"))
    assert one.read_bytes() == two.read_bytes()


def test_bad_corpus_settings_are_one_line_errors(toy_data, tmp_path):
    spm_model = tmp_path / "plain"
    run_nmt(
        "prepare",
        "--config",
        str(_config(tmp_path, toy_data)),
        "--run-dir",
        str(spm_model),
        "--set",
        f"data.train=[{{source: {toy_data['train.en']}, target: {toy_data['train.de']}}}]",
    )
    cases = {
        "zero weight": (["--set", "data.train=[{source: a, target: b, weight: 0}]"], "weight"),
        # A reused tokenizer trained without the tag does not know it.
        "unknown tag": (
            ["--set", f"tokenizer.model={spm_model / 'tokenizer' / 'spm.model'}"],
            "the tag '<bt>' of synthetic is not a piece of the tokenizer",
        ),
        "both forms": (["--set", "data.train_source=x.en"], "data.train must be left out"),
    }
    for name, (flags, message) in cases.items():
        result = run_nmt(
            "prepare",
            "--config",
            str(_config(tmp_path, toy_data)),
            "--run-dir",
            str(tmp_path / name.replace(" ", "-")),
            *flags,
            check=False,
        )
        assert result.returncode == 1, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (name, result.stderr)
