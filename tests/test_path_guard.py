"""path_guard: outputs are never inputs, checked after resolving paths, and used by every writing command."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import data_preprocessor
import eval as east_eval
import icdar
import path_guard
import train

REPO_ROOT = Path(__file__).resolve().parents[1]


def tree_hashes(folder: Path) -> dict:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def make_images(folder: Path, count: int = 2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        cv2.imwrite(str(folder / f"img_{index}.jpg"), np.full((64, 96, 3), 40 * index, np.uint8))
        icdar.write_icdar_file(folder / f"gt_img_{index}.txt",
                               np.array([[[10, 10], [50, 10], [50, 30], [10, 30]]], np.float32), ["word"])


def test_overlap_relations(tmp_path):
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    os.symlink(tmp_path / "data", tmp_path / "link")
    assert path_guard.overlap(tmp_path / "data", tmp_path / "data") == "is the same path as"
    assert path_guard.overlap(tmp_path / "link", tmp_path / "data") == "is the same path as"  # symlink
    assert path_guard.overlap(tmp_path / "data" / "sub" / "..", tmp_path / "data") == "is the same path as"
    assert path_guard.overlap(tmp_path / "link" / "new" / "out", tmp_path / "data") == "lies inside"  # not yet made
    assert path_guard.overlap(tmp_path, tmp_path / "link" / "sub") == "holds"
    assert path_guard.overlap(tmp_path / "out", tmp_path / "data") is None
    assert path_guard.overlap(tmp_path / "data2", tmp_path / "data") is None  # a name prefix is not a parent


def test_relative_paths_are_resolved(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path / "data")
    with pytest.raises(path_guard.PathOverlapError, match="--output_dir '.' is the same path as --gt_path"):
        path_guard.check_outputs_apart({"--output_dir": "."}, {"--gt_path": str(tmp_path / "data"),
                                                               "--model_path": None})
    path_guard.check_outputs_apart({"--output_dir": "../out"}, {"--gt_path": str(tmp_path / "data")})


def test_eval_cli_refuses_output_dir_equal_to_gt_path(tmp_path):
    """The reported data loss: --output_dir D --gt_path D with the images elsewhere overwrote D's
    annotations with empty predictions and its photos with overlays."""
    make_images(tmp_path / "gt")
    make_images(tmp_path / "images")
    before = tree_hashes(tmp_path)
    result = subprocess.run(
        [sys.executable, "eval.py", f"--test_data_path={tmp_path / 'images'}", f"--gt_path={tmp_path / 'gt'}",
         f"--output_dir={tmp_path / 'gt'}", f"--model_path={tmp_path / 'no_model'}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--output_dir" in result.stderr and "--gt_path" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree_hashes(tmp_path) == before


@pytest.mark.parametrize("output, inputs", [
    ("gt", {"gt_path": "gt"}),
    ("images/out", {}),  # inside the images
    ("ckpt/eval", {}),  # inside the model folder
    (".", {}),  # holds every input
])
def test_run_evaluation_refuses_every_overlap(tmp_path, output, inputs):
    make_images(tmp_path / "images")
    make_images(tmp_path / "gt")
    (tmp_path / "ckpt").mkdir()
    before = tree_hashes(tmp_path)
    config = east_eval.EvalConfig(test_data_path=str(tmp_path / "images"), model_path=str(tmp_path / "ckpt"),
                                  output_dir=str(tmp_path / output),
                                  **{key: str(tmp_path / value) for key, value in inputs.items()})
    with pytest.raises(path_guard.PathOverlapError):
        east_eval.run_evaluation(config, (lambda images: None, {}))
    assert tree_hashes(tmp_path) == before


def test_split_refuses_a_target_inside_or_around_the_data(tmp_path):
    make_images(tmp_path / "data")
    before = tree_hashes(tmp_path)
    for train_dir in (tmp_path / "data" / "train", tmp_path):
        with pytest.raises(data_preprocessor.DataError, match="--data_path"):
            data_preprocessor.split_dataset(tmp_path / "data", train_dir, tmp_path / "test_part", overwrite=True)
    assert tree_hashes(tmp_path) == before


def test_train_refuses_a_checkpoint_folder_inside_the_data(tmp_path):
    make_images(tmp_path / "data")
    config = train.TrainConfig(training_data_path=str(tmp_path / "data"),
                               checkpoint_path=str(tmp_path / "data" / "ckpt"))
    with pytest.raises(path_guard.PathOverlapError, match="--checkpoint_path"):
        train.run_training(config)
    assert not (tmp_path / "data" / "ckpt").exists()


def test_export_cli_refuses_output_inside_the_model(tmp_path):
    (tmp_path / "ckpt").mkdir()
    result = subprocess.run([sys.executable, "export.py", f"--model_path={tmp_path / 'ckpt'}",
                             f"--output_dir={tmp_path / 'ckpt' / 'export'}"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "--output_dir" in result.stderr and "lies inside --model_path" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "ckpt" / "export").exists()
