"""Write files so that a reader (or a run killed half-way) sees the old content or the new one, never a mix.

Works on FUSE mounts such as Google Drive: a temporary file beside the target, flushed, then
``os.replace``d over it; no symlinks, no locks.
"""
from __future__ import annotations

import os
from pathlib import Path

TEMP_PREFIX = ".tmp-"


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a directory entry where the file system allows it (FUSE mounts often don't)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_path(path: str | os.PathLike) -> Path:
    """The temporary name ``write_bytes_atomic`` writes ``path`` under before renaming it."""
    path = Path(path)
    return path.with_name(f"{TEMP_PREFIX}{path.name}-{os.getpid()}")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically (write aside, fsync, rename)."""
    path = Path(path)
    temp = temp_path(path)
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Replace ``path`` by ``text`` atomically."""
    write_bytes_atomic(path, text.encode(encoding))
