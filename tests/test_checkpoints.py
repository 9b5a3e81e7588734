"""checkpoints.py: the model config a checkpoint records (distance scale, pixel convention), legacy
checkpoints without it, and fine-tuning at another input size without any download."""
import json
import shutil

import numpy as np
import pytest

import augmentation
import checkpoints
import data_preprocessor
import inference_record
import model as east_model
import network_io
import train
from conftest import TINY


@pytest.fixture
def trained_64(tiny_trained_run):
    """The session's shared tiny-backbone run at input 64 (conftest.tiny_trained_run), and its tiny data."""
    return tiny_trained_run


def _make_legacy(checkpoint_folder, destination):
    """A copy of a checkpoint whose state.json predates distance_scale / pixel_convention."""
    shutil.copytree(checkpoint_folder, destination)
    state_path = destination / checkpoints.STATE_FILE
    state = json.loads(state_path.read_text())
    for key in checkpoints.NETWORK_CONFIG_KEYS:
        del state["model"][key]
    del state["inference"]
    state_path.write_text(json.dumps(state))
    return destination


def test_state_records_the_network_config(trained_64):
    state = checkpoints.read_state(checkpoints.latest_checkpoint(trained_64["run"]))
    assert state["model"] == {"input_size": 64, "backbone": "tiny",
                              "distance_scale": network_io.DISTANCE_SCALE, "pixel_convention": "unit_range"}
    # The eval scale the run's data and augmentation imply, and its --eval_core_thresh, for eval.py and serve.py.
    samples = data_preprocessor.load_dataset(trained_64["data"]).samples
    implied = augmentation.implied_max_side_len(samples, train.augment_config(trained_64["config"]))
    assert state["inference"] == {"max_side_len": implied, "core_thresh": 0.0} and implied % 32 == 0
    info = checkpoints.load_model_for_inference(trained_64["run"])[1]
    assert (info["max_side_len"], info["core_thresh"]) == (implied, 0.0)
    # A record that is missing or out of range reads as none: eval.py then falls back to its default (off).
    assert inference_record.core_thresh(state.get("nothing")) is None
    assert inference_record.core_thresh({"core_thresh": 1.5}) is None
    assert inference_record.core_thresh({"core_thresh": True}) is None
    assert inference_record.core_thresh({"core_thresh": 0.75}) == 0.75
    assert inference_record.core_thresh(state[inference_record.STATE_KEY]) == 0.0


def test_legacy_state_means_distance_scale_input_size_and_unit_range(trained_64, tmp_path):
    modern_ckpt = checkpoints.latest_checkpoint(trained_64["run"])
    legacy_ckpt = _make_legacy(modern_ckpt, tmp_path / "ckpt-1")
    assert checkpoints.network_options(checkpoints.read_state(legacy_ckpt)) == {
        "distance_scale": 64, "pixel_convention": "unit_range"}
    assert checkpoints.network_options(None) == {}
    legacy, info = checkpoints.load_model_for_inference(legacy_ckpt)
    modern, _ = checkpoints.load_model_for_inference(modern_ckpt)
    assert info["distance_scale"] == 64 and info["pixel_convention"] == "unit_range"
    assert info["max_side_len"] is None  # no recorded eval scale: eval.py falls back to its 2400
    assert info["core_thresh"] is None  # no recorded core filter: eval.py falls back to 0 (off)
    pixels = np.random.default_rng(0).integers(0, 256, (1, 64, 96, 3), dtype=np.uint8)
    legacy_geo, modern_geo = np.asarray(legacy(pixels)[1]), np.asarray(modern(pixels)[1])
    # Same weights; only the head's scale differs: 64 px (legacy) against 512 px.
    np.testing.assert_allclose(legacy_geo[..., :4] * (network_io.DISTANCE_SCALE / 64), modern_geo[..., :4],
                               rtol=1e-4, atol=1e-3)


def test_resume_is_exact_but_fine_tuning_takes_any_input_size():
    state = {"model": {"input_size": 64, "backbone": "mobilenetv2"}}
    with pytest.raises(checkpoints.CheckpointError, match="input_size 64 there, 96 asked"):
        checkpoints.check_model_config(state, {"input_size": 96, "backbone": "mobilenetv2"}, "run")
    checkpoints.check_model_config(state, {"input_size": 96, "backbone": "mobilenetv2"}, "run", fine_tune=True)
    with pytest.raises(checkpoints.CheckpointError, match="backbone 'mobilenetv2' there, 'resnet50' asked"):
        checkpoints.check_model_config(state, {"input_size": 96, "backbone": "resnet50"}, "run", fine_tune=True)


def test_pretrained_weights_refuse_a_network_built_for_other_weights(trained_64):
    network = east_model.build_east(64, backbone="tiny", backbone_weights="none", distance_scale=64)
    with pytest.raises(checkpoints.CheckpointError, match="distance_scale"):
        checkpoints.load_pretrained_weights(network, trained_64["run"], {"input_size": 64, "backbone": "tiny"})


def _forbid_downloads(monkeypatch):
    """Make every keras download raise, so a test proves none is attempted."""
    import keras.src.utils.file_utils as file_utils

    def no_download(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args[:2]}")

    monkeypatch.setattr(file_utils, "get_file", no_download)


@pytest.mark.parametrize("legacy", [False, True])
def test_fine_tune_at_input_96_from_a_64_checkpoint_downloads_nothing(trained_64, tmp_path, monkeypatch, legacy):
    source = trained_64["run"]
    if legacy:
        _make_legacy(checkpoints.latest_checkpoint(source), tmp_path / "legacy" / "ckpt-1")
        source = tmp_path / "legacy" / "ckpt-1"
    _forbid_downloads(monkeypatch)
    config = train.TrainConfig(**{**TINY, "input_size": 96, "backbone_weights": "imagenet"},
                               training_data_path=str(trained_64["data"]), checkpoint_path=str(tmp_path / "tune"),
                               max_steps=1, save_checkpoint_steps=1, pretrained_model_path=str(source))
    lines = []
    train.run_training(config, report=lines.append)
    assert any("fine-tuning from" in line for line in lines)
    state = checkpoints.read_state(tmp_path / "tune" / "ckpt-1")
    # The new run keeps the source weights' distance scale and pixel convention, at its own input size.
    expected_scale = 64 if legacy else network_io.DISTANCE_SCALE
    assert state["model"] == {"input_size": 96, "backbone": "tiny", "distance_scale": expected_scale,
                              "pixel_convention": "unit_range"}


def test_fine_tuning_a_mobilenetv2_checkpoint_asks_keras_applications_for_no_weights(trained_64, tmp_path,
                                                                                      monkeypatch):
    """The test above on a real keras.applications backbone, whose 'imagenet' weights would download:
    a MobileNetV2 checkpoint saved by hand (no training needed) is fine-tuned with downloads forbidden."""
    import keras

    network = east_model.build_east(64, backbone="mobilenetv2", backbone_weights="none")
    optimizer = keras.optimizers.Adam(1e-4)
    optimizer.build(network.trainable_variables)
    state = {"seed": 0, "model": {"input_size": 64, "backbone": "mobilenetv2", **east_model.network_config(network)}}
    checkpoints.save_checkpoint(tmp_path / "base", 5, network, optimizer, state)
    _forbid_downloads(monkeypatch)
    config = train.TrainConfig(**{**TINY, "backbone": "mobilenetv2", "input_size": 96, "backbone_weights": "imagenet"},
                               training_data_path=str(trained_64["data"]), checkpoint_path=str(tmp_path / "tune"),
                               max_steps=1, save_checkpoint_steps=1, pretrained_model_path=str(tmp_path / "base"))
    train.run_training(config)
    tuned, info = checkpoints.load_model_for_inference(str(tmp_path / "tune"))
    assert info["backbone"] == "mobilenetv2" and info["input_size"] == 96
    assert len(tuned.weights) == len(network.weights)
