"""Crash-safe file writes: a temporary file in the same folder, fsync, then an atomic rename.

A kill at any point leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Callable

_umask: int | None = None
_umask_lock = threading.Lock()


def _file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: 0o666 minus the umask.

    mkstemp creates its files 0600 whatever the umask, which would hide a run from a teammate on a shared
    box. The umask can only be read by setting it, so it is read once, under a lock (os.umask is
    process-wide: two threads reading it at once could leave the wrong one set), and cached.
    """
    global _umask
    if _umask is None:
        with _umask_lock:
            if _umask is None:
                current = os.umask(0o077)
                os.umask(current)
                _umask = current
    return 0o666 & ~_umask


def atomic_write(path: str | os.PathLike, write: Callable[[object], None], mode: str = "wb") -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, fsync it, and rename it over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:  # as a new file from open() would get (mkstemp gives 0600), before any data is written. A file
            # replaced gets it too, so files an older version wrote 0600 become readable when next rewritten.
            os.fchmod(fd, _file_mode())
        except (AttributeError, OSError):  # no fchmod (Windows), or a file system without modes
            pass
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), mode="w")


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename durable; a no-op where directories cannot be opened (Windows)."""
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
