"""One training run per ``--checkpoint_path``: a lock file that works on Google Drive's FUSE mount.

A second run on the same folder (a second Colab tab, a rerun while the first is still alive) would
delete the first's in-progress checkpoint when it cleans up temporary files, resume from the
first's checkpoint with its own settings, and interleave both runs' rows in train_log.csv. So
train.py holds this lock for the whole run, taking it before any clean-up.

The lock is ``<checkpoint_path>/.train.lock``, created with ``O_CREAT | O_EXCL`` (atomic on local
file systems and on Drive's mount; no ``flock``, no symlinks). It holds JSON: host, pid, a random
token, the start time and a heartbeat time. A daemon thread refreshes the heartbeat every
``heartbeat_s`` seconds (a thread, so a long step or a slow save does not let the lock go stale).

A lock is stale, and is taken over with a message, when its heartbeat is older than ``stale_s``
(default 10 minutes: many missed heartbeats, not one slow write), or when it was written on this
host by a process that no longer exists. Takeover renames the stale file aside first, so of two
runs that find the same stale lock only one takes it.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import atomic_io

log = logging.getLogger(__name__)

LOCK_FILE = ".train.lock"
HEARTBEAT_S = 30.0
STALE_S = 600.0


class RunLockError(RuntimeError):
    """The checkpoint folder is in use by another live run, or the lock cannot be written."""


def _now_text(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_lock(folder: str | os.PathLike) -> dict | None:
    """The lock's content, None when there is no lock, {} when it cannot be parsed."""
    path = Path(folder) / LOCK_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        content = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return content if isinstance(content, dict) else {}


def stale_reason(content: dict, now: float, stale_s: float = STALE_S) -> str | None:
    """Why a lock with ``content`` belongs to no live run, or None while it does.

    Args:
        content: the parsed lock file ({} for an unreadable one, which counts as live until its
            file is older than stale_s; the caller passes the file's mtime as ``heartbeat``).
        now: time.time() in seconds.
        stale_s: seconds without a heartbeat after which the owner is presumed dead.
    """
    heartbeat = float(content.get("heartbeat", 0.0))
    if now - heartbeat > stale_s:
        return f"its last heartbeat was {now - heartbeat:.0f} s ago (more than {stale_s:.0f} s)"
    if content.get("host") == socket.gethostname() and "pid" in content and not _pid_alive(int(content["pid"])):
        return f"process {content['pid']} no longer exists on this host"
    return None


def describe(content: dict) -> str:
    """'host H, pid P, since T, heartbeat S s ago' for a lock's content."""
    started = content.get("started")
    heartbeat = content.get("heartbeat")
    since = _now_text(started) if isinstance(started, (int, float)) else "an unknown time"
    ago = f"{time.time() - heartbeat:.0f} s ago" if isinstance(heartbeat, (int, float)) else "unknown"
    return f"host {content.get('host', '?')}, pid {content.get('pid', '?')}, since {since}, last heartbeat {ago}"


class RunLock:
    """Context manager holding ``<folder>/.train.lock`` for one run.

    Args:
        folder: the checkpoint folder (created if missing; removed again on release when the
            lock was the only thing put there).
        report: receives the takeover message a person should see.
        heartbeat_s: seconds between heartbeat refreshes.
        stale_s: seconds without a heartbeat after which another run's lock is taken over.

    Raises (on enter):
        RunLockError: another live run holds the lock, or the folder is not writable.
    """

    def __init__(self, folder: str | os.PathLike, report: Callable[[str], None] = log.warning, *,
                 heartbeat_s: float = HEARTBEAT_S, stale_s: float = STALE_S):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.report = report
        self.heartbeat_s = heartbeat_s
        self.stale_s = stale_s
        self.token = uuid.uuid4().hex
        self.started = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._created_folder = False

    def _content(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                "started": self.started, "heartbeat": time.time()}

    def _create(self) -> bool:
        """Create the lock file exclusively; False when one exists."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self._content(), handle)
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def _refuse_or_take_over(self) -> None:
        content = read_lock(self.folder)
        if content is None:
            return  # released between our attempt and the read: try again
        if not content:  # unparsable (a run killed while creating it): judge by the file's age
            try:
                content = {"heartbeat": self.path.stat().st_mtime}
            except FileNotFoundError:
                return
        reason = stale_reason(content, time.time(), self.stale_s)
        if reason is None:
            raise RunLockError(
                f"checkpoint_path {str(self.folder)!r} is in use by another training run ({describe(content)}); "
                f"wait for it to finish or stop it, or give another --checkpoint_path. If no such run is "
                f"alive, delete {self.path}")
        aside = self.path.with_name(f"{LOCK_FILE}.stale-{self.token}")
        try:
            os.rename(self.path, aside)  # only one of several contenders wins this rename
        except FileNotFoundError:
            return
        aside.unlink(missing_ok=True)
        self.report(f"taking over the lock of a stopped run on {str(self.folder)!r} ({describe(content)}): {reason}")

    def acquire(self) -> None:
        try:
            if not self.folder.exists():
                self.folder.mkdir(parents=True)
                self._created_folder = True
            for _ in range(5):
                if self._create():
                    break
                self._refuse_or_take_over()
            else:
                raise RunLockError(f"could not take the lock {self.path}: other runs keep taking it")
        except OSError as error:
            raise RunLockError(f"checkpoint_path {str(self.folder)!r} is not writable ({error})") from None
        self._thread = threading.Thread(target=self._beat, name="run-lock-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.refresh()
            except OSError as error:  # a Drive hiccup: try again next beat
                log.warning("could not refresh %s: %s", self.path, error)

    def refresh(self) -> None:
        """Rewrite the heartbeat (write aside, then rename over the lock) if the lock is still ours."""
        content = read_lock(self.folder)
        if not content or content.get("token") != self.token:
            log.error("%s is no longer held by this run (%s)", self.path,
                      describe(content) if content else "removed")
            self._stop.set()
            return
        atomic_io.write_text_atomic(self.path, json.dumps(self._content()))

    def release(self) -> None:
        """Stop the heartbeat and remove the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        content = read_lock(self.folder)
        if content and content.get("token") == self.token:
            self.path.unlink(missing_ok=True)
        if self._created_folder:
            try:
                self.folder.rmdir()  # only succeeds when the run wrote nothing else
            except OSError:
                pass

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()
