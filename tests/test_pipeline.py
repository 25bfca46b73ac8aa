import numpy as np

from nmt.constants import BOS_ID, EOS_ID, PAD_ID
from nmt.data.pipeline import training_dataset


def _dataset(toy_data, tokenizer, **options):
    settings = dict(
        max_source_length=100,
        max_target_length=100,
        batch_size=16,
        batch_tokens=0,
        bucket_width=4,
        shuffle_buffer=1000,
        seed=3,
    )
    settings.update(options)
    return training_dataset(toy_data["test.en"], toy_data["test.de"], tokenizer, **settings)


def test_bucketing_keeps_every_example_once(toy_data, tokenizer):
    sources = toy_data["test.en"].read_text().splitlines()
    expected = sorted(tuple(ids) for ids in tokenizer.encode_source(sources))
    seen = []
    for batch in _dataset(toy_data, tokenizer):
        for row in batch["source"].numpy():
            seen.append(tuple(int(i) for i in row if i != PAD_ID))
    assert sorted(seen) == expected


def test_batches_are_right_padded_with_bos_and_eos(toy_data, tokenizer):
    for batch in _dataset(toy_data, tokenizer):
        target_in, target_out = batch["target_in"].numpy(), batch["target_out"].numpy()
        assert (target_in[:, 0] == BOS_ID).all()
        lengths = (target_out != PAD_ID).sum(1)
        for row, n in zip(target_out, lengths, strict=True):
            assert row[n - 1] == EOS_ID and (row[n:] == PAD_ID).all()
        # target_in is target_out shifted right by one.
        np.testing.assert_array_equal(
            target_in[:, 1:][target_out[:, 1:] != PAD_ID],
            target_out[:, :-1][target_out[:, 1:] != PAD_ID],
        )


def test_length_buckets_keep_padding_low(toy_data, tokenizer):
    real = padded = 0
    for batch in _dataset(toy_data, tokenizer, batch_size=0, batch_tokens=120):
        source = batch["source"].numpy()
        real += (source != PAD_ID).sum()
        padded += source.size
        longest = max(source.shape[1], batch["target_in"].shape[1])
        assert source.shape[0] * longest <= 120
    assert real / padded > 0.75


def test_length_filter_and_seeded_order(toy_data, tokenizer):
    def order(seed):
        return [tuple(b["source"].numpy()[0]) for b in _dataset(toy_data, tokenizer, seed=seed)]

    assert order(5) == order(5)
    assert order(5) != order(6)
    short = _dataset(toy_data, tokenizer, max_source_length=3)
    assert all(b["source"].shape[1] <= 3 for b in short)


def test_training_batches_run_without_the_autotuner(toy_data, tokenizer):
    # With autotuning on, dropping an epoch's iterator waited for the autotuner's sleep (up to
    # 60 s, measured 43 s): training idled at about half of the epoch ends.
    assert _dataset(toy_data, tokenizer).options().autotune.enabled is False
