"""model.py: output shapes and ranges, serialisation of the custom layer, clear weight errors."""
import math

import keras
import numpy as np
import pytest

import model
import network_io
from conftest import requires_jax, run_under_jax


@pytest.fixture(scope="module")
def tiny_east():
    return model.build_east(64, backbone="mobilenetv2", backbone_weights="none")


def test_outputs_shapes_and_ranges(tiny_east):
    images = np.random.default_rng(0).uniform(0, 255, (2, 96, 64, 3)).astype(np.float32)  # pixel values
    score_map, geo_map = tiny_east(images)
    assert tuple(score_map.shape) == (2, 96 // model.OUTPUT_STRIDE, 64 // model.OUTPUT_STRIDE, 1)
    assert tuple(geo_map.shape) == (2, 24, 16, 5)
    score_map, geo_map = np.asarray(score_map), np.asarray(geo_map)
    assert 0 <= score_map.min() and score_map.max() <= 1
    assert 0 <= geo_map[..., :4].min() and geo_map[..., :4].max() <= network_io.DISTANCE_SCALE
    assert np.abs(geo_map[..., 4]).max() <= math.pi / 4


def test_resnet50_taps_build():
    east = model.build_east(64, backbone="resnet50", backbone_weights="none")
    score_map, geo_map = east(np.zeros((1, 64, 64, 3), np.float32))
    assert tuple(score_map.shape) == (1, 16, 16, 1) and tuple(geo_map.shape) == (1, 16, 16, 5)


def test_tiny_backbone_taps_every_stride_and_has_no_pretrained_weights():
    east = model.build_east(64, backbone="tiny", backbone_weights="none")
    taps = [east.get_layer(name).output for name in model.BACKBONE_TAPS["tiny"]]
    features = keras.Model(east.input, taps)(np.zeros((1, 64, 128, 3), np.float32))
    assert [tuple(feature.shape[1:3]) for feature in features] == [(64 // s, 128 // s) for s in (4, 8, 16, 32)]
    score_map, geo_map = east(np.zeros((1, 96, 64, 3), np.float32))
    assert tuple(score_map.shape) == (1, 24, 16, 1) and tuple(geo_map.shape) == (1, 24, 16, 5)
    assert east.get_layer("pixel_adapter").convention == "unit_range"
    with pytest.raises(model.BackboneWeightsError, match="no pretrained weights"):
        model.build_east(64, backbone="tiny", backbone_weights="imagenet")


def test_training_model_scales_uint8_pixels_and_packs_outputs(tiny_east):
    pixels = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    packed = np.asarray(model.training_model(tiny_east)(pixels))
    assert packed.shape == (2, 16, 16, 6)
    score_map, geo_map = tiny_east(pixels.astype(np.float32))  # what eval.py feeds: pixel values
    np.testing.assert_allclose(packed, np.concatenate([score_map, geo_map], axis=-1), rtol=1e-5, atol=1e-5)


def test_rbox_outputs_layer_round_trips_config():
    layer = model.RboxOutputs(128, name="heads")
    clone = model.RboxOutputs.from_config(layer.get_config())
    assert clone.distance_scale == 128
    score_map, geo_map = clone(np.zeros((1, 2, 2, 6), np.float32))
    assert np.allclose(score_map, 0.5) and np.allclose(np.asarray(geo_map)[..., :4], 64.0)
    assert np.allclose(np.asarray(geo_map)[..., 4], 0.0)


def test_rbox_outputs_reads_the_legacy_input_size_config():
    legacy = {**model.RboxOutputs(name="heads").get_config(), "input_size": 64}
    del legacy["distance_scale"]
    assert model.RboxOutputs.from_config(legacy).distance_scale == 64


def test_distance_scale_is_fixed_not_the_input_size():
    """Same weights at input_size 64 and 96: the same distances (the head no longer scales by input_size)."""
    small = model.build_east(64, backbone="mobilenetv2", backbone_weights="none")
    large = model.build_east(96, backbone="mobilenetv2", backbone_weights="none")
    large.set_weights(small.get_weights())
    pixels = np.random.default_rng(2).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(np.asarray(small(pixels)[1]), np.asarray(large(pixels)[1]), rtol=1e-5, atol=1e-4)
    assert model.network_config(small) == {"distance_scale": network_io.DISTANCE_SCALE,
                                           "pixel_convention": "unit_range"}
    legacy = model.build_east(64, backbone="mobilenetv2", backbone_weights="none", distance_scale=64)
    legacy.set_weights(small.get_weights())
    np.testing.assert_allclose(np.asarray(legacy(pixels)[1])[..., :4] * (512 / 64),
                               np.asarray(small(pixels)[1])[..., :4], rtol=1e-4, atol=1e-3)


def _backbone_input(east, first_backbone_layer: str, pixels):
    """What the backbone's first layer receives for ``pixels``."""
    import keras

    probe = keras.Model(east.input, east.get_layer(first_backbone_layer).input)
    return np.asarray(probe(pixels))


def test_resnet50_sees_caffe_bgr_minus_means():
    import keras

    east = model.build_east(64, backbone="resnet50", backbone_weights="none")
    pixels = np.random.default_rng(3).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    expected = keras.applications.resnet50.preprocess_input(pixels.astype(np.float32))
    np.testing.assert_allclose(_backbone_input(east, "conv1_pad", pixels), expected, atol=1e-3)
    assert model.network_config(east)["pixel_convention"] == "caffe"


def test_mobilenetv2_sees_tf_mode_unit_range(tiny_east):
    import keras

    pixels = np.random.default_rng(4).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    expected = keras.applications.mobilenet_v2.preprocess_input(pixels.astype(np.float32))
    np.testing.assert_allclose(_backbone_input(tiny_east, "Conv1", pixels), expected, atol=1e-3)


def test_legacy_convention_feeds_unit_range_rgb_to_resnet50():
    """A checkpoint trained before the adapter rebuilds with pixel / 127.5 - 1, as it was trained."""
    east = model.build_east(64, backbone="resnet50", backbone_weights="none", pixel_convention="unit_range")
    pixels = np.random.default_rng(5).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(_backbone_input(east, "conv1_pad", pixels), pixels / 127.5 - 1.0, atol=1e-5)


def test_pixel_adapter_round_trips_config_and_refuses_unknown_conventions():
    layer = model.PixelAdapter("caffe", name="adapter")
    assert model.PixelAdapter.from_config(layer.get_config()).convention == "caffe"
    with pytest.raises(ValueError, match="convention must be one of"):
        model.PixelAdapter("bgr")


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
score_map, geo_map = east(np.zeros((1, 64, 64, 3), np.uint8))
assert tuple(score_map.shape) == (1, 16, 16, 1) and tuple(geo_map.shape) == (1, 16, 16, 5)
assert "tensorflow" not in sys.modules, "model.py must not import tensorflow under JAX"
print("ok")
"""


@requires_jax
def test_builds_under_jax_without_tensorflow():
    run_under_jax(JAX_SCRIPT, timeout=300)
