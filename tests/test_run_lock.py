"""run_lock.py: one training run per checkpoint folder, refused second runs, stale takeover, release."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run_lock

REPO_ROOT = Path(__file__).resolve().parents[1]

HOLDER = """
import sys, time
import run_lock
with run_lock.RunLock(sys.argv[1], heartbeat_s=0.2):
    print("held", flush=True)
    sys.stdin.readline()
"""


def _write_lock(folder: Path, **content) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / run_lock.LOCK_FILE).write_text(json.dumps(content))


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_second_train_run_is_refused_while_the_first_holds_the_folder(tmp_path):
    folder = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], cwd=REPO_ROOT, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        in_progress = folder / ".tmp-ckpt-50-12345"  # the first run's checkpoint being written
        in_progress.mkdir()
        (in_progress / "model.weights.h5").write_bytes(b"half")
        data = tmp_path / "data"
        data.mkdir()
        result = subprocess.run(
            [sys.executable, "train.py", f"--training_data_path={data}", f"--checkpoint_path={folder}",
             "--input_size=64", "--batch_size=1", "--nb_workers=0", "--backbone=tiny",
             "--backbone_weights=none", "--max_steps=1"],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 2, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("train.py:")]
        assert len(lines) == 1, result.stderr
        assert f"in use by another training run (host {socket.gethostname()}, pid {holder.pid}, since 20" in lines[0]
        assert "wait for it to finish" in lines[0]
        assert (in_progress / "model.weights.h5").read_bytes() == b"half"  # not cleaned up under the first run
        assert json.loads((folder / run_lock.LOCK_FILE).read_text())["pid"] == holder.pid
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0
    assert not (folder / run_lock.LOCK_FILE).exists()


def test_two_locks_in_one_process_exclude_each_other(tmp_path):
    with run_lock.RunLock(tmp_path) as first:
        with pytest.raises(run_lock.RunLockError, match=f"pid {os.getpid()}, since .* UTC"):
            run_lock.RunLock(tmp_path).acquire()
        assert json.loads(first.path.read_text())["token"] == first.token


def test_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    pid = _dead_pid()
    _write_lock(tmp_path, host=socket.gethostname(), pid=pid, token="old", started=time.time() - 60,
                heartbeat=time.time())
    messages = []
    with run_lock.RunLock(tmp_path, messages.append) as lock:
        assert json.loads(lock.path.read_text())["token"] == lock.token
    assert len(messages) == 1 and f"process {pid} no longer exists" in messages[0]
    assert os.listdir(tmp_path) == []


def test_lock_with_an_old_heartbeat_is_taken_over_a_fresh_one_is_not(tmp_path):
    _write_lock(tmp_path, host="another-machine", pid=1, token="old", started=time.time() - 5000,
                heartbeat=time.time() - 100)
    with pytest.raises(run_lock.RunLockError, match="host another-machine, pid 1"):
        run_lock.RunLock(tmp_path, stale_s=600).acquire()
    messages = []
    with run_lock.RunLock(tmp_path, messages.append, stale_s=60):
        pass
    assert len(messages) == 1 and "last heartbeat was 100 s ago" in messages[0]


def test_heartbeat_is_refreshed_during_a_long_step(tmp_path):
    with run_lock.RunLock(tmp_path, heartbeat_s=0.05) as lock:
        first = json.loads(lock.path.read_text())["heartbeat"]
        time.sleep(0.5)  # a step that never returns to the training loop
        second = json.loads(lock.path.read_text())
    assert second["heartbeat"] > first and second["started"] == lock.started
    assert not any(name.startswith(run_lock.LOCK_FILE) for name in os.listdir(tmp_path))


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_lock_is_released_on_error_and_ctrl_c(tmp_path, error):
    folder = tmp_path / "new"
    with pytest.raises(error):
        with run_lock.RunLock(folder):
            assert (folder / run_lock.LOCK_FILE).is_file()
            raise error("stop")
    assert not folder.exists()  # created for the lock only, so removed with it
    run_lock.RunLock(folder).acquire()  # free again


def test_unwritable_folder_is_one_clear_error(tmp_path):
    # A path under a regular file cannot be created even by root (ENOTDIR), unlike a chmod-ed folder.
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(run_lock.RunLockError, match="is not writable .*Not a directory"):
        run_lock.RunLock(blocker / "run").acquire()
