"""checkpoints.py: a damaged (truncated) checkpoint is named as damaged, skipped for the newest
intact one with a message, and never deleted."""
import json
from pathlib import Path

import keras
import numpy as np
import pytest

import checkpoints
import model as east_model

MODEL_CONFIG = {"input_size": 64, "backbone": "tiny"}


@pytest.fixture(scope="module")
def network():
    return east_model.build_east(64, backbone="tiny", backbone_weights="none")


def _optimizer(network):
    optimizer = keras.optimizers.Adam()
    optimizer.build(network.trainable_variables)
    return optimizer


def _saved_run(folder: Path, network, steps=(1, 2)) -> Path:
    optimizer = _optimizer(network)
    for step in steps:
        optimizer.iterations.assign(step)
        checkpoints.save_checkpoint(folder, step, network, optimizer, {"model": MODEL_CONFIG, "seed": 0})
    return folder


def _truncate(path: Path) -> bytes:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path.read_bytes()


def _tree(folder: Path) -> dict:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("damaged_file", [checkpoints.WEIGHTS_FILE, checkpoints.OPTIMIZER_FILE,
                                          checkpoints.STATE_FILE])
def test_truncated_latest_falls_back_to_the_newest_intact_one(tmp_path, network, damaged_file):
    folder = _saved_run(tmp_path / "run", network)
    _truncate(folder / "ckpt-2" / damaged_file)
    before = _tree(folder)
    messages = []
    assert checkpoints.latest_checkpoint(folder, messages.append) == folder / "ckpt-1"
    assert len(messages) == 1
    assert f"ckpt-2/{damaged_file} is damaged (" in messages[0]
    assert "using the newest intact checkpoint ckpt-1 instead (the damaged one is left in place)" in messages[0]
    _, info = checkpoints.load_model_for_inference(folder)  # eval.py's path
    assert info["step"] == 1
    assert _tree(folder) == before


def test_damaged_weights_are_not_called_a_model_mismatch(tmp_path, network):
    folder = _saved_run(tmp_path / "run", network, steps=(1,))
    _truncate(folder / "ckpt-1" / checkpoints.WEIGHTS_FILE)
    with pytest.raises(checkpoints.DamagedCheckpointError, match=r"model.weights.h5 is damaged \(.*truncated"):
        checkpoints.restore_checkpoint(folder / "ckpt-1", network, _optimizer(network))
    with pytest.raises(checkpoints.DamagedCheckpointError,
                       match=r"no intact checkpoint in .*model.weights.h5 is damaged.*Nothing was changed"):
        checkpoints.load_model_for_inference(folder)
    with pytest.raises(checkpoints.DamagedCheckpointError, match="is damaged"):
        checkpoints.load_model_for_inference(folder / "ckpt-1")  # asked for by name: no fallback
    assert (folder / "ckpt-1" / checkpoints.WEIGHTS_FILE).is_file()


def test_resaving_a_damaged_step_keeps_the_damaged_copy(tmp_path, network):
    folder = _saved_run(tmp_path / "run", network)
    damaged = _truncate(folder / "ckpt-2" / checkpoints.OPTIMIZER_FILE)
    resumed_from = checkpoints.latest_checkpoint(folder, lambda message: None)
    state = checkpoints.restore_checkpoint(resumed_from, network, optimizer := _optimizer(network))
    assert state["step"] == 1
    optimizer.iterations.assign(2)
    checkpoints.save_checkpoint(folder, 2, network, optimizer, {"model": MODEL_CONFIG, "seed": 0}, max_to_keep=1)
    assert (folder / "ckpt-2.damaged" / checkpoints.OPTIMIZER_FILE).read_bytes() == damaged
    assert checkpoints.latest_checkpoint(folder) == folder / "ckpt-2"
    checkpoints.check_intact(folder / "ckpt-2")
    checkpoints.check_training_folder(folder)  # the kept copy is part of a training run


def test_resume_skips_a_truncated_checkpoint(tiny_trained_run, tmp_path, caplog):
    import shutil

    import train
    from conftest import shared_run_config

    shutil.copytree(tiny_trained_run["run"], tmp_path / "run")
    damaged = _truncate(tmp_path / "run" / "ckpt-60" / checkpoints.WEIGHTS_FILE)
    reports = []
    config = shared_run_config(tiny_trained_run["data"], tmp_path / "run", max_steps=61)
    result = train.run_training(config, report=reports.append)
    assert "resumed from step 40" in reports and result["step"] == 61
    assert any("ckpt-60/model.weights.h5 is damaged" in record.getMessage() for record in caplog.records)
    assert (tmp_path / "run" / "ckpt-60.damaged" / checkpoints.WEIGHTS_FILE).read_bytes() == damaged
    assert json.loads((tmp_path / "run" / "ckpt-61" / checkpoints.STATE_FILE).read_text())["step"] == 61
