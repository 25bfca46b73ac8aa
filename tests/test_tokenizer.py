import subprocess
import sys

from nmt.constants import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.data.tokenizer import Tokenizer, train_tokenizer


def test_round_trip_is_lossless(tokenizer, toy_data):
    lines = toy_data["test.de"].read_text(encoding="utf-8").splitlines()[:50]
    assert tokenizer.decode_target(tokenizer.encode_target(lines)) == lines
    lines = toy_data["test.en"].read_text(encoding="utf-8").splitlines()[:50]
    ids = tokenizer.encode_source(lines)
    assert all(PAD_ID not in seq and EOS_ID not in seq for seq in ids)


def test_special_ids_are_fixed(tokenizer):
    processor = tokenizer._source
    assert (processor.pad_id(), processor.unk_id(), processor.bos_id(), processor.eos_id()) == (
        PAD_ID,
        UNK_ID,
        BOS_ID,
        EOS_ID,
    )


def test_separate_models_per_side(toy_data, tmp_path):
    built = train_tokenizer(
        [toy_data["train.en"]], [toy_data["train.de"]], tmp_path, vocab_size=50, joint=False
    )
    loaded = Tokenizer.load(tmp_path)
    text = ["zwei und vierzig"]
    assert loaded.decode_target(loaded.encode_target(text)) == text
    assert built.source_vocab_size == loaded.source_vocab_size
    assert sorted(p.name for p in tmp_path.glob("*.model")) == ["source.model", "target.model"]


def test_subword_sampling_is_the_same_in_every_process(toy_data, tmp_path):
    # A resumed run segments its epoch in a new process: SentencePiece's own sampler (0.2.3)
    # drew differently there under the same seed.
    train_tokenizer([toy_data["train.en"]], [toy_data["train.de"]], tmp_path, vocab_size=60)
    script = (
        "import sys; from nmt.data.tokenizer import Tokenizer\n"
        f"lines = open({str(toy_data['test.de'])!r}, encoding='utf-8').read().splitlines()\n"
        f"print(Tokenizer.load({str(tmp_path)!r}).sample(lines[:2], lines, 0.1, 11))\n"
    )
    draws = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    ]
    lines = toy_data["test.de"].read_text(encoding="utf-8").splitlines()
    assert draws[0] == draws[1] == f"{Tokenizer.load(tmp_path).sample(lines[:2], lines, 0.1, 11)}\n"
