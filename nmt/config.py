"""One typed configuration tree: YAML in, frozen dataclasses out, unknown keys rejected.

Defaults live only here. `load_config` resolves data paths against the YAML file's folder, applies
dotted command-line overrides (`model.hidden_size=512`) and validates every value, naming the key.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml

from nmt.atomic import atomic_write_text
from nmt.errors import NmtError


class ConfigError(NmtError):
    """A configuration key or value is wrong; the message names the key."""


# What changing a field means for a run directory that already holds checkpoints; every field
# of the tokenizer, data, model and training sections says which (decoding fields are free).
SHAPE = "shape"  # the trained weights or tokenizer depend on it: resuming with a change is refused
DATA_ORDER = "data_order"  # decides which batch comes next: the epoch restarts in the new order
INIT = "init"  # acts only when a run starts: a change is accepted and has no effect on resume
FREE = "free"  # takes effect from the next step on
CHANGE_KINDS = (SHAPE, DATA_ORDER, INIT, FREE)


def _field(default: Any, change: str, path: bool = False) -> Any:
    return field(default=default, metadata={"change": change, "path": path})


def change_kind(f: dataclasses.Field) -> str:
    """What a change of this config field means on resume (see CHANGE_KINDS)."""
    return f.metadata.get("change", FREE)


def _require(condition: bool, key: str, value: Any, expectation: str) -> None:
    if not condition:
        raise ConfigError(f"{key} must be {expectation}, got {value!r}")


@dataclass(frozen=True)
class TokenizerConfig:
    """SentencePiece settings (Kudo and Richardson, 2018)."""

    model_type: Literal["unigram", "bpe"] = _field("unigram", SHAPE)
    vocab_size: int = _field(8000, SHAPE)
    joint: bool = _field(True, SHAPE)  # one model for source and target, trained on both sides
    character_coverage: float = _field(1.0, SHAPE)
    # unknown characters become byte pieces instead of <unk>: recommended for web-crawled data
    # (CommonCrawl, Paracrawl), whose rare scripts and symbols would otherwise all be <unk>
    byte_fallback: bool = _field(False, SHAPE)
    # sentences SentencePiece samples to train each model (a joint model draws them from both
    # sides together, so 2,000,000 is 2,000,000 lines in all, not per side)
    max_training_sentences: int = _field(2_000_000, INIT)
    # An existing tokenizer instead of training one: a SentencePiece model file (used for both
    # sides) or a tokenizer folder of another run (spm.model, or source.model + target.model).
    # Runs that share it can share one prepared corpus too (data.prepared_dir).
    model: str = _field("", SHAPE, path=True)
    # threads for SentencePiece training and for preparing the data (0: every core)
    threads: int = _field(0, FREE)

    def __post_init__(self) -> None:
        _require(self.vocab_size >= 8, "tokenizer.vocab_size", self.vocab_size, "at least 8")
        _require(
            0.9 <= self.character_coverage <= 1.0,
            "tokenizer.character_coverage",
            self.character_coverage,
            "between 0.9 and 1.0",
        )
        _require(
            self.max_training_sentences > 0,
            "tokenizer.max_training_sentences",
            self.max_training_sentences,
            "positive",
        )
        _require(self.threads >= 0, "tokenizer.threads", self.threads, ">= 0")


@dataclass(frozen=True)
class CorpusConfig:
    """One training corpus of `data.train`: two parallel files, its share of every epoch and an
    optional source-side tag (e.g. "<bt>" on back-translated data, Caswell et al., 2019)."""

    source: str = _field("", DATA_ORDER, path=True)
    target: str = _field("", DATA_ORDER, path=True)
    # pairs of this corpus in an epoch = weight x its pairs: 2 takes each pair twice, 0.5 a
    # different random half every epoch
    weight: float = _field(1.0, DATA_ORDER)
    # a token put before every source sentence of this corpus; a tokenizer nmt trains learns it
    # as one piece (a reused tokenizer.model must have it)
    tag: str = _field("", DATA_ORDER)
    # how logs, the prepared folder and tools/data_order.py call it (default: the source file's
    # name without its language suffix)
    name: str = _field("", DATA_ORDER)

    def check(self, key: str) -> None:
        """Validates the entry `key` (e.g. "data.train[1]") of the list."""
        _require(bool(self.source), f"{key}.source", self.source, "a file")
        _require(bool(self.target), f"{key}.target", self.target, "a file")
        _require(self.weight > 0, f"{key}.weight", self.weight, "positive")
        _require(
            not self.tag or (len(self.tag.split()) == 1 and self.tag == self.tag.strip()),
            f"{key}.tag",
            self.tag,
            "one token without spaces",
        )
        _require(
            "/" not in self.name and not self.name.startswith("."),
            f"{key}.name",
            self.name,
            "a name without '/' that does not start with '.'",
        )

    @property
    def label(self) -> str:
        """`name`, else the source file's name less `.gz` and its language suffix."""
        if self.name:
            return self.name
        stem = Path(self.source).name.removesuffix(".gz")
        return stem.rsplit(".", 1)[0] if "." in stem else stem


@dataclass(frozen=True)
class ValidationSetConfig:
    """One validation set of `data.valid`: two parallel files and the name its scores get."""

    source: str = _field("", FREE, path=True)
    target: str = _field("", FREE, path=True)
    name: str = _field("", FREE)  # in logs and TensorBoard (default: the source file's name)

    def check(self, key: str) -> None:
        _require(bool(self.source), f"{key}.source", self.source, "a file")
        _require(bool(self.target), f"{key}.target", self.target, "a file")

    @property
    def label(self) -> str:
        return self.name or CorpusConfig(self.source, self.target).label


@dataclass(frozen=True)
class DataConfig:
    """Parallel text files (plain or .gz, one sentence per line) and how they are batched."""

    train_source: str = _field("", DATA_ORDER, path=True)
    train_target: str = _field("", DATA_ORDER, path=True)
    # Several corpora instead of train_source/train_target: a list of {source, target, weight,
    # tag, name} (CorpusConfig); every epoch shuffles all of them together.
    train: tuple[CorpusConfig, ...] = _field((), DATA_ORDER)
    # Where the prepared (tokenized, binary) corpora live; "" is RUN/prepared. Runs with the
    # same tokenizer may share one folder, so a corpus is tokenized once for all of them.
    prepared_dir: str = _field("", FREE, path=True)
    valid_source: str = _field("", FREE, path=True)
    valid_target: str = _field("", FREE, path=True)
    # Several validation sets instead: a list of {source, target, name}. Each is scored at every
    # validation; the first decides best/ and early stopping.
    valid: tuple[ValidationSetConfig, ...] = _field((), FREE)
    max_source_length: int = _field(100, DATA_ORDER)  # pieces; longer training pairs are skipped
    max_target_length: int = _field(100, DATA_ORDER)
    batch_size: int = _field(64, DATA_ORDER)  # sentences per batch; 0 means batch by `batch_tokens`
    batch_tokens: int = _field(0, DATA_ORDER)  # target+source tokens per batch when batch_size is 0
    # Length buckets of this many tokens. Narrow buckets waste less on padding but make each
    # batch less varied, which slows learning on small corpora where length tracks content.
    bucket_width: int = _field(8, DATA_ORDER)
    # Every epoch shuffles the whole corpus, then sorts windows of this many pairs into length
    # buckets and cuts them into batches, whose order is shuffled again: a larger window wastes
    # less on padding, a smaller one keeps batches nearer to a uniform draw.
    shuffle_buffer: int = _field(30_000, DATA_ORDER)
    # Subword regularization (Kudo, 2018): every epoch segments each training sentence by a draw
    # among its 64 best segmentations, weighted P(x) ** alpha (Kudo: 0.1); 0 keeps the best one.
    # Unigram tokenizers only.
    sampling_alpha: float = _field(0.0, DATA_ORDER)

    def __post_init__(self) -> None:
        for name in ("max_source_length", "max_target_length", "bucket_width", "shuffle_buffer"):
            _require(getattr(self, name) > 0, f"data.{name}", getattr(self, name), "positive")
        for name in ("max_source_length", "max_target_length"):
            value = getattr(self, name)
            _require(value < 65_535, f"data.{name}", value, "below 65,535 pieces")
        for index, corpus in enumerate(self.train):
            corpus.check(f"data.train[{index}]")
        _require(
            not (self.train and (self.train_source or self.train_target)),
            "data.train",
            "[...]",
            "left out when data.train_source/train_target are set (use one form)",
        )
        for index, valid in enumerate(self.valid):
            valid.check(f"data.valid[{index}]")
        _require(
            not (self.valid and (self.valid_source or self.valid_target)),
            "data.valid",
            "[...]",
            "left out when data.valid_source/valid_target are set (use one form)",
        )
        names = [valid.label for valid in self.validation_sets]
        _require(
            len(set(names)) == len(names),
            "data.valid",
            names,
            "a list whose sets have different names (set `name` on each)",
        )
        labels = [corpus.label for corpus in self.corpora]
        for label in labels:
            _require(
                labels.count(label) == 1,
                "data.train",
                label,
                "a list whose corpora have different names (set `name` on each)",
            )
        _require(self.batch_size >= 0, "data.batch_size", self.batch_size, ">= 0")
        _require(
            0.0 <= self.sampling_alpha <= 1.0,
            "data.sampling_alpha",
            self.sampling_alpha,
            "between 0 and 1",
        )
        _require(
            bool(self.valid_source) == bool(self.valid_target),
            "data.valid_target" if self.valid_source else "data.valid_source",
            self.valid_target if self.valid_source else self.valid_source,
            "set too (validation needs both sides)",
        )
        _require(
            self.batch_size > 0 or self.batch_tokens > 0,
            "data.batch_tokens",
            self.batch_tokens,
            "positive when data.batch_size is 0",
        )

    @property
    def corpora(self) -> tuple[CorpusConfig, ...]:
        """The training corpora, whichever form the config used (none when it names none)."""
        if self.train:
            return self.train
        if self.train_source or self.train_target:
            return (CorpusConfig(self.train_source, self.train_target),)
        return ()

    @property
    def validation_sets(self) -> tuple[ValidationSetConfig, ...]:
        """The validation sets, whichever form the config used; the first picks best/."""
        if self.valid:
            return self.valid
        if self.valid_source:
            return (ValidationSetConfig(self.valid_source, self.valid_target),)
        return ()

    @property
    def tags(self) -> list[str]:
        """The corpora's source tags, each once, in a fixed order."""
        return sorted({corpus.tag for corpus in self.corpora if corpus.tag})


@dataclass(frozen=True)
class ModelConfig:
    """GNMT-style encoder-decoder (Wu et al., 2016) with Luong et al. (2015) attention."""

    embedding_size: int = _field(256, SHAPE)
    hidden_size: int = _field(256, SHAPE)
    encoder_layers: int = _field(2, SHAPE)  # the bottom one is bidirectional
    decoder_layers: int = _field(2, SHAPE)
    # 0-based index of the first layer with x + LSTM(x), as in GNMT
    residual_start: int = _field(2, SHAPE)
    attention: Literal["general", "dot", "bahdanau"] = _field("general", SHAPE)
    # feed the previous attentional vector to the bottom decoder layer
    input_feeding: bool = _field(True, SHAPE)
    # "top": the top decoder layer queries attention (Luong); "bottom": the bottom layer queries
    # and the context feeds every upper layer (GNMT, Wu et al., 2016); needs decoder_layers >= 2
    attention_layer: Literal["top", "bottom"] = _field("top", SHAPE)
    # on embeddings, between layers and before the output projection
    dropout: float = _field(0.3, FREE)
    # training only: each source and target-input piece becomes <unk> with this probability
    # (word dropout); SHAPE because its random state is part of the checkpoint
    token_dropout: float = _field(0.0, SHAPE)
    # training step from which token dropout acts: after the early jump in attention, which
    # dropping pieces from step 0 delays (recipes/multi30k/README.md)
    token_dropout_start: int = _field(0, FREE)
    # training only: variational dropout on every LSTM layer's h_{t-1} before the recurrent
    # matmul, one mask per sentence (Gal and Ghahramani, 2016); SHAPE for the same reason
    recurrent_dropout: float = _field(0.0, SHAPE)
    # output projection = target embedding transposed
    tie_output_embedding: bool = _field(False, SHAPE)
    # Arithmetic type; weights stay float32. bfloat16 pays off on CPUs with AVX512_BF16/AMX
    # and on recent GPUs, and is slow where the hardware must emulate it; auto picks it
    # only there (nmt/model/precision.py), resolved afresh on every machine that loads the run.
    compute_dtype: Literal["float32", "bfloat16", "auto"] = _field("float32", FREE)
    # 0: Keras' initializers (Glorot uniform, orthogonal recurrent kernels, forget-gate bias 1);
    # x > 0: every weight uniform in [-x, x], as OpenNMT-py's `param_init` (default 0.1)
    param_init: float = _field(0.0, INIT)

    def __post_init__(self) -> None:
        _require(self.param_init >= 0, "model.param_init", self.param_init, ">= 0")
        for name in ("embedding_size", "hidden_size", "encoder_layers", "decoder_layers"):
            _require(getattr(self, name) > 0, f"model.{name}", getattr(self, name), "positive")
        _require(
            self.hidden_size % 2 == 0,
            "model.hidden_size",
            self.hidden_size,
            "even (the bidirectional bottom layer splits it in two directions)",
        )
        _require(self.residual_start >= 1, "model.residual_start", self.residual_start, ">= 1")
        _require(
            self.attention_layer == "top" or self.decoder_layers >= 2,
            "model.attention_layer",
            self.attention_layer,
            '"top" unless model.decoder_layers >= 2',
        )
        _require(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "in [0, 1)")
        _require(
            0.0 <= self.recurrent_dropout < 1.0,
            "model.recurrent_dropout",
            self.recurrent_dropout,
            "in [0, 1)",
        )
        _require(
            0.0 <= self.token_dropout < 1.0, "model.token_dropout", self.token_dropout, "in [0, 1)"
        )
        _require(
            self.token_dropout_start >= 0,
            "model.token_dropout_start",
            self.token_dropout_start,
            ">= 0",
        )
        _require(
            not self.tie_output_embedding or self.embedding_size == self.hidden_size,
            "model.tie_output_embedding",
            self.tie_output_embedding,
            "false unless model.embedding_size equals model.hidden_size",
        )


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation, stopping, validation and checkpointing."""

    seed: int = _field(1234, DATA_ORDER)
    learning_rate: float = _field(1e-3, FREE)  # Adam (Kingma and Ba, 2015)
    warmup_steps: int = _field(0, FREE)  # linear warmup from 0
    decay: Literal["none", "inverse_sqrt", "exponential"] = _field("none", FREE)
    decay_start: int = _field(0, FREE)  # step where exponential decay begins
    decay_steps: int = _field(1000, FREE)  # exponential: multiply by decay_rate every decay_steps
    decay_rate: float = _field(0.5, FREE)
    clip_norm: float = _field(5.0, FREE)  # gradient clipping by global norm
    label_smoothing: float = _field(0.1, FREE)
    # Polyak averaging: keep an exponential moving average of the weights (e.g. 0.999); the
    # validation, best/ and therefore translation use the average (0: off)
    ema_decay: float = _field(0.0, SHAPE)
    max_steps: int = _field(0, FREE)  # stop after this many steps (0: no limit)
    max_epochs: int = _field(10, FREE)  # stop after this many passes over the data (0: no limit)
    # stop after this much wall-clock training time (0: no limit)
    max_minutes: float = _field(0.0, FREE)
    # With max_steps and max_minutes: at this step, if the pace so far would not reach max_steps
    # in max_minutes, stop at the steps that fit (a multiple of checkpoint_every) and run the decay
    # faster by the same factor, so that a slower machine still ends the schedule (0: off; also
    # off without max_minutes or with max_steps at or below it)
    fit_schedule_at: int = _field(0, FREE)
    log_every: int = _field(50, FREE)  # steps between progress lines
    validate_every: int = _field(500, FREE)  # steps between validations (loss and BLEU)
    checkpoint_every: int = _field(500, FREE)  # steps between checkpoints
    keep_checkpoints: int = _field(3, FREE)  # last N checkpoints kept, besides the best one
    # stop after N validations without a better BLEU (0: off)
    early_stopping_patience: int = _field(0, FREE)
    valid_beam_size: int = _field(1, FREE)  # 1 = greedy, fast enough to run often
    # decode only the first N validation sentences (0: all)
    valid_max_sentences: int = _field(0, FREE)
    # XLA-compile the training step: refused. The LSTM loops as written do not compile; changed
    # so that they do, XLA measured at most 1.11x per step and recompiles for every batch shape
    # (4-7 s each, BENCHMARKS.md sitting H). Kept so saved configs that say false still load.
    jit_compile: bool = _field(False, FREE)
    # "none" (one device), "mirrored" (local GPUs, else the logical CPU devices) or
    # "multi_worker" (TF_CONFIG cluster). Free on resume: the epoch's batches are planned for
    # the whole run, not per replica, so another number of replicas goes on from the same batch.
    distribution: Literal["none", "mirrored", "multi_worker"] = _field("none", FREE)
    # how long a non-chief worker waits for the chief to write the tokenizer and prepare the
    # data before giving up (preparing a large corpus takes a while)
    worker_wait_minutes: float = _field(60.0, FREE)

    @property
    def fits_schedule(self) -> bool:
        """Whether `fit_schedule_at` acts: a recipe's value stays harmless when a user's override
        drops `max_minutes` (run the whole schedule) or `max_steps` below it (a smoke test)."""
        return self.max_minutes > 0 and 0 < self.fit_schedule_at < self.max_steps

    def __post_init__(self) -> None:
        _require(self.learning_rate > 0, "training.learning_rate", self.learning_rate, "positive")
        _require(
            0.0 <= self.label_smoothing < 1.0,
            "training.label_smoothing",
            self.label_smoothing,
            "in [0, 1)",
        )
        _require(
            self.max_steps > 0 or self.max_epochs > 0 or self.max_minutes > 0,
            "training.max_steps",
            self.max_steps,
            "positive unless training.max_epochs or training.max_minutes is set",
        )
        for name in (
            "log_every",
            "validate_every",
            "checkpoint_every",
            "keep_checkpoints",
            "valid_beam_size",
            "decay_steps",
        ):
            _require(getattr(self, name) > 0, f"training.{name}", getattr(self, name), "positive")
        for name in (
            "warmup_steps",
            "max_steps",
            "max_epochs",
            "early_stopping_patience",
            "valid_max_sentences",
            "decay_start",
            "fit_schedule_at",
        ):
            _require(getattr(self, name) >= 0, f"training.{name}", getattr(self, name), ">= 0")
        _require(self.clip_norm > 0, "training.clip_norm", self.clip_norm, "positive")
        _require(0 <= self.ema_decay < 1, "training.ema_decay", self.ema_decay, "in [0, 1)")
        _require(self.max_minutes >= 0, "training.max_minutes", self.max_minutes, ">= 0")
        _require(
            self.worker_wait_minutes > 0,
            "training.worker_wait_minutes",
            self.worker_wait_minutes,
            "positive",
        )
        _require(0 <= self.seed < 2**31, "training.seed", self.seed, "in [0, 2**31)")
        _require(0 < self.decay_rate <= 1, "training.decay_rate", self.decay_rate, "in (0, 1]")
        _require(
            not self.fits_schedule or self.distribution != "multi_worker",
            "training.fit_schedule_at",
            self.fit_schedule_at,
            "0 with training.distribution multi_worker: each worker would fit its own schedule",
        )
        _require(
            not self.jit_compile,
            "training.jit_compile",
            self.jit_compile,
            "false: XLA cannot compile the LSTM loops as written; changed so that it can, it"
            " measured at most 1.11x per step and spends 4-7 s compiling every new batch shape"
            " (BENCHMARKS.md, sitting H)",
        )


@dataclass(frozen=True)
class DecodingConfig:
    """Beam search defaults (Wu et al., 2016, section 7: length and coverage penalties)."""

    beam_size: int = 5  # 1 = greedy search
    length_penalty: float = 0.6  # alpha in lp(Y) = ((5 + |Y|) / 6) ** alpha
    coverage_penalty: float = 0.0  # beta
    max_length_ratio: float = 2.0  # output at most ratio * source length + offset tokens
    max_length_offset: int = 10
    batch_size: int = 32  # sentences per decoding batch
    # Batches searched side by side: one search is a chain of small ops that leaves cores idle.
    # The outputs are the same for any value.
    concurrent_batches: int = 2
    n_best: int = 1
    # When a sentence's beam search ends: "exact" once no live beam could still win, even at
    # the length limit; "heuristic" once none wins with its score now (OpenNMT-py's default).
    stopping: Literal["exact", "heuristic"] = "exact"
    # What an ended hypothesis does in the beam: "narrowing" keeps its slot, so fewer stay live
    # as hypotheses end (tf.contrib.seq2seq; beam 1 is greedy); "full" moves it to the n-best
    # pool and keeps the K best unfinished ones live (OpenNMT-py, fairseq). "full" scores
    # +0.5 val / +1.8-2.3 test BLEU on the en-de recipe model (recipes/multi30k/README.md).
    live_beam: Literal["narrowing", "full"] = "full"

    def __post_init__(self) -> None:
        _require(self.beam_size >= 1, "decoding.beam_size", self.beam_size, ">= 1")
        _require(
            1 <= self.n_best <= self.beam_size,
            "decoding.n_best",
            self.n_best,
            f"between 1 and decoding.beam_size ({self.beam_size})",
        )
        _require(self.length_penalty >= 0, "decoding.length_penalty", self.length_penalty, ">= 0")
        _require(
            self.coverage_penalty >= 0, "decoding.coverage_penalty", self.coverage_penalty, ">= 0"
        )
        _require(
            self.max_length_ratio > 0,
            "decoding.max_length_ratio",
            self.max_length_ratio,
            "positive",
        )
        _require(self.batch_size > 0, "decoding.batch_size", self.batch_size, "positive")
        _require(
            self.concurrent_batches > 0,
            "decoding.concurrent_batches",
            self.concurrent_batches,
            "positive",
        )
        _require(
            self.max_length_offset >= 0,
            "decoding.max_length_offset",
            self.max_length_offset,
            ">= 0",
        )


@dataclass(frozen=True)
class Config:
    """A whole experiment: everything needed to rebuild the model and its data."""

    tokenizer: TokenizerConfig = TokenizerConfig()
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    decoding: DecodingConfig = DecodingConfig()

    def __post_init__(self) -> None:
        _require(
            self.data.sampling_alpha == 0.0 or self.tokenizer.model_type == "unigram",
            "data.sampling_alpha",
            self.data.sampling_alpha,
            '0 with tokenizer.model_type "bpe" (subword sampling needs a unigram model)',
        )


def _check_type(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = typing.get_args(annotation)
        _require(value in choices, key, value, "one of " + ", ".join(map(repr, choices)))
        return value
    if annotation is bool:
        _require(isinstance(value, bool), key, value, "true or false")
    elif annotation is int:
        _require(isinstance(value, int) and not isinstance(value, bool), key, value, "an integer")
    elif annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        _require(ok, key, value, "a number")
        return float(value)
    elif annotation is str:
        _require(isinstance(value, str), key, value, "a string")
    return value


def _build(cls: type, data: Any, prefix: str, base_dir: Path | None) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'the config'} must be a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown config key {where}{unknown[0]} (known keys: {', '.join(sorted(known))})"
        )
    values = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            values[name] = _build(annotation, value, key, base_dir)
            continue
        if typing.get_origin(annotation) is tuple:  # a list of sections, e.g. data.train
            item_type = typing.get_args(annotation)[0]
            value = [] if value is None else value
            _require(isinstance(value, (list, tuple)), key, value, "a list")
            values[name] = tuple(
                _build(item_type, item, f"{key}[{i}]", base_dir) for i, item in enumerate(value)
            )
            continue
        value = _check_type(value, annotation, key)
        if known[name].metadata.get("path") and value and base_dir is not None:
            value = str((base_dir / Path(value).expanduser()).resolve())
        values[name] = value
    return cls(**values)


def config_from_dict(data: dict, base_dir: Path | None = None) -> Config:
    """Builds a validated `Config`.

    Args:
        data: nested mapping as read from YAML.
        base_dir: folder that relative data paths are resolved against (None: keep them as given).

    Raises:
        ConfigError: for an unknown key or a bad value, naming the dotted key.
    """
    return _build(Config, data, "", base_dir)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Applies `section.key=value` overrides (values parsed as YAML) to a nested mapping."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in (data or {}).items()}
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) != 2 or not all(parts):
            raise ConfigError(f"override {item!r} must look like section.key=value")
        section, name = parts
        if section not in {f.name for f in dataclasses.fields(Config)}:
            raise ConfigError(f"unknown config section {section!r} in override {item!r}")
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise ConfigError(f"{section} must be a mapping of keys")
        data[section][name] = yaml.safe_load(raw) if raw.strip() else ""
    return data


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Reads a YAML config, applies overrides, resolves data paths against the file's folder.

    Raises:
        ConfigError: the file is missing or not YAML, a key is unknown or a value is bad.
    """
    data: dict = {}
    base_dir = Path.cwd()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from None
        base_dir = path.resolve().parent
    overrides = overrides or []
    merged = apply_overrides(data, overrides)
    try:
        return config_from_dict(merged, base_dir)
    except ConfigError as error:
        raise ConfigError(f"{_culprit(data, overrides, base_dir, path)}: {error}") from None


def _culprit(data: dict, overrides: list[str], base_dir: Path, path: Path | None) -> str:
    """Names where a bad key or value came from: the YAML file, or the first --set that breaks
    a config the file alone makes valid."""
    try:
        config_from_dict(data, base_dir)
    except ConfigError:
        return str(path) if path is not None else "the config"
    for count in range(1, len(overrides) + 1):
        try:
            config_from_dict(apply_overrides(data, overrides[:count]), base_dir)
        except ConfigError:
            return f"--set {overrides[count - 1]}"
    return "--set"


def save_config(config: Config, path: str | Path) -> None:
    """Writes the resolved config as YAML, atomically, with absolute data paths (relative ones
    are taken from the working directory), so `nmt train --config RUN/config.yaml` works from
    anywhere."""
    atomic_write_text(path, yaml.safe_dump(_absolute(config), sort_keys=False))


def _absolute(section: Any) -> Any:
    """A section (or list of them) as plain data, with every path field made absolute."""
    if isinstance(section, tuple):
        return [_absolute(item) for item in section]
    data = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value) or isinstance(value, tuple):
            value = _absolute(value)
        elif f.metadata.get("path") and value:
            value = str(Path(value).expanduser().resolve())
        data[f.name] = value
    return data


def read_saved_config(path: str | Path) -> Config:
    """Reads a config written by `save_config` (paths are already absolute)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: is this a run directory made by `nmt train`?")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    try:
        return config_from_dict(data, None)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


class ResumeChanges(NamedTuple):
    """Fields that differ between a run's saved config and a new one, as "key: old -> new",
    grouped by what the change means (see CHANGE_KINDS)."""

    shape: list[str]
    data_order: list[str]
    init: list[str]
    free: list[str]


def resume_changes(old: Config, new: Config) -> ResumeChanges:
    """Classifies every changed field by its `change` metadata, so resume can act on it."""
    changes: dict[str, list[str]] = {kind: [] for kind in CHANGE_KINDS}
    for section in dataclasses.fields(Config):
        a, b = getattr(old, section.name), getattr(new, section.name)
        for f in dataclasses.fields(a):
            before, after = getattr(a, f.name), getattr(b, f.name)
            if before != after:
                changes[change_kind(f)].append(f"{section.name}.{f.name}: {before!r} -> {after!r}")
    return ResumeChanges(**changes)
