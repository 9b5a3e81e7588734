"""Exact resume after a SIGKILL between two checkpoints, with data workers; the checkpoints kept
(--max_to_keep) and the staircase learning-rate decay in train_log.csv, on the same runs."""
import csv
import math
import signal
import subprocess
import sys
import os
import time
from pathlib import Path

import numpy as np
import pytest

import checkpoints
from conftest import kill_after_step_cli, session_members, write_tiny_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
INIT_LR, DECAY_RATE, DECAY_STEPS = 1e-3, 0.5, 2
MAX_STEPS, SAVE_STEPS, KEEP, KILL_AFTER = 7, 3, 2, 5
FLAGS = (f"--max_steps={MAX_STEPS}", f"--save_checkpoint_steps={SAVE_STEPS}", f"--max_to_keep={KEEP}",
         f"--init_learning_rate={INIT_LR}", f"--lr_decay_rate={DECAY_RATE}", f"--lr_decay_steps={DECAY_STEPS}",
         "--nb_workers=2", "--bn_momentum=0.9")


def _cli(data: Path, folder: Path) -> list[str]:
    return [sys.executable, "train.py", f"--training_data_path={data}", f"--checkpoint_path={folder}",
            "--input_size=64", "--batch_size=2", "--backbone=tiny", "--backbone_weights=none",
            "--log_steps=1", "--seed=3", *FLAGS]


def _run(args, log_dir: Path) -> subprocess.CompletedProcess:
    """Run ``args`` in its own session, output to files: a SIGKILLed trainer's data workers may
    outlive it and hold a pipe open. Returns the result with ``survivors``, the session's processes
    still alive 10 s after the trainer ended (then killed)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow", PYTHONPATH=str(REPO_ROOT))
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "stdout", "w") as stdout, open(log_dir / "stderr", "w") as stderr:
        process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=stdout, stderr=stderr,
                                   start_new_session=True)
        try:
            process.wait(timeout=600)
        finally:
            deadline = time.monotonic() + 10
            while session_members(process.pid) and time.monotonic() < deadline:
                time.sleep(0.5)
            survivors = session_members(process.pid)
            if survivors:
                os.killpg(process.pid, signal.SIGKILL)
    result = subprocess.CompletedProcess(args, process.returncode, (log_dir / "stdout").read_text(),
                                         (log_dir / "stderr").read_text())
    result.survivors = survivors
    return result


def _log_rows(folder: Path) -> dict[int, dict]:
    with open(folder / checkpoints.TRAIN_LOG_FILE, newline="") as handle:
        return {int(row["step"]): row for row in csv.DictReader(handle)}


def _weights(folder: Path) -> list[np.ndarray]:
    network, _ = checkpoints.load_model_for_inference(str(folder))
    return [np.asarray(weight) for weight in network.get_weights()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run, and one SIGKILLed after step 5 (checkpoint at 3) then rerun."""
    root = tmp_path_factory.mktemp("resume")
    data = write_tiny_dataset(root / "data")
    straight, resumed = root / "straight", root / "resumed"
    done = _run(_cli(data, straight), root / "logs_straight")
    assert done.returncode == 0, done.stderr[-3000:]
    killed = _run(kill_after_step_cli(_cli(data, resumed), KILL_AFTER), root / "logs_killed")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    after_kill = {"latest": (resumed / "latest").read_text().strip(), "rows": list(_log_rows(resumed))}
    again = _run(_cli(data, resumed), root / "logs_again")
    assert again.returncode == 0, again.stderr[-3000:]
    return {"straight": straight, "resumed": resumed, "after_kill": after_kill, "stdout": again.stdout,
            "survivors": {"finished": done.survivors, "killed": killed.survivors}}


@pytest.mark.slow
def test_kill_between_checkpoints_with_workers_resumes_exactly(runs):
    # The kill came two steps after the last checkpoint: those steps are redone, their rows replaced.
    assert runs["after_kill"] == {"latest": "ckpt-3", "rows": [1, 2, 3, 4, 5]}
    assert "resumed from step 3" in runs["stdout"]
    straight, resumed = _log_rows(runs["straight"]), _log_rows(runs["resumed"])
    assert list(resumed) == list(range(1, MAX_STEPS + 1))
    for step in range(4, MAX_STEPS + 1):
        for column in ("loss", "score_loss", "geo_loss", "lr"):
            assert float(resumed[step][column]) == pytest.approx(float(straight[step][column]), rel=1e-5), (step, column)
    for step in range(1, 4):  # rows before the checkpoint are the killed run's own, kept as written
        assert float(resumed[step]["loss"]) == pytest.approx(float(straight[step]["loss"]), rel=1e-5)
    for a, b in zip(_weights(runs["straight"]), _weights(runs["resumed"]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_max_to_keep_prunes_old_checkpoints(runs):
    # Saved at 3, 6 and 7 (the last step); --max_to_keep=2 leaves the newest two.
    for folder in (runs["straight"], runs["resumed"]):
        assert checkpoints.list_checkpoints(folder) == [6, 7]
        assert checkpoints.latest_checkpoint(folder).name == "ckpt-7"


@pytest.mark.slow
def test_learning_rate_decays_in_stairs(runs):
    """The row of step N holds the rate step N used, when the optimizer had done N - 1 steps."""
    rows = _log_rows(runs["straight"])
    for step, row in rows.items():
        expected = INIT_LR * DECAY_RATE ** math.floor((step - 1) / DECAY_STEPS)
        assert float(row["lr"]) == pytest.approx(expected, rel=1e-6), step
    assert len({row["lr"] for row in rows.values()}) == 4  # 1e-3 twice, 5e-4 twice, ...


@pytest.mark.slow
def test_data_workers_end_with_a_finished_run(runs):
    assert runs["survivors"]["finished"] == []


@pytest.mark.slow
def test_data_workers_end_with_a_killed_run(runs):
    assert runs["survivors"]["killed"] == []
