"""A SavedModel that translates text to text, with SentencePiece inside the graph.

The `serving_default` signature takes `text: tf.string [B]` and returns `translations:
tf.string [B]` and `scores: float32 [B]`, so a consumer needs TensorFlow and tensorflow-text
(for the SentencePiece ops), not `nmt`. The graph does what `Translator.translate` does: it
tokenizes with the run's own SentencePiece model(s), truncates inputs to `max_source_length`
pieces, sorts the non-empty inputs by length, decodes them `batch_size` at a time with the
Translator's own search (greedy or beam, the same `tf.while_loop`s), detokenizes, and puts
each translation back at its input's position. Sorting and batching as the Translator does
makes the batches, and so the floating-point sums, the same: the texts are identical to
`nmt translate`'s, not merely close. Empty inputs give empty translations with score 0.

Shapes: B input batch, b one search batch, T_s source pieces, T output pieces.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tensorflow as tf
import tensorflow_text as tf_text

from nmt.config import DecodingConfig
from nmt.constants import PAD_ID
from nmt.data.tokenizer import JOINT_MODEL, SOURCE_MODEL, TARGET_MODEL
from nmt.decoding.translator import Translator
from nmt.errors import NmtError

SIGNATURE = "serving_default"


def tokenizer_files(tokenizer_dir: str | Path) -> tuple[Path, Path]:
    """The (source, target) SentencePiece model files of a run's `tokenizer/` folder.

    A joint tokenizer gives the same file twice.

    Raises:
        NmtError: neither a joint model nor a source + target pair is there.
    """
    tokenizer_dir = Path(tokenizer_dir)
    if (tokenizer_dir / JOINT_MODEL).is_file():
        return tokenizer_dir / JOINT_MODEL, tokenizer_dir / JOINT_MODEL
    source, target = tokenizer_dir / SOURCE_MODEL, tokenizer_dir / TARGET_MODEL
    if source.is_file() and target.is_file():
        return source, target
    raise NmtError(f"{tokenizer_dir}: no SentencePiece model ({JOINT_MODEL} or {SOURCE_MODEL})")


class TextTranslator(tf.Module):
    """The exported module: the models' variables, the tokenizers and the serving function.

    Args:
        translator: the loaded models (one, or an ensemble) and their settings.
        settings: the search settings baked into the graph (`n_best` is forced to 1).
        source_model: the source SentencePiece model file's bytes.
        target_model: the target one's (the same bytes for a joint tokenizer).
    """

    def __init__(
        self,
        translator: Translator,
        settings: DecodingConfig,
        source_model: bytes,
        target_model: bytes,
    ):
        super().__init__(name="nmt_translator")
        self._translator = translator
        self.models = list(translator.models)  # tracked, so their variables are saved
        self.settings = dataclasses.replace(settings, n_best=1)
        self.max_source_length = translator.max_source_length
        self.source_tokenizer = tf_text.SentencepieceTokenizer(
            model=source_model, out_type=tf.int32
        )
        self.target_tokenizer = (
            self.source_tokenizer
            if target_model == source_model
            else tf_text.SentencepieceTokenizer(model=target_model, out_type=tf.int32)
        )
        self.serve = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec([None], tf.string, name="text")],
            autograph=False,  # explicit while_loops only, as in the Translator
        )

    def _serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        """text [B] -> {"translations": [B] tf.string, "scores": [B] float32}."""
        ids = self.source_tokenizer.tokenize(text)[:, : self.max_source_length]  # [B, None]
        lengths = ids.row_lengths()
        # Non-empty inputs, shortest first; a stable sort keeps the Translator's batches.
        non_empty = tf.reshape(tf.where(lengths > 0), [-1])
        order = tf.gather(non_empty, tf.argsort(tf.gather(lengths, non_empty), stable=True))
        texts, scores = self._translate_in_batches(tf.gather(ids, order))
        # Put every result back at its input's position; empty inputs get "" and 0.
        empty = tf.reshape(tf.where(tf.equal(lengths, 0)), [-1])
        positions = tf.concat([order, empty], 0)
        inverse = tf.math.invert_permutation(positions)
        texts = tf.concat([texts, tf.fill(tf.shape(empty), "")], 0)
        scores = tf.concat([scores, tf.zeros(tf.shape(empty), tf.float32)], 0)
        return {
            "translations": tf.gather(texts, inverse, name="translations"),
            "scores": tf.gather(scores, inverse, name="scores"),
        }

    def _translate_in_batches(self, ids: tf.RaggedTensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Sorted ragged source ids [n, None] -> texts [n], scores [n], `batch_size` at a time."""
        count = tf.cast(ids.nrows(), tf.int32)
        size = self.settings.batch_size
        batches = (count + size - 1) // size
        texts = tf.TensorArray(tf.string, size=batches, infer_shape=False, element_shape=[None])
        scores = tf.TensorArray(tf.float32, size=batches, infer_shape=False, element_shape=[None])

        def body(i, texts, scores):
            source = ids[i * size : (i + 1) * size].to_tensor(default_value=PAD_ID)  # [b, T_s]
            found = self._translator.search(source, self.settings)  # tokens [b, 1, T]
            pieces = tf.RaggedTensor.from_tensor(found.tokens[:, 0], lengths=found.lengths[:, 0])
            text = self.target_tokenizer.detokenize(pieces)
            # As the Translator's `_one_line`: one input stays one output line.
            text = tf.strings.regex_replace(text, "[\r\n]", " ")
            return i + 1, texts.write(i, text), scores.write(i, found.scores[:, 0])

        _, texts, scores = tf.while_loop(
            lambda i, *_: i < batches, body, (tf.constant(0), texts, scores)
        )
        return texts.concat(), scores.concat()


def save(
    translator: Translator,
    settings: DecodingConfig,
    tokenizer_dir: str | Path,
    directory: str | Path,
) -> None:
    """Writes the SavedModel of `translator` with `settings` into `directory` (must not exist).

    Args:
        translator: the loaded run.
        settings: search settings for the graph.
        tokenizer_dir: the run's `tokenizer/` folder (its SentencePiece files go in the graph).
        directory: where to write; the caller makes it appear atomically.
    """
    source_file, target_file = tokenizer_files(tokenizer_dir)
    module = TextTranslator(
        translator, settings, source_file.read_bytes(), target_file.read_bytes()
    )
    tf.saved_model.save(
        module, str(directory), signatures={SIGNATURE: module.serve.get_concrete_function()}
    )
