import numpy as np
import pytest

from nmt.training.losses import masked_cross_entropy


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_smoothed_cross_entropy_matches_the_definition_and_skips_padding(eps):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 7)).astype("float32")
    labels = np.array([[4, 5, 0], [6, 0, 0]], "int32")  # 0 is padding
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = 0.0
    for b, t in [(0, 0), (0, 1), (1, 0)]:
        target = np.full(7, eps / 7)
        target[labels[b, t]] += 1 - eps
        expected -= (target * log_p[b, t]).sum()
    loss_sum, tokens = masked_cross_entropy(labels, logits, eps)
    assert float(tokens) == 3
    np.testing.assert_allclose(float(loss_sum), expected, rtol=1e-5)
