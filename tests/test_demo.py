"""demo.py: rerun rules (fast) and the whole chain of real commands at toy size (slow)."""
import dataclasses
import json
from pathlib import Path

import pytest

import demo

REPO_ROOT = Path(__file__).resolve().parents[1]


def _paths(tmp_path: Path) -> demo.DemoPaths:
    return demo.default_paths(tmp_path)


def test_foreign_files_in_data_folder_are_left_alone(tmp_path):
    paths = _paths(tmp_path)
    paths.data.mkdir(parents=True)
    (paths.data / "mine.jpg").write_bytes(b"not the demo's")
    with pytest.raises(demo.DemoError, match="did not write"):
        demo.prepare_folders(demo.PROFILES["smoke"], paths, fresh=False)
    assert (paths.data / "mine.jpg").is_file()


def test_changed_settings_regenerate_and_retrain(tmp_path):
    config = demo.PROFILES["smoke"]
    paths = _paths(tmp_path)
    demo._write_marker(config, paths, complete=True)
    paths.model.mkdir(parents=True)
    assert demo.prepare_folders(config, paths, fresh=False) == (True, True)
    assert paths.model.is_dir(), "same settings: the checkpoints are kept for train.py to resume"

    changed_training = dataclasses.replace(config, max_steps=config.max_steps + 1)
    assert demo.prepare_folders(changed_training, paths, fresh=False) == (True, False)
    assert not paths.checkpoints.exists()

    paths.model.mkdir(parents=True)
    changed_data = dataclasses.replace(config, count=config.count + 1)
    assert demo.prepare_folders(changed_data, paths, fresh=False) == (False, False)
    assert not paths.data.exists() and not paths.checkpoints.exists()


def test_interrupted_generation_is_redone(tmp_path):
    config = demo.PROFILES["smoke"]
    paths = _paths(tmp_path)
    demo._write_marker(config, paths, complete=False)
    (paths.data / "plates").mkdir()
    assert demo.prepare_folders(config, paths, fresh=False) == (False, False)
    assert not paths.data.exists()


def test_fresh_removes_only_the_demo_folders(tmp_path):
    paths = _paths(tmp_path)
    for folder in (paths.data, paths.checkpoints, paths.outputs, tmp_path / "data" / "other"):
        folder.mkdir(parents=True, exist_ok=True)
    demo.prepare_folders(demo.PROFILES["smoke"], paths, fresh=True)
    assert not paths.data.exists() and not paths.checkpoints.exists() and not paths.outputs.exists()
    assert (tmp_path / "data" / "other").is_dir()


@pytest.mark.slow
def test_smoke_demo_runs_every_command_and_reruns(tmp_path, capsys):
    for needed in ("train.py", "eval.py", "data_preprocessor.py"):
        if not (REPO_ROOT / needed).is_file():
            pytest.skip(f"{needed} is not there yet")
    assert demo.main(["--profile", "smoke", "--root", str(tmp_path)]) == 0
    first = capsys.readouterr().out
    for command in ("$ python synthetic_data.py plates", "$ python data_preprocessor.py split",
                    "$ python train.py", "$ python eval.py"):
        assert command in first
    assert "images all correct" in first and "hmean" in first
    paths = _paths(tmp_path)
    summary = json.loads((paths.outputs / "summary.json").read_text())
    assert summary["evaluation"]["images"] == len(list(paths.test.glob("*.jpg")))
    # A rerun keeps the data and the model and only evaluates again (train.py has nothing left to do).
    assert demo.main(["--profile", "smoke", "--root", str(tmp_path)]) == 0
    second = capsys.readouterr().out
    assert "reusing the demo data" in second
    assert "$ python synthetic_data.py" not in second
