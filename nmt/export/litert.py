"""A LiteRT (`.tflite`) model for on-device use: an `encode` and a decoder `step` signature.

Why this form and not the whole search in one graph (measured with TF 2.21, ai-edge-litert
2.3.0): the search graph converts only with Select TF ops ("flex"), which ai-edge-litert's
interpreter cannot run ("Select TensorFlow op(s) ... not supported by this interpreter. Make
sure you apply/link the Flex delegate"); with built-in ops only the converter stops at the
encoder's TensorArrays ("'tf.TensorListReserve' op requires element_shape to be static") and,
with custom tensor-list ops, at the search's `x[:, None]` slices of dynamic batches
("'tf.StridedSlice' op is neither a custom op nor a flex op"). SentencePiece has no LiteRT
kernel either. What converts to built-in ops is one sentence at a time (batch 1, any source
length): `encode(source [1, T_s]) -> state_*, memory_*` and `step(tokens [1], state_*,
memory_*) -> log_probs [1, V], state_*`. `litert_runner` drives greedy search over `step` in
Python and tokenizes with the `sentencepiece` package, so a device needs neither TensorFlow
nor `nmt`.

The weights are frozen into constants before conversion: left as resource variables, the
converter keeps VAR_HANDLE/READ_VARIABLE ops that nothing initializes in the interpreter.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from nmt.config import DecodingConfig
from nmt.constants import BOS_ID, EOS_ID
from nmt.decoding.translator import Translator
from nmt.errors import NmtError
from nmt.export import litert_runner
from nmt.export.saved_model import tokenizer_files
from nmt.model.decoder import Memory
from nmt.model.seq2seq import Seq2Seq

MODEL_FILE = litert_runner.MODEL_FILE
SETTINGS_FILE = litert_runner.SETTINGS_FILE
_MEMORY = ("memory_values", "memory_keys", "memory_mask")
_SOURCE_SPEC = tf.TensorSpec([1, None], tf.int32, name="source")


class _StepFunctions(tf.Module):
    """One model's `encode` and `step` as concrete functions with named, flat tensors.

    The decoder state nest becomes `state_0 ... state_{n-1}` (tf.nest order) so the runner can
    pass `encode`'s outputs to `step` and `step`'s back to itself by name, knowing nothing of
    the model's layers.
    """

    def __init__(self, model: Seq2Seq):
        super().__init__(name="nmt_steps")
        self.model = model
        _, self._state_structure = model.encode(tf.constant([[BOS_ID]]))
        self.encode = tf.function(
            self._encode,
            input_signature=[_SOURCE_SPEC],
            autograph=False,
        ).get_concrete_function()
        outputs = self.encode.structured_outputs
        count = len(tf.nest.flatten(self._state_structure))
        self._state_names = [f"state_{i}" for i in range(count)]
        specs = {"tokens": tf.TensorSpec([1], tf.int32, name="tokens")}
        specs.update({n: tf.TensorSpec(x.shape, x.dtype, name=n) for n, x in outputs.items()})
        self.step_specs = specs
        self.step = tf.function(self._step, autograph=False).get_concrete_function(**specs)

    def _encode(self, source: tf.Tensor) -> dict[str, tf.Tensor]:
        """source [1, T_s] -> state_i [1, H], memory_values/keys [1, T_s, H], memory_mask."""
        memory, state = self.model.encode(source)
        named = {f"state_{i}": s for i, s in enumerate(tf.nest.flatten(state))}
        named.update(zip(_MEMORY, memory))
        return named

    def _step(self, tokens: tf.Tensor, **named: tf.Tensor) -> dict[str, tf.Tensor]:
        """tokens [1] and the named state and memory -> log_probs [1, V] and the next state."""
        state = tf.nest.pack_sequence_as(
            self._state_structure, [named[n] for n in self._state_names]
        )
        memory = Memory(*(named[n] for n in _MEMORY))
        out = self.model.step(tokens, state, memory, self.model.step_weights())
        result = {f"state_{i}": s for i, s in enumerate(tf.nest.flatten(out.state))}
        result["log_probs"] = tf.nn.log_softmax(tf.cast(out.logits, tf.float32))
        return result


def _frozen(function, signature: dict[str, tf.TensorSpec]):
    """`function` with its variables as constants, re-wrapped to keep its named outputs."""
    frozen = convert_variables_to_constants_v2(function, lower_control_flow=False)
    structure = function.structured_outputs

    names = [tensor.name.split(":")[0] for tensor in frozen.inputs]  # its flat argument order

    def call(**inputs):
        return tf.nest.pack_sequence_as(structure, frozen(*(inputs[n] for n in names)))

    return tf.function(call, autograph=False).get_concrete_function(**signature)


def float32_twin(model: Seq2Seq) -> Seq2Seq:
    """`model` itself if it computes in float32, else a float32 copy with the same weights.

    A `compute_dtype: bfloat16` run keeps float32 weights but casts to bfloat16 at every layer;
    LiteRT's CPU kernels have no bfloat16 matmuls, so the device model computes in float32 (its
    outputs may differ from `nmt translate`'s bfloat16 ones in the last bits).
    """
    if model.compute_dtype == "float32":
        return model
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        twin = Seq2Seq(model.source_vocab_size, model.target_vocab_size, **model.model_options)
        twin.build()
    finally:
        keras.config.set_dtype_policy(previous)
    twin.set_weights(model.get_weights())
    return twin


def convert(model: Seq2Seq, quantize: str | None, workdir: Path) -> bytes:
    """The `.tflite` bytes of `model`'s encode and step signatures.

    Args:
        model: one trained model.
        quantize: None for float32 weights, "int8" for dynamic-range int8 weights
            (`tf.lite.Optimize.DEFAULT`: weights stored as int8, activations stay float).
        workdir: an empty scratch folder for the intermediate (frozen) SavedModel.
    """
    functions = _StepFunctions(float32_twin(model))
    holder = tf.Module()
    holder.encode = _frozen(functions.encode, {"source": _SOURCE_SPEC})
    holder.step = _frozen(functions.step, functions.step_specs)
    tf.saved_model.save(
        holder, str(workdir), signatures={"encode": holder.encode, "step": holder.step}
    )
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(workdir), signature_keys=["encode", "step"]
    )
    if quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize is not None:
        raise NmtError(f"--quantize must be int8, got {quantize!r}")
    return converter.convert()


def save(
    translator: Translator,
    settings: DecodingConfig,
    tokenizer_dir: str | Path,
    directory: str | Path,
    quantize: str | None = None,
) -> None:
    """Writes model.tflite, the SentencePiece file(s), settings and the runner into `directory`.

    Args:
        translator: the loaded run (one checkpoint: the runner has no ensemble step).
        settings: the search settings; only greedy search (beam_size 1) runs on LiteRT.
        tokenizer_dir: the run's `tokenizer/` folder.
        directory: an empty folder (the caller makes it appear atomically).
        quantize: None or "int8".

    Raises:
        NmtError: an ensemble, or a beam size above 1.
    """
    if len(translator.models) > 1:
        raise NmtError("--format litert takes one --checkpoint; ensembles export as saved_model")
    if settings.beam_size != 1:
        raise NmtError(
            f"--format litert decodes greedily (--beam-size 1), got --beam-size "
            f"{settings.beam_size}; beam search ships in --format saved_model"
        )
    directory = Path(directory)
    data = convert(translator.model, quantize, directory / "frozen")
    shutil.rmtree(directory / "frozen")
    (directory / MODEL_FILE).write_bytes(data)
    source_file, target_file = tokenizer_files(tokenizer_dir)
    for file in {source_file, target_file}:
        shutil.copyfile(file, directory / file.name)
    config = litert_runner.RunnerSettings(
        source_model=source_file.name,
        target_model=target_file.name,
        max_source_length=translator.max_source_length,
        max_length_ratio=settings.max_length_ratio,
        max_length_offset=settings.max_length_offset,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        quantize=quantize or "none",
    )
    (directory / SETTINGS_FILE).write_text(json.dumps(config._asdict(), indent=2) + "\n")
    shutil.copyfile(litert_runner.__file__, directory / "litert_runner.py")
