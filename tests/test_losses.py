"""losses.py against values worked out by hand on tiny maps (TensorFlow, and JAX if installed)."""
import json
import math

import numpy as np
import pytest

import losses
from conftest import requires_jax, run_under_jax


def _maps(height=2, width=2):
    y_true = np.zeros((1, height, width, 7), np.float32)
    y_pred = np.zeros((1, height, width, 6), np.float32)
    y_true[..., 6] = 1.0  # training_mask
    return y_true, y_pred


def _value(tensor) -> float:
    return float(np.asarray(tensor))


def test_perfect_prediction_has_zero_geo_loss():
    y_true, y_pred = _maps()
    y_true[..., 0] = 1.0
    y_true[..., 1:5] = [3.0, 4.0, 5.0, 6.0]
    y_true[..., 5] = 0.3
    y_pred[..., 0] = 1.0
    y_pred[..., 1:6] = y_true[..., 1:6]
    assert _value(losses.geo_loss(y_true, y_pred)) == pytest.approx(0.0, abs=1e-6)
    # dice: intersection 4, union 4 + 4 + 1e-5
    assert _value(losses.score_loss(y_true, y_pred)) == pytest.approx(0.01 * (1 - 8 / (8 + 1e-5)), abs=1e-9)


def test_known_iou_and_angle():
    y_true, y_pred = _maps(1, 1)
    y_true[..., 0] = 1.0
    y_true[..., 1:5] = 2.0           # 4x4 box, area 16
    y_pred[..., 1:5] = 1.0           # 2x2 box inside it, area 4 -> intersection 4, union 16
    y_pred[..., 5] = math.pi / 3     # cos = 0.5
    expected = -math.log((4 + 1) / (16 + 1)) + 20 * (1 - 0.5)
    assert _value(losses.geo_loss(y_true, y_pred)) == pytest.approx(expected, rel=1e-6)


def test_partial_overlap_iou():
    y_true, y_pred = _maps(1, 1)
    y_true[..., 0] = 1.0
    y_true[..., 1:5] = [1.0, 3.0, 1.0, 1.0]  # h 2, w 4, area 8
    y_pred[..., 1:5] = [2.0, 1.0, 0.0, 2.0]  # h 2, w 3, area 6; intersection h 1 * w 2 = 2
    expected = -math.log((2 + 1) / (8 + 6 - 2 + 1))
    assert _value(losses.geo_loss(y_true, y_pred)) == pytest.approx(expected, rel=1e-6)


def test_masked_and_negative_pixels_contribute_nothing():
    y_true, y_pred = _maps(1, 3)
    y_true[0, 0, :, 0] = [1.0, 1.0, 0.0]   # pixel 2 is background
    y_true[0, 0, 1, 6] = 0.0               # pixel 1 is masked out
    y_true[..., 1:5] = 2.0
    y_pred[..., 1:5] = 2.0
    y_pred[0, 0, 1, 1:5] = 50.0            # wrong, but masked
    y_pred[0, 0, 2, 1:5] = 50.0            # wrong, but background
    y_pred[0, 0, 1, 0] = 1.0               # score errors on the masked pixel only
    assert _value(losses.geo_loss(y_true, y_pred)) == pytest.approx(0.0, abs=1e-6)
    # score: only pixels 0 and 2 count; truth [1, 0], prediction [0, 0] -> dice 1
    assert _value(losses.score_loss(y_true, y_pred)) == pytest.approx(0.01, rel=1e-5)


def test_no_positive_pixel_gives_zero_geo_loss_and_east_loss_adds_terms():
    y_true, y_pred = _maps()
    y_pred[..., 1:5] = 7.0
    assert _value(losses.geo_loss(y_true, y_pred)) == 0.0
    y_true[0, 0, 0, 0] = 1.0
    y_true[0, 0, 0, 1:5] = 1.0
    total = _value(losses.east_loss(y_true, y_pred))
    assert total == pytest.approx(_value(losses.score_loss(y_true, y_pred)) + _value(losses.geo_loss(y_true, y_pred)))
    # What compile() gets: the same value as a (1,) vector (tests/test_distributed.py shows why).
    for_fit = np.asarray(losses.east_loss_for_fit(y_true, y_pred))
    assert for_fit.shape == (1,) and for_fit[0] == pytest.approx(total)


def test_geo_loss_averages_over_all_pixels_like_east_tf2():
    y_true, y_pred = _maps(1, 4)
    y_true[0, 0, 0, 0] = 1.0                 # one text pixel out of four
    y_true[..., 1:5] = 2.0                   # 4x4 box
    y_pred[..., 1:5] = 1.0                   # 2x2 box: intersection 4, union 16
    pixel = -math.log((4 + 1) / (16 + 1))
    assert _value(losses.geo_loss(y_true, y_pred)) == pytest.approx(pixel / 4, rel=1e-6)
    assert _value(losses.geo_loss(y_true, y_pred, normalization="text_pixels")) == pytest.approx(pixel, rel=1e-6)
    with pytest.raises(ValueError, match="normalization must be"):
        losses.geo_loss(y_true, y_pred, normalization="positive")


def test_bad_shape_raises():
    with pytest.raises(ValueError, match="y_true must be"):
        losses.east_loss(np.zeros((1, 2, 2, 6), np.float32), np.zeros((1, 2, 2, 6), np.float32))


JAX_SCRIPT = """
import json, math, numpy as np, keras, losses
assert keras.backend.backend() == "jax"
y_true = np.zeros((1, 1, 1, 7), np.float32); y_pred = np.zeros((1, 1, 1, 6), np.float32)
y_true[..., 0] = 1; y_true[..., 6] = 1; y_true[..., 1:5] = 2; y_pred[..., 1:5] = 1; y_pred[..., 5] = math.pi / 3
print(json.dumps([float(losses.geo_loss(y_true, y_pred)), float(losses.score_loss(y_true, y_pred))]))
"""


@requires_jax
def test_same_values_under_jax():
    geo, score = json.loads(run_under_jax(JAX_SCRIPT, timeout=120).strip().splitlines()[-1])
    assert geo == pytest.approx(-math.log(5 / 17) + 10, rel=1e-6)
    assert score == pytest.approx(0.01, rel=1e-4)
