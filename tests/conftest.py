"""Shared test set-up: import path, quiet TensorFlow, the optional ../shared data, the tiny data
set and the one tiny trained run that most training tests share."""
import fcntl
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture
def shared_data() -> Path:
    """The ../shared/data folder; skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA


# --------------------------------------------------------------------------- tiny training data and run

# The settings of every tiny training run: the tiny backbone (model.tiny_backbone) at 64 px, in-process data.
TINY = dict(input_size=64, batch_size=2, nb_workers=0, backbone="tiny", backbone_weights="none",
            log_steps=1, progress=False, seed=3)
SHARED_RUN = dict(max_steps=60, save_checkpoint_steps=20, init_learning_rate=1e-3)


def write_tiny_dataset(folder: Path) -> Path:
    """Two 128x128 ICDAR-format images, each with two large axis-aligned white text boxes."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(2):
        image = np.full((128, 128, 3), 40, np.uint8)
        lines = []
        for x0, y0, x1, y1 in ((10 + 4 * index, 20, 100 - 4 * index, 50), (20, 80, 110, 110)):
            cv2.rectangle(image, (x0, y0), (x1, y1), (255, 255, 255), -1)
            cv2.putText(image, "AB12", (x0 + 5, y1 - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2)
            lines.append(f"{x0},{y0},{x1},{y0},{x1},{y1},{x0},{y1},AB12")
        cv2.imwrite(str(folder / f"img_{index + 1}.jpg"), image)
        (folder / f"gt_img_{index + 1}.txt").write_text("\n".join(lines) + "\n")
    return folder


def shared_run_config(data: Path, checkpoint_path: Path, **overrides):
    """The TrainConfig of the shared tiny run (``tiny_trained_run``), with ``overrides``."""
    import train

    return train.TrainConfig(**{**TINY, **SHARED_RUN, "training_data_path": str(data),
                                "checkpoint_path": str(checkpoint_path), **overrides})


@pytest.fixture(scope="session")
def tiny_trained_run(tmp_path_factory) -> dict:
    """One training run shared by the whole session: TINY settings, 60 steps at learning rate 1e-3,
    checkpoints at steps 20, 40 and 60, a train_log.csv row per step.

    Trained once: under pytest-xdist the first worker to need it trains it (under a file lock) in
    the folder all workers share, the others reuse it. Read-only for tests: copy it
    (shutil.copytree) before resuming, fine-tuning into or damaging it.

    Returns {"data": tiny data folder, "run": checkpoint folder, "config": its TrainConfig,
    "lines": what train.py reported}.
    """
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared-tiny-run"
    root.mkdir(parents=True, exist_ok=True)
    config = shared_run_config(root / "data", root / "run")
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "lines.json").is_file():
            import train

            write_tiny_dataset(root / "data")
            lines: list[str] = []
            train.run_training(config, report=lines.append)
            (root / "lines.json").write_text(json.dumps(lines))
    return {"data": root / "data", "run": root / "run", "config": config,
            "lines": json.loads((root / "lines.json").read_text())}


requires_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")


def run_under_jax(script: str, timeout: float) -> str:
    """Run ``script`` in a fresh Python with KERAS_BACKEND=jax and the project importable;
    asserts it exits 0 and returns its stdout."""
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


# Runs train.py's command line (flags after the step number) and SIGKILLs the process right after
# the given step's log row and checkpoint: python -c KILL_AFTER_STEP_DRIVER STEP --flag=...
KILL_AFTER_STEP_DRIVER = """
import os, signal, sys
from absl import app
import train
kill_after = int(sys.argv.pop(1))
def kill(step):
    if step == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
train.define_flags()
app.run(lambda argv: sys.exit(train.main(argv, on_step=kill)))
"""


def session_members(session_id: int) -> list[int]:
    """Live (not zombie) processes of a session, from /proc (Linux)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session_id and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def kill_after_step_cli(train_cli: list[str], step: int) -> list[str]:
    """``train_cli`` ([python, "train.py", flags...]) rewritten to be SIGKILLed after ``step``."""
    return [train_cli[0], "-c", KILL_AFTER_STEP_DRIVER, str(step), *train_cli[2:]]


# --------------------------------------------------------------------------- skips in CI

# In CI (CI=true, or EAST_STRICT_SKIPS=1 as .ci/run sets) `make test` has installed everything the
# suite uses (requirements*.txt, chromium), so a skip means something is broken: the test fails
# instead. Only these skips stay skips there: data that is never part of the project.
ALLOWED_CI_SKIPS = (
    re.compile(r"shared/data is not present"),
    re.compile(r"(plates_dev|icdar2015_test_gt_all\.zip|\.zip) is (not present|absent)"),
)


def strict_skips() -> bool:
    """Whether an unexpected skip fails the run (CI=true or EAST_STRICT_SKIPS=1)."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("EAST_STRICT_SKIPS") == "1"


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def _fail_unexpected_skip(report) -> None:
    if not (report.skipped and strict_skips()) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if not any(pattern.search(reason) for pattern in ALLOWED_CI_SKIPS):
        report.outcome = "failed"
        report.longrepr = (f"unexpected skip in CI ({reason}); `make test` installs what this test needs, "
                           f"so find out why it is missing (allowed skips: tests/conftest.py ALLOWED_CI_SKIPS)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_unexpected_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A module-level importorskip skips the whole module at collection."""
    outcome = yield
    _fail_unexpected_skip(outcome.get_result())
