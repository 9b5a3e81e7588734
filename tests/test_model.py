"""model.py: output shapes and ranges, serialisation of the custom layer, clear weight errors."""
import math

import numpy as np
import pytest

import model
import postprocess
from conftest import requires_jax, run_under_jax


@pytest.fixture(scope="module")
def tiny_east():
    return model.build_east(64, backbone="mobilenetv2", backbone_weights="none")


def test_outputs_shapes_and_ranges(tiny_east):
    images = np.random.default_rng(0).uniform(-1, 1, (2, 96, 64, 3)).astype(np.float32)
    score_map, geo_map = tiny_east(images)
    assert tuple(score_map.shape) == (2, 96 // model.OUTPUT_STRIDE, 64 // model.OUTPUT_STRIDE, 1)
    assert tuple(geo_map.shape) == (2, 24, 16, 5)
    score_map, geo_map = np.asarray(score_map), np.asarray(geo_map)
    assert 0 <= score_map.min() and score_map.max() <= 1
    assert 0 <= geo_map[..., :4].min() and geo_map[..., :4].max() <= 64
    assert np.abs(geo_map[..., 4]).max() <= math.pi / 4


def test_resnet50_taps_build():
    east = model.build_east(64, backbone="resnet50", backbone_weights="none")
    score_map, geo_map = east(np.zeros((1, 64, 64, 3), np.float32))
    assert tuple(score_map.shape) == (1, 16, 16, 1) and tuple(geo_map.shape) == (1, 16, 16, 5)


def test_training_model_scales_uint8_pixels_and_packs_outputs(tiny_east):
    pixels = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    packed = np.asarray(model.training_model(tiny_east)(pixels))
    assert packed.shape == (2, 16, 16, 6)
    score_map, geo_map = tiny_east(postprocess.normalize_image(pixels))  # what eval.py feeds
    np.testing.assert_allclose(packed, np.concatenate([score_map, geo_map], axis=-1), rtol=1e-5, atol=1e-5)


def test_rbox_outputs_layer_round_trips_config():
    layer = model.RboxOutputs(128, name="heads")
    clone = model.RboxOutputs.from_config(layer.get_config())
    assert clone.input_size == 128
    score_map, geo_map = clone(np.zeros((1, 2, 2, 6), np.float32))
    assert np.allclose(score_map, 0.5) and np.allclose(np.asarray(geo_map)[..., :4], 64.0)
    assert np.allclose(np.asarray(geo_map)[..., 4], 0.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(input_size=100), "multiple of 32"),
    (dict(backbone="vgg"), "backbone must be one of"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.build_east(**{"backbone_weights": "none", **kwargs})


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(model.BackboneWeightsError, match="no file at"):
        model.build_east(64, backbone="mobilenetv2", backbone_weights=str(tmp_path / "nope.h5"))


def test_unreadable_weights_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(model.BackboneWeightsError, match="--backbone_weights none"):
        model.build_east(64, backbone="mobilenetv2", backbone_weights=str(bad))


JAX_SCRIPT = """
import sys, numpy as np, model
east = model.build_east(64, backbone="mobilenetv2", backbone_weights="none")
score_map, geo_map = east(np.zeros((1, 64, 64, 3), np.float32))
assert tuple(score_map.shape) == (1, 16, 16, 1) and tuple(geo_map.shape) == (1, 16, 16, 5)
assert "tensorflow" not in sys.modules, "model.py must not import tensorflow under JAX"
print("ok")
"""


@requires_jax
def test_builds_under_jax_without_tensorflow():
    run_under_jax(JAX_SCRIPT, timeout=300)
