"""Shared test set-up: import path, quiet TensorFlow, the optional ../shared data."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

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


def kill_after_step_cli(train_cli: list[str], step: int) -> list[str]:
    """``train_cli`` ([python, "train.py", flags...]) rewritten to be SIGKILLed after ``step``."""
    return [train_cli[0], "-c", KILL_AFTER_STEP_DRIVER, str(step), *train_cli[2:]]
