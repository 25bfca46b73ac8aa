"""recipes/wmt14: prepare.py cleans the training corpora and checks what it downloads, and run.sh
runs every step end to end on a sample laid out as its local form (DATA_DIR), generated here
from the toy corpus: nothing is downloaded, no data is committed."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "wmt14"


def load_prepare():
    spec = importlib.util.spec_from_file_location("wmt14_prepare", RECIPE / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _gunzip_lines(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()


def write_data_dir(directory: Path, toy_data: dict[str, Path]) -> dict[str, int]:
    """The local form's files, as the archives extract (Europarl and News Commentary under
    training/, CommonCrawl at the top) and as `sacrebleu --echo` writes the test sets. CommonCrawl
    gets an empty English line and a repeated pair. Returns the 1-based lines of those two."""
    english = toy_data["train.en"].read_text().splitlines()
    german = toy_data["train.de"].read_text().splitlines()
    slices = {
        "training/europarl-v7.de-en": slice(0, 1000),
        "commoncrawl.de-en": slice(1000, 2000),
        "training/news-commentary-v9.de-en": slice(2000, 2500),
    }
    for stem, part in slices.items():
        en, de = english[part], german[part]
        if stem == "commoncrawl.de-en":
            en = [*en[:10], "", en[10], *en[11:]]
            de = [*de[:10], "ein satz ohne quelle", de[10], *de[11:]]
            en.insert(20, en[5])  # the pair of line 6 again, at line 21
            de.insert(20, de[5])
        _write(directory / f"{stem}.en", en)
        _write(directory / f"{stem}.de", de)
    for name, split in (("newstest2013", "valid"), ("newstest2014", "test")):
        for lang in ("en", "de"):
            shutil.copy(toy_data[f"{split}.{lang}"], directory / f"{name}.{lang}")
    return {"empty": 11, "duplicate": 21}


def test_cleaning_rules():
    prepare = load_prepare()
    problem = prepare.pair_problem
    assert problem("a house", "ein haus", 250, 9) is None
    assert problem("", "ein haus", 250, 9) == "empty"
    assert problem(" ".join(["w"] * 251), " ".join(["v"] * 251), 250, 9) == "too_long"
    assert problem("a", " ".join(["v"] * 10), 250, 9) == "ratio"
    assert problem("a", " ".join(["v"] * 9), 250, 9) is None
    assert problem("Hotel Adlon", "Hotel Adlon", 250, 9) == "copy"
    seen: set[int] = set()
    assert prepare.judge_pair(b"a  house\t\r\n", b"ein haus\n", seen, 250, 9) == (
        "a house",
        "ein haus",
        None,
    )
    assert prepare.judge_pair(b"a house", b"ein  haus", seen, 250, 9)[2] == "duplicate"
    assert prepare.judge_pair(b"\xff", b"ein haus", seen, 250, 9)[2] == "invalid_utf8"


def _archive(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_a_download_is_recorded_on_first_use_and_checked_after(tmp_path, monkeypatch, capsys):
    """No official checksums yet: the first download's SHA-256 goes to the lock file, said so,
    and a later download that differs from it is refused and not kept."""
    prepare = load_prepare()
    mirror, out = tmp_path / "mirror", tmp_path / "out"
    mirror.mkdir()
    for corpus in prepare.CORPORA:
        _archive(
            mirror / corpus.archive,
            {
                f"training/{corpus.stem}.en": b"a house\nthe cat\n",
                f"training/{corpus.stem}.de": b"ein haus\ndie katze\n",
                "training/europarl-v7.fr-en.fr": b"une maison\n",
            },
        )
    toy = tmp_path / "toy"
    for name in prepare.TEST_SETS:
        _write(toy / f"{name}.en", ["a house"])
        _write(toy / f"{name}.de", ["ein haus"])
    monkeypatch.setattr(
        prepare,
        "sacrebleu_test_set",
        lambda name: prepare.Pair(toy / f"{name}.en", toy / f"{name}.de"),
    )
    argv = ["--out", str(out), "--mirror", mirror.as_uri()]
    assert prepare.main(argv) == 0
    assert "is NOT verified" in capsys.readouterr().out
    lock = json.loads((out / "checksums.lock.json").read_text())
    assert sorted(lock) == sorted(corpus.archive for corpus in prepare.CORPORA)
    archive = prepare.CORPORA[2].archive
    assert lock[archive]["sha256"] == prepare.file_digest(mirror / archive)[1]
    assert _gunzip_lines(out / "europarl-v7.de.gz") == ["ein haus", "die katze"]

    # The mirror now serves another archive: refused, and the recorded copy is left alone.
    shutil.rmtree(out / "raw")
    (out / "downloads" / archive).write_bytes(b"truncated")
    _archive(mirror / archive, {"training/news-commentary-v9.de-en.en": b"changed\n"})
    assert prepare.main(argv) == 1
    assert f"recorded in {out / 'checksums.lock.json'}" in capsys.readouterr().err
    assert (out / "downloads" / archive).read_bytes() == b"truncated"
    assert json.loads((out / "checksums.lock.json").read_text()) == lock


def _stand_ins(bin_dir: Path) -> None:
    """`nmt` and `python` on PATH run this checkout's Python, whatever the shell's PATH."""
    bin_dir.mkdir()
    (bin_dir / "nmt").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m nmt "$@"\n')
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    for name in ("nmt", "python"):
        (bin_dir / name).chmod(0o755)


TINY = {
    "tokenizer.vocab_size": 80,
    "tokenizer.byte_fallback": False,  # 256 byte pieces would not fit in 80
    "data.batch_tokens": 600,
    "model.embedding_size": 16,
    "model.hidden_size": 16,
    "model.encoder_layers": 2,
    "model.decoder_layers": 2,
    "model.compute_dtype": "float32",
    "training.warmup_steps": 0,
    "training.max_steps": 30,
    "training.log_every": 10,
    "training.validate_every": 1_000_000,
    "training.checkpoint_every": 10,
    "training.valid_max_sentences": 8,
    "decoding.beam_size": 2,
    "decoding.batch_size": 128,  # one batch a set: each batch shape is traced anew
    # short outputs: an untrained model writes until the length limit
    "decoding.max_length_ratio": 0.5,
    "decoding.max_length_offset": 5,
}


@pytest.mark.slow
def test_the_recipe_runs_end_to_end_on_a_sample_of_the_local_form(toy_data, tmp_path):
    recipe = tmp_path / "recipe"  # a copy, so that its data/ is written here
    recipe.mkdir()
    for name in ("run.sh", "prepare.py", "results.py", "en-de.yaml"):
        shutil.copy(RECIPE / name, recipe / name)
    shutil.copy(RECIPE.parent / "steps.sh", tmp_path / "steps.sh")  # run.sh's ../steps.sh
    dropped_lines = write_data_dir(tmp_path / "wmt14", toy_data)
    _stand_ins(tmp_path / "bin")
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", RUN_DIR="run")
    overrides = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    result = subprocess.run(
        ["bash", str(recipe / "run.sh"), str(tmp_path / "wmt14"), *overrides],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run, data = tmp_path / "run", recipe / "data"

    # Cleaning: the empty line and the repeated pair are dropped, named with their line.
    report = json.loads((data / "cleaning.json").read_text())["corpora"]
    assert report["commoncrawl"]["read"] == 1002 and report["commoncrawl"]["kept"] == 1000
    assert report["commoncrawl"]["dropped"]["empty"] == 1
    assert report["commoncrawl"]["dropped"]["duplicate"] == 1
    assert report["europarl-v7"]["kept"] == 1000 and report["news-commentary-v9"]["kept"] == 500
    dropped = _gunzip_lines(data / "dropped" / "commoncrawl.tsv.gz")
    assert [line.split("\t")[:2] for line in dropped] == [
        ["empty", str(dropped_lines["empty"])],
        ["duplicate", str(dropped_lines["duplicate"])],
    ]
    kept = list(
        zip(_gunzip_lines(data / "commoncrawl.en.gz"), _gunzip_lines(data / "commoncrawl.de.gz"))
    )
    assert len(kept) == len(set(kept)) == 1000 and all(en and de for en, de in kept)
    assert "| commoncrawl | 1,002 | 1,000 |" in (data / "cleaning.md").read_text()

    # Every step ran: one translated line per source line, scores with sacreBLEU's signature.
    for name, split in (("newstest2013", "valid"), ("newstest2014", "test")):
        source = toy_data[f"{split}.en"].read_text().splitlines()
        assert len((run / f"{name}.de").read_text().splitlines()) == len(source)
    results = (run / "results.md").read_text()
    assert re.search(
        r"^- BLEU signature: `nrefs:1\|case:mixed\|eff:no\|tok:13a\|smooth:exp\|version:[\d.]+`$",
        results,
        re.MULTILINE,
    ), results
    assert re.search(r"^\| newstest2014 \(test\) \| \d+\.\d\d \|", results, re.MULTILINE), results
    assert "stopped at step 30 (max_steps)" in results
    assert "averaged/ckpt-30" in results
