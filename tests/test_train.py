"""train.py / checkpoints.py end to end on tiny data: overfit, exact resume after SIGKILL,
SIGKILL in the middle of a save, fine-tuning, refusal of foreign folders (two devices: test_distributed.py)."""
import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

import augmentation
import checkpoints
import data_preprocessor
import network_io
import train
from samples import DataError
from conftest import TINY, kill_after_step_cli, write_tiny_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "train")


def _cli(data: Path, checkpoint_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "train.py", f"--training_data_path={data}", f"--checkpoint_path={checkpoint_path}",
            "--input_size=64", "--batch_size=2", "--nb_workers=0", "--backbone=tiny",
            "--backbone_weights=none", "--log_steps=1", "--seed=3", *extra]


def _run_cli(args, env_extra=None, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow", **(env_extra or {}))
    return subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _log_rows(checkpoint_path: Path) -> dict[int, dict]:
    with open(checkpoint_path / checkpoints.TRAIN_LOG_FILE, newline="") as handle:
        return {int(row["step"]): row for row in csv.DictReader(handle)}


def _weights(checkpoint: Path) -> list[np.ndarray]:
    network, _ = checkpoints.load_model_for_inference(str(checkpoint))
    return [np.asarray(weight) for weight in network.get_weights()]


@pytest.mark.slow
def test_overfits_two_images(tiny_trained_run):
    """The shared run (60 steps on two images) halves its loss and leaves a complete checkpoint."""
    run, config = tiny_trained_run["run"], tiny_trained_run["config"]
    rows = _log_rows(run)
    assert list(rows) == list(range(1, 61))
    first = np.mean([float(rows[step]["loss"]) for step in (1, 2, 3)])
    last = np.mean([float(rows[step]["loss"]) for step in (58, 59, 60)])
    assert last <= 0.5 * first, (first, last)
    assert any("2 images" in line for line in tiny_trained_run["lines"])
    assert (run / "logs").is_dir() and any((run / "logs").iterdir())
    assert checkpoints.list_checkpoints(run) == [20, 40, 60]
    network, info = checkpoints.load_model_for_inference(str(run))
    implied = augmentation.implied_max_side_len(data_preprocessor.load_dataset(tiny_trained_run["data"]).samples,
                                                train.augment_config(config))
    assert info == {"checkpoint": str(run / "ckpt-60"), "step": 60, "input_size": 64,
                    "backbone": "tiny", "distance_scale": network_io.DISTANCE_SCALE,
                    "pixel_convention": "unit_range", "max_side_len": implied, "core_thresh": 0.0}


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tiny_trained_run, tmp_path):
    """train.py's CLI with the shared run's settings, SIGKILLed after its step-3 checkpoint and rerun
    to step 20: every logged value and the step-20 weights equal the uninterrupted shared run's.
    --eval_core_thresh is an eval setting: it does not change the training, may change on resume, and
    the checkpoints record the latest value. (Fine-tuning from a checkpoint: test_train_flags.py.)"""
    resumed, straight = tmp_path / "resumed", tiny_trained_run["run"]
    flags = ("--max_steps=20", "--save_checkpoint_steps=3", "--init_learning_rate=0.001")
    killed = _run_cli(kill_after_step_cli(_cli(tiny_trained_run["data"], resumed, *flags, "--eval_core_thresh=0.3"), 3),
                      {"PYTHONPATH": str(REPO_ROOT)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (resumed / "latest").read_text().strip() == "ckpt-3"
    assert checkpoints.load_model_for_inference(str(resumed))[1]["core_thresh"] == 0.3
    again = _run_cli(_cli(tiny_trained_run["data"], resumed, *flags, "--eval_core_thresh=0.4"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from step 3" in again.stdout
    assert "checkpoints record it and --core_thresh=0.4 (--eval_core_thresh)" in again.stdout
    assert "taking over the lock of a stopped run" in again.stdout and "no longer exists" in again.stdout
    rows_straight, rows_resumed = _log_rows(straight), _log_rows(resumed)
    assert list(rows_resumed) == list(range(1, 21))
    for step in range(1, 21):
        for column in ("loss", "score_loss", "geo_loss", "lr"):
            assert float(rows_resumed[step][column]) == pytest.approx(float(rows_straight[step][column]), rel=1e-5)
    for a, b in zip(_weights(straight / "ckpt-20"), _weights(resumed / "ckpt-20")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert checkpoints.load_model_for_inference(str(resumed))[1]["core_thresh"] == 0.4


SAVE_SCRIPT = """
import os, signal, sys, keras, checkpoints, model
kill_at = sys.argv[2]
network = model.build_east(64, backbone="tiny", backbone_weights="none")
optimizer = keras.optimizers.Adam(1e-4)
optimizer.build(network.trainable_variables)
state = {"seed": 0, "model": {"input_size": 64, "backbone": "tiny"}}
for step in (2, 4):
    optimizer.iterations.assign(step)
    def on_stage(stage, step=step):
        if f"{step}:{stage}" == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    checkpoints.save_checkpoint(sys.argv[1], step, network, optimizer, state, max_to_keep=1, on_stage=on_stage)
"""


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["before_rename", "before_latest"])
def test_sigkill_during_save_keeps_previous_checkpoint(tmp_path, stage):
    folder = tmp_path / "run"
    result = _run_cli([sys.executable, "-c", SAVE_SCRIPT, str(folder), f"4:{stage}"],
                      {"PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    latest = checkpoints.latest_checkpoint(folder)
    assert latest.name == "ckpt-2"
    network, info = checkpoints.load_model_for_inference(str(folder))
    assert info["step"] == 2
    checkpoints.check_training_folder(folder)  # leftovers are ours, not "foreign"
    checkpoints.clean_temporary(folder)
    assert not [entry for entry in folder.iterdir() if entry.name.startswith(checkpoints.TEMP_PREFIX)]


def test_foreign_folder_is_refused_untouched(tiny_data, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.docx").write_text("precious")
    (folder / "checkpoint").write_text("model_checkpoint_path: ckpt-50")  # EAST-tf2's own layout
    before = sorted(os.listdir(folder))
    config = train.TrainConfig(**TINY, training_data_path=str(tiny_data), checkpoint_path=str(folder), max_steps=1)
    with pytest.raises(checkpoints.CheckpointError, match="not an EAST training run"):
        train.run_training(config)
    assert sorted(os.listdir(folder)) == before and (folder / "thesis.docx").read_text() == "precious"


def test_incompatible_checkpoint_is_refused(tiny_data, tmp_path):
    folder = tmp_path / "run"
    checkpoint = folder / "ckpt-5"
    checkpoint.mkdir(parents=True)
    h5py.File(checkpoint / checkpoints.WEIGHTS_FILE, "w").close()  # intact files, holding nothing
    np.savez(checkpoint / checkpoints.OPTIMIZER_FILE)
    (checkpoint / checkpoints.STATE_FILE).write_text(json.dumps(
        {"format": checkpoints.FORMAT_NAME, "version": 1, "step": 5, "seed": 3,
         "model": {"input_size": 512, "backbone": "resnet50"}}))
    (folder / "latest").write_text("ckpt-5\n")
    config = train.TrainConfig(**TINY, training_data_path=str(tiny_data), checkpoint_path=str(folder), max_steps=1)
    with pytest.raises(checkpoints.CheckpointError, match="incompatible model.*backbone 'resnet50'"):
        train.run_training(config)
    assert sorted(os.listdir(folder)) == ["ckpt-5", "latest"]


def test_non_finite_loss_stops_before_a_checkpoint_is_written(tiny_data, tmp_path, monkeypatch):
    import keras
    import losses

    monkeypatch.setattr(losses, "east_loss", lambda y_true, y_pred: keras.ops.mean(y_pred) * np.nan)
    folder = tmp_path / "nan"
    # Steps are not read back unless logged or saved: step 1 is neither, step 2 is a save.
    config = train.TrainConfig(**{**TINY, "log_steps": 4}, training_data_path=str(tiny_data),
                               checkpoint_path=str(folder), max_steps=4, save_checkpoint_steps=2)
    with pytest.raises(FloatingPointError, match="loss is nan at or before step 2"):
        train.run_training(config)
    assert checkpoints.list_checkpoints(folder) == []


def test_cli_errors_are_one_line(tmp_path):
    result = _run_cli([sys.executable, "train.py", "--geometry=QUAD"])
    assert result.returncode == 2 and "only RBOX" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "notes.txt").write_text("x")
    result = _run_cli([sys.executable, "train.py", f"--checkpoint_path={tmp_path}"])
    assert result.returncode == 2 and "not an EAST training run" in result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_stops_cleanly_with_workers(tiny_data, tmp_path):
    """Ctrl-C in a terminal sends SIGINT to the whole process group, data workers included."""
    folder = tmp_path / "interrupted"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    command = _cli(tiny_data, folder, "--max_steps=100000", "--save_checkpoint_steps=2")
    command[command.index("--nb_workers=0")] = "--nb_workers=2"
    with open(tmp_path / "stderr.txt", "w") as stderr_file:
        # A terminal starts its foreground job with SIGINT at its default. A child inherits an ignored
        # SIGINT (and Python then keeps ignoring it), and a pytest-xdist worker that ran another test first
        # can hold one: the run then trained on for the whole wait.
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr_file,
                                   start_new_session=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 240
            while not checkpoints.list_checkpoints(folder) and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
            running, hung = process.poll() is None, False
            if running:
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    hung = True
                    os.kill(process.pid, signal.SIGUSR1)  # train.py prints where each thread waits
                    time.sleep(3)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert running, stderr[-3000:]
    assert not hung, f"still running 120 s after Ctrl-C; its threads:\n{stderr[-6000:]}"
    assert process.returncode == 130, stderr[-3000:]
    assert "rerun the same command to resume" in stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    assert checkpoints.latest_checkpoint(folder) is not None


def test_config_validation():
    with pytest.raises(ValueError, match="only RBOX"):
        train.TrainConfig(geometry="QUAD")
    with pytest.raises(ValueError, match="batch_size must be positive"):
        train.TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="eval_core_thresh must be in"):
        train.TrainConfig(eval_core_thresh=1.5)
    # The config is frozen, and replace() validates again: no path to an invalid config.
    with pytest.raises(dataclasses.FrozenInstanceError):
        train.TrainConfig().batch_size = 0
    with pytest.raises(ValueError, match="input_size must be a multiple of 32"):
        dataclasses.replace(train.TrainConfig(), input_size=100)


def test_text_size_range_flags_reach_the_augmentation():
    assert train.parse_text_size_range("") is None
    assert train.parse_text_size_range("0.03,0.6") == (0.03, 0.6)
    with pytest.raises(ValueError, match="--text_width_range"):
        train.parse_text_size_range("0.03")
    with pytest.raises(ValueError, match="--text_height_range"):
        train.parse_text_size_range("0.1,0.2,0.3", "text_height_range")
    with pytest.raises(ValueError, match="text_width_range"):
        train.TrainConfig(text_width_range=(0.6, 0.03))
    with pytest.raises(ValueError, match="exclude each other"):
        train.TrainConfig(text_width_range=(0.03, 0.6), text_height_range=(0.02, 0.3))
    assert train.augment_config(train.TrainConfig()).text_width_range is None
    assert train.augment_config(train.TrainConfig(text_width_range=(0.03, 0.6))).text_width_range == (0.03, 0.6)
    height = train.augment_config(train.TrainConfig(text_height_range=(0.04, 0.3)))
    assert height.text_height_range == (0.04, 0.3) and height.text_width_range is None


def test_unwritable_checkpoint_path_and_foreign_train_log_are_one_line(tiny_data, tmp_path):
    # Root may write into a chmod-ed folder, so "not writable" is made with a path under a regular
    # file: mkdir fails with ENOTDIR for every user.
    (tmp_path / "file.txt").write_text("x")
    result = _run_cli(_cli(tiny_data, tmp_path / "file.txt" / "run", "--max_steps=1"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith(f"train.py: checkpoint_path '{tmp_path / 'file.txt' / 'run'}' is not writable")

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / checkpoints.TRAIN_LOG_FILE).write_text("epoch,accuracy\n1,0.5\n")
    result = _run_cli(_cli(tiny_data, folder, "--max_steps=1"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "train_log.csv: not a train.py log (header 'epoch,accuracy'" in result.stderr.strip().splitlines()[-1]
    assert (folder / checkpoints.TRAIN_LOG_FILE).read_text() == "epoch,accuracy\n1,0.5\n"
    assert sorted(os.listdir(folder)) == [checkpoints.TRAIN_LOG_FILE]


def test_resume_with_a_changed_learning_rate_is_refused_unless_allowed(tiny_data, tmp_path):
    folder = tmp_path / "run"
    result = _run_cli(_cli(tiny_data, folder, "--max_steps=1", "--init_learning_rate=0.0001"))
    assert result.returncode == 0, result.stderr[-3000:]
    result = _run_cli(_cli(tiny_data, folder, "--max_steps=2", "--init_learning_rate=0.001"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "--init_learning_rate was 0.0001, now 0.001" in result.stderr.strip().splitlines()[-1]
    assert checkpoints.list_checkpoints(folder) == [1]
    result = _run_cli(_cli(tiny_data, folder, "--max_steps=2", "--init_learning_rate=0.001", "--allow_flag_change"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "continuing" in result.stdout and "--init_learning_rate was 0.0001, now 0.001" in result.stdout
    state = checkpoints.read_state(folder / "ckpt-2")
    assert state["flags"]["init_learning_rate"] == 0.001
    assert float(_log_rows(folder)[2]["lr"]) == pytest.approx(0.001)


def test_data_without_a_box_stops_before_the_first_step(tiny_data, tmp_path):
    """Images whose annotation files the format does not find are background-only: the run used to
    print "2 images, 0 boxes" and train to the end with exit 0."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for image in tiny_data.glob("*.jpg"):
        (photos / image.name).write_bytes(image.read_bytes())
    result = _run_cli(_cli(photos, tmp_path / "run", "--annotation_format=icdar2015", "--max_steps=2"))
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("train.py:")]
    assert len(errors) == 1 and "no box to learn from" in errors[0] and "--allow_empty" in errors[0]
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "run").glob("ckpt-*"))
    # Background-only fine-tuning is asked for explicitly.
    config = train.TrainConfig(**TINY, training_data_path=str(photos), checkpoint_path=str(tmp_path / "bg"),
                               annotation_format="icdar2015", max_steps=1, save_checkpoint_steps=1,
                               allow_empty=True)
    assert train.run_training(config, report=lambda line: None)["step"] == 1


def test_dont_care_boxes_alone_are_nothing_to_learn_from(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    cv2.imwrite(str(data / "img_1.jpg"), np.full((128, 128, 3), 40, np.uint8))
    (data / "gt_img_1.txt").write_text("10,10,100,10,100,50,10,50,###\n")
    config = train.TrainConfig(**TINY, training_data_path=str(data), checkpoint_path=str(tmp_path / "run"))
    with pytest.raises(DataError, match="1 boxes, 1 don't care"):
        train.run_training(config)


def test_rehearsal_images_join_the_training_samples_but_not_the_recorded_scale(tiny_data, tmp_path):
    """--rehearsal_data_path mixes a seeded subset of a second folder into the samples (as many as the
    main folder has at share 0.5); the scale a checkpoint records comes from the main folder alone."""
    rehearsal = tmp_path / "scenes"
    rehearsal.mkdir()
    for index in range(6):  # 256 px scenes: their text shows at another scale than tiny_data's
        image = np.full((256, 256, 3), 40, np.uint8)
        cv2.rectangle(image, (10, 10), (60, 30), (255, 255, 255), -1)
        cv2.imwrite(str(rehearsal / f"img_{index}.jpg"), image)
        (rehearsal / f"gt_img_{index}.txt").write_text("10,10,60,10,60,30,10,30,AB\n")
    lines = []
    sized = dict(TINY, training_data_path=str(tiny_data), text_height_range=(0.1, 0.3))
    alone = train.prepare_training(train.TrainConfig(**sized, checkpoint_path=str(tmp_path / "alone")), lines.append)
    config = train.TrainConfig(**sized, checkpoint_path=str(tmp_path / "mixed"), rehearsal_data_path=str(rehearsal))
    mixed = train.prepare_training(config, lines.append)
    joined = [Path(sample.image_path) for sample in mixed.samples[len(alone.samples):]]
    assert len(mixed.samples) == 2 * len(alone.samples) == 4
    assert {path.parent for path in joined} == {rehearsal} and len(set(joined)) == 2
    expected = data_preprocessor.rehearsal_subset(2, 6, 0.5, seed=TINY["seed"])
    assert [path.name for path in joined] == [f"img_{index}.jpg" for index in expected]
    assert mixed.eval_max_side_len == alone.eval_max_side_len
    assert any("2 of its images join the 2 of --training_data_path" in line for line in lines)
    with pytest.raises(ValueError, match="rehearsal_share"):
        train.TrainConfig(**TINY, rehearsal_share=1.0)
    from path_guard import PathOverlapError
    with pytest.raises(PathOverlapError, match="--rehearsal_data_path"):
        train.run_training(dataclasses.replace(config, checkpoint_path=str(rehearsal / "run")))
