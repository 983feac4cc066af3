"""How other processes talk to the process training a run, through files in its folder (no pid, no signal,
so it works across hosts on a shared filesystem and under torchrun):

- ``stop.request``: "stop after your current step". The trainer looks for it at every log interval, saves
  ``last.pt`` and ends ``stopped``; written by ``x`` in the app, a queue, or ``touch RUN/stop.request``.
- ``train.log``: the run's own console log, what it said when no terminal watched it.
- ``writer.lock``: held by the one process that writes the run (:class:`WriterLock`).

Torch-free and tiny: the trainer (core) imports it, and so do the app and the store.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from cifartui.errors import UserError
from cifartui.record.atomic import atomic_write_text

STOP_FILE = "stop.request"
TRAIN_LOG = "train.log"


class StopRequest(threading.Event):
    """The stop flag handed to the trainer, with the reason its ``run_ended`` event will give."""

    reason = ""

    def request(self, reason: str = "") -> None:
        self.reason = reason or self.reason
        self.set()


def request_stop(run_path: str | os.PathLike, by: str = "") -> Path:
    """Ask the process training ``run_path`` to stop after its current step (it saves last.pt, ends stopped)."""
    path = Path(run_path) / STOP_FILE
    who = by or f"{socket.gethostname()} pid {os.getpid()}"
    atomic_write_text(path, json.dumps({"time": time.time(), "by": who}))
    return path


def stop_requested(run_path: str | os.PathLike) -> bool:
    return (Path(run_path) / STOP_FILE).exists()


def append_train_log(run_path: str | os.PathLike, text: str) -> None:
    """A line for the run's console log (what no terminal showed); never raises."""
    try:
        with open(Path(run_path) / TRAIN_LOG, "a", encoding="utf-8") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + text.rstrip("\n") + "\n")
    except OSError:
        pass


def read_stop_request(run_path: str | os.PathLike) -> dict[str, Any]:
    try:
        data = json.loads((Path(run_path) / STOP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # an empty file (``touch``) is a request too
    return data if isinstance(data, dict) else {}


def clear_stop_request(run_path: str | os.PathLike) -> None:
    """A request is for the writer that was running when it was made: a resume starts without it."""
    (Path(run_path) / STOP_FILE).unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process of this host still exists (a writer, a queue worker)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's: alive
        return True
    return True


# -- one writer per run ----------------------------------------------------------------------------------
WRITER_LOCK = "writer.lock"


class RunBusy(UserError):
    """Another process writes this run (exit 2; the message names it and what to do). ``holder``: who, "pid N
    on HOST (since ...)", for callers that word their own message (runs rm)."""

    def __init__(self, message: str, holder: str = "?"):
        super().__init__(message)
        self.holder = holder


class WriterLock:
    """The one writer of a run folder: an exclusive ``flock`` on ``writer.lock``, whose text names the holder.

    The kernel drops the lock when its process ends, however it ends (SIGKILL included), so a stale lock
    is never taken over by guesswork: a dead writer holds nothing. On NFS, Linux clients map flock to the
    server's byte-range locks (NFSv4: leased, freed when a crashed client's lease expires). The file stays
    (removing it would let a third process lock a new file while a second still holds the old one).
    """

    def __init__(self, fd: int, path: Path):
        self.fd, self.path = fd, path

    @classmethod
    def acquire(cls, run_dir: str | os.PathLike, action: str = "--resume") -> "WriterLock | None":
        """Take the lock, or raise RunBusy naming the holder. None where flock does not exist (Windows)."""
        try:
            import fcntl
        except ImportError:
            return None
        path = Path(run_dir) / WRITER_LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _describe(_read_holder(fd))
            os.close(fd)
            raise RunBusy(
                f"{action}: {Path(run_dir).name} is being written by {who}; two writers would interleave its history.\n"
                f"  Wait for it to end, or stop it first (x on its dashboard, or: touch {Path(run_dir) / STOP_FILE}), "
                "then resume.", holder=who) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}).encode())
        return cls(fd, path)

    def release(self) -> None:
        if self.fd < 0:
            return
        import fcntl

        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = -1


def _describe(holder: dict[str, Any]) -> str:
    when = holder.get("time")
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(when)) if isinstance(when, (int, float)) else "?"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} (since {since})"


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
