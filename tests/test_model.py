import keras
import numpy as np
import pytest
import tensorflow as tf

from nmt.config import ModelConfig, TrainingConfig
from nmt.model.seq2seq import Seq2Seq, build_model
from nmt.training.steps import make_optimizer, make_train_step

SOURCE = tf.constant([[5, 6, 7, 8, 0], [4, 9, 0, 0, 0]], tf.int32)
TARGET_IN = tf.constant([[2, 5, 6, 7], [2, 7, 0, 0]], tf.int32)


def tiny(**options) -> Seq2Seq:
    keras.utils.set_random_seed(0)
    settings = dict(
        embedding_size=8,
        hidden_size=8,
        encoder_layers=3,
        decoder_layers=3,
        residual_start=1,
        dropout=0.2,
    )
    settings.update(options)
    return build_model(ModelConfig(**settings), 20, 24)


@pytest.mark.parametrize("attention", ["general", "dot", "bahdanau"])
@pytest.mark.parametrize("input_feeding", [True, False])
@pytest.mark.parametrize("attention_layer", ["top", "bottom"])
def test_step_by_step_equals_teacher_forcing(attention, input_feeding, attention_layer):
    model = tiny(attention=attention, input_feeding=input_feeding, attention_layer=attention_layer)
    logits = model({"source": SOURCE, "target_in": TARGET_IN})
    assert logits.shape == (2, 4, 24)
    memory, state = model.encode(SOURCE)
    weights = model.step_weights()  # what the search uses: weights cast and fused once
    fused_state = state
    for t in range(TARGET_IN.shape[1]):
        out = model.step(TARGET_IN[:, t], state, memory)
        np.testing.assert_allclose(out.logits, logits[:, t], atol=1e-5)
        fused = model.step(TARGET_IN[:, t], fused_state, memory, weights)
        np.testing.assert_allclose(fused.logits, logits[:, t], atol=1e-5)
        state, fused_state = out.state, fused.state


def test_source_padding_changes_nothing_and_gets_no_attention():
    model = tiny()
    logits = model({"source": SOURCE, "target_in": TARGET_IN})
    wider = tf.pad(SOURCE, [[0, 0], [0, 3]])
    np.testing.assert_allclose(model({"source": wider, "target_in": TARGET_IN}), logits, atol=1e-6)
    memory, state = model.encode(wider)
    weights = model.step(TARGET_IN[:, 0], state, memory).attention.numpy()
    mask = wider.numpy() != 0
    assert np.all(weights[~mask] < 1e-12)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("attention", ["general", "bahdanau"])
def test_one_piece_sources_translate_without_a_warning(attention):
    """Keras' softmax warns on an axis of size 1; a batch of one-word lines must not print it."""
    import warnings

    model = tiny(attention=attention)
    one_piece = tf.constant([[5], [4]], tf.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logits = model({"source": one_piece, "target_in": TARGET_IN})
        memory, state = model.encode(one_piece)
        out = model.step(TARGET_IN[:, 0], state, memory)
    np.testing.assert_allclose(out.logits, logits[:, 0], atol=1e-5)
    np.testing.assert_allclose(out.attention, 1.0)


def test_dropout_only_in_training():
    model = tiny(dropout=0.5)
    inputs = {"source": SOURCE, "target_in": TARGET_IN}
    np.testing.assert_array_equal(model(inputs), model(inputs))
    assert not np.allclose(model(inputs, training=True), model(inputs, training=True))


def test_token_dropout_acts_in_training_only_and_keeps_the_default_model_unchanged():
    model, plain = tiny(dropout=0.0, token_dropout=0.5), tiny(dropout=0.0)
    inputs = {"source": SOURCE, "target_in": TARGET_IN}
    # Same weights and random states as without it, so switching it on changes nothing else.
    assert len(plain.non_trainable_variables) == len(model.non_trainable_variables) - 1
    np.testing.assert_array_equal(model(inputs), plain(inputs))
    assert not np.allclose(model(inputs, training=True), plain(inputs, training=True))


@pytest.mark.parametrize("attention_layer", ["top", "bottom"])
@pytest.mark.parametrize("input_feeding", [True, False])
def test_recurrent_dropout_acts_in_training_only_and_keeps_the_default_model_unchanged(
    attention_layer, input_feeding
):
    options = dict(dropout=0.0, attention_layer=attention_layer, input_feeding=input_feeding)
    model, plain = tiny(recurrent_dropout=0.5, **options), tiny(**options)
    inputs = {"source": SOURCE, "target_in": TARGET_IN}
    # The same weights and dropout seeds, plus one random state per LSTM stack (and the
    # encoder's bidirectional layer): switching it on changes nothing else.
    stacks = 2 + (2 if attention_layer == "bottom" else 1)
    assert len(model.non_trainable_variables) == len(plain.non_trainable_variables) + stacks
    np.testing.assert_array_equal(model(inputs), plain(inputs))
    np.testing.assert_array_equal(plain(inputs, training=True), plain(inputs, training=True))
    assert not np.allclose(model(inputs, training=True), plain(inputs, training=True))


def test_token_dropout_replaces_pieces_with_unk_but_never_padding_bos_or_eos():
    model = tiny(token_dropout=0.3)
    ids = tf.constant(np.random.default_rng(0).integers(0, 24, size=(200, 50)), tf.int32)
    dropped = model._drop_tokens(ids).numpy()
    changed = dropped != ids.numpy()
    assert np.all(dropped[changed] == 1)  # <unk>
    special = ids.numpy() <= 3  # padding, <unk>, <s>, </s>
    assert not changed[special].any()
    assert changed[~special].mean() == pytest.approx(0.3, abs=0.02)


def test_token_dropout_starts_at_its_step_in_the_train_step():
    """Before `token_dropout_start` training follows the run without token dropout exactly."""
    batch = {"source": SOURCE, "target_in": TARGET_IN, "target_out": TARGET_IN[:, ::-1]}

    def weights_after_each_step(**options):
        model = tiny(dropout=0.0, **options)
        optimizer = make_optimizer(TrainingConfig())
        train_step = make_train_step(model, optimizer, label_smoothing=0.0)
        for _ in range(3):
            train_step(batch)
            yield [v.numpy() for v in model.trainable_variables]

    plain = weights_after_each_step()
    delayed = weights_after_each_step(token_dropout=0.5, token_dropout_start=2)
    for step, (expected, actual) in enumerate(zip(plain, delayed, strict=True), start=1):
        same = all(np.array_equal(a, b) for a, b in zip(expected, actual, strict=True))
        assert same == (step <= 2), f"after step {step}"


def test_keras_save_and_load_give_identical_outputs(tmp_path):
    model = tiny(tie_output_embedding=True, attention="bahdanau")
    inputs = {"source": SOURCE, "target_in": TARGET_IN}
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded(inputs), model(inputs))


def test_checkpoint_round_trip_restores_every_weight(tmp_path):
    model = tiny()
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    other = tiny()
    for variable in other.trainable_variables:
        variable.assign(tf.zeros_like(variable))
    tf.train.Checkpoint(model=other).read(path).assert_existing_objects_matched()
    for a, b in zip(model.weights, other.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    inputs = {"source": SOURCE, "target_in": TARGET_IN}
    np.testing.assert_array_equal(other(inputs), model(inputs))


def test_tied_embedding_shares_the_matrix():
    model = tiny(tie_output_embedding=True)
    untied = tiny()
    vocab, size = 24, 8
    assert model.count_params() == untied.count_params() - vocab * size


def test_bfloat16_compute_uses_the_float32_weights_and_stays_close():
    """compute_dtype only changes the arithmetic: same variables, logits within bf16 rounding."""
    exact, fast = tiny(), tiny(compute_dtype="bfloat16")
    assert all(v.dtype == "float32" for v in fast.weights)
    fast.set_weights(exact.get_weights())
    inputs = {"source": SOURCE, "target_in": TARGET_IN}
    expected = exact(inputs)
    logits = fast(inputs)
    assert logits.dtype == "bfloat16"
    np.testing.assert_allclose(tf.cast(logits, tf.float32), expected, atol=0.05)
    memory, state = fast.encode(SOURCE)
    out = fast.step(TARGET_IN[:, 0], state, memory, fast.step_weights())
    np.testing.assert_allclose(tf.cast(out.logits, tf.float32), expected[:, 0], atol=0.05)


def test_gnmt_attention_is_queried_by_the_bottom_layer_and_feeds_the_upper_ones():
    model = tiny(attention_layer="bottom")
    decoder = model.decoder
    assert decoder.combine is None
    for lstm in decoder.upper.lstms:  # input [lower output; context]
        assert lstm.cell.kernel.shape[0] == 2 * decoder.hidden_size
    memory, state = model.encode(SOURCE)
    before = model.step(TARGET_IN[:, 0], state, memory)
    for lstm in decoder.upper.lstms:
        lstm.cell.kernel.assign(lstm.cell.kernel * 2.0)
    after = model.step(TARGET_IN[:, 0], state, memory)
    np.testing.assert_allclose(after.attention, before.attention)  # upper layers: no say
    assert not np.allclose(after.logits, before.logits)  # but they shape the output


def test_param_init_draws_every_weight_uniformly_like_opennmt():
    default = tiny()
    uniform = tiny(param_init=0.1)
    for weight in uniform.trainable_weights:
        values = np.asarray(weight)
        assert np.abs(values).max() <= 0.1
        assert values.std() > 0.02, weight.path  # drawn, not left at zero (biases too)
    # Keras' own initializers give the output projection a smaller range (Glorot) and the
    # biases zeros (forget gates one): the option really replaces them.
    assert any(np.all(np.asarray(w) == 0) for w in default.trainable_weights)
