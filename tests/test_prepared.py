"""Prepared corpora: tokenized once, reused while the inputs are unchanged, refused when damaged
or made by another tokenizer, and read back as the batches the text would give."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from nmt.config import CorpusConfig
from nmt.constants import BOS_ID, EOS_ID, PAD_ID
from nmt.data.epoch_plan import Batching
from nmt.data.prepared import MANIFEST, open_prepared_or_fail, prepare_corpus
from nmt.data.training_data import TrainingData
from nmt.errors import NmtError


def _copy_corpus(toy_data, folder: Path, lines: int = 300) -> CorpusConfig:
    folder.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "de"):
        text = toy_data[f"train.{lang}"].read_text(encoding="utf-8").splitlines()[:lines]
        (folder / f"c.{lang}").write_text("\n".join(text) + "\n", encoding="utf-8")
    return CorpusConfig(str(folder / "c.en"), str(folder / "c.de"))


def _prepare(corpus, folder, tokenizer, text=False):
    messages = []
    prepared = prepare_corpus(corpus, folder, tokenizer, text, threads=1, log=messages.append)
    return prepared, messages


def test_shards_hold_the_tokenized_lines_and_are_reused_until_a_file_changes(
    toy_data, tokenizer, tmp_path
):
    corpus = _copy_corpus(toy_data, tmp_path / "text")
    prepared, messages = _prepare(corpus, tmp_path / "p", tokenizer)
    sources = Path(corpus.source).read_text(encoding="utf-8").splitlines()
    assert prepared.pairs == len(sources) == 300
    for line in (0, 17, 299):
        a, b = prepared.offsets[line, 0], prepared.offsets[line + 1, 0]
        assert prepared.source_ids[a:b].tolist() == tokenizer.encode_source([sources[line]])[0]
    assert any("prepared 300 pairs" in m for m in messages)

    again, messages = _prepare(corpus, tmp_path / "p", tokenizer)
    assert any("up to date" in m for m in messages)
    assert again.manifest["files"] == prepared.manifest["files"]

    os.utime(corpus.source)  # touched, same content: still up to date
    _, messages = _prepare(corpus, tmp_path / "p", tokenizer)
    assert any("up to date" in m for m in messages)

    with open(corpus.source, "a", encoding="utf-8") as f, open(corpus.target, "a") as g:
        f.write("one two\n")
        g.write("eins zwei\n")
    changed, messages = _prepare(corpus, tmp_path / "p", tokenizer)
    assert changed.pairs == 301 and any("prepared 301 pairs" in m for m in messages)
    names = {p.name for p in (tmp_path / "p").iterdir()}
    assert names == {MANIFEST} | {entry["file"] for entry in changed.manifest["files"].values()}


def test_a_truncated_shard_or_another_tokenizer_is_refused(toy_data, tokenizer, tmp_path):
    from nmt.data.tokenizer import train_tokenizer

    corpus = _copy_corpus(toy_data, tmp_path / "text")
    prepared, _ = _prepare(corpus, tmp_path / "p", tokenizer)
    other = train_tokenizer([corpus.source], [corpus.target], tmp_path / "spm2", vocab_size=40)
    with pytest.raises(NmtError, match="prepared with another tokenizer"):
        _prepare(corpus, tmp_path / "p", other)
    shard = tmp_path / "p" / prepared.manifest["files"]["target"]["file"]
    shard.write_bytes(shard.read_bytes()[:-6])
    with pytest.raises(NmtError, match=f"{shard}: .* a truncated or damaged shard"):
        _prepare(corpus, tmp_path / "p", tokenizer)
    with pytest.raises(NmtError, match="not prepared"):
        open_prepared_or_fail(corpus, tmp_path / "elsewhere", tokenizer, False)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("short", r"parallel files differ in length: .*c.en has 300 lines, .*c.de has 299"),
        ("utf8", r"c.de:120: invalid UTF-8"),
        ("missing", r"c.de: no such file"),
        ("gzip", r"c.de.gz: cannot read the file"),
    ],
)
def test_bad_input_names_the_file_and_line_and_leaves_nothing_behind(
    toy_data, tokenizer, tmp_path, damage, message
):
    corpus = _copy_corpus(toy_data, tmp_path / "text")
    target = Path(corpus.target)
    lines = target.read_bytes().splitlines(keepends=True)
    if damage == "short":
        target.write_bytes(b"".join(lines[:-1]))
    elif damage == "utf8":
        lines[119] = b"caf\xe9\n"
        target.write_bytes(b"".join(lines))
    elif damage == "missing":
        target.unlink()
    else:
        packed = gzip.compress(target.read_bytes())
        target = target.with_suffix(".de.gz")
        target.write_bytes(packed[: len(packed) // 2])
        corpus = CorpusConfig(corpus.source, str(target))
    with pytest.raises(NmtError, match=message):
        _prepare(corpus, tmp_path / "p", tokenizer)
    assert [p.name for p in (tmp_path / "p").iterdir()] == []


def test_batches_are_the_tokenized_pairs_with_tag_bos_and_eos(toy_data, tokenizer, tmp_path):
    corpus = _copy_corpus(toy_data, tmp_path / "text", lines=50)
    prepared, _ = _prepare(corpus, tmp_path / "p", tokenizer)
    batching = Batching(100, 100, 8, 0, 4, 1000)
    tag = tokenizer.encode_source(["seven"])[0][-1]  # any piece stands in for a tag here
    for tag_id in (None, tag):
        data = TrainingData([prepared], [tag_id], batching, 1, tokenizer)
        lines = np.array([3, 0, 41])
        features = data.features(np.zeros(3, np.int32), lines)
        files = (corpus.source, corpus.target)
        texts = [Path(f).read_text(encoding="utf-8").splitlines() for f in files]
        for row, line in enumerate(lines):
            source = [i for i in features.source[row] if i != PAD_ID]
            expected = tokenizer.encode_source([texts[0][line]])[0]
            assert source == ([] if tag_id is None else [tag_id]) + expected
            target = tokenizer.encode_target([texts[1][line]])[0]
            target_in = [i for i in features.target_in[row] if i != PAD_ID]
            target_out = [i for i in features.target_out[row] if i != PAD_ID]
            assert target_in == [BOS_ID] + target and target_out == target + [EOS_ID]


def test_subword_sampling_draws_from_the_stored_text_with_the_batch_key(
    toy_data, tokenizer, tmp_path
):
    corpus = _copy_corpus(toy_data, tmp_path / "text", lines=64)
    prepared, _ = _prepare(corpus, tmp_path / "p", tokenizer, text=True)
    data = TrainingData([prepared], [None], Batching(100, 100, 64, 0, 4, 1000), 1, tokenizer, 0.3)
    best = TrainingData([prepared], [None], Batching(100, 100, 64, 0, 4, 1000), 1, tokenizer)
    lines, corpus_ids = np.arange(64), np.zeros(64, np.int32)

    def targets(data, key):
        out = data.features(corpus_ids, lines, key).target_out
        return [[int(i) for i in row if i not in (PAD_ID, EOS_ID)] for row in out]

    assert targets(data, 5) == targets(data, 5)
    assert targets(data, 5) != targets(data, 6)
    assert tokenizer.decode_target(targets(data, 5)) == tokenizer.decode_target(targets(best, 5))
    assert sum(map(len, targets(data, 5))) > sum(map(len, targets(best, 5)))
    shutil.rmtree(tmp_path / "p")
