"""Delete without regret: ``runs rm`` moves a run folder to ``<root>/.trash/<id>`` (one rename, nothing copied),
``runs restore`` moves it back. Emptying the trash for good is ``rm -rf <root>/.trash`` (README).

A live run is never moved: the writer's ``flock`` on ``writer.lock`` is taken for the move (the same lock a
resume takes, so no writer can start meanwhile), and a run whose status reads ``running`` (a writer alive on
this host, or events still growing on another one) is refused too.
"""

from __future__ import annotations

import os
from pathlib import Path

from cifartui.record.control import STOP_FILE, RunBusy, WriterLock
from cifartui.record.store import StoreError, read_run, resolve_run

TRASH_DIR = ".trash"


def trash_of(root: str | os.PathLike) -> Path:
    return Path(root) / TRASH_DIR


def _live(run_dir: Path, who: str) -> RunBusy:
    return RunBusy(f"runs rm: {run_dir.name} is live: it is being written by {who}; it is left where it is.\n"
                   f"  Stop it first (x on its dashboard, or: touch {run_dir / STOP_FILE}), wait for it to end, "
                   "then rm it.")


def _take(run_dir: Path) -> WriterLock | None:
    """The run's writer lock, held while it moves; RunBusy (naming the writer) for a live run."""
    try:
        lock = WriterLock.acquire(run_dir, action="runs rm")
    except RunBusy as busy:
        raise _live(run_dir, busy.holder) from None
    except OSError:  # a run folder we cannot write a lock into: its status alone decides
        lock = None
    summary = read_run(run_dir)
    if summary.status == "running":  # a writer of a version without the lock, or on a host flock misses
        if lock is not None:
            lock.release()
        host, pid = summary.extra.get("host", "?"), summary.extra.get("pid", "?")
        raise _live(run_dir, f"pid {pid} on {host} (its events are still growing)")
    return lock


def check_not_live(run_dir: str | os.PathLike) -> None:
    """RunBusy when a process writes the run (for checking every run of an ``rm`` before moving any)."""
    lock = _take(Path(run_dir))
    if lock is not None:
        lock.release()


def move_to_trash(run_dir: str | os.PathLike) -> Path:
    """Move a run that no process writes to ``<its root>/.trash/``; its new path. RunBusy for a live run."""
    run_dir = Path(run_dir)
    trash = trash_of(run_dir.parent)
    dest = trash / run_dir.name
    lock = _take(run_dir)
    try:
        if dest.exists():
            raise StoreError(f"runs rm: {dest} exists already; {run_dir.name} is left where it is.\n"
                             f"  Restore or delete that one first (rm -rf {dest}).")
        trash.mkdir(exist_ok=True)
        os.rename(run_dir, dest)
    finally:
        if lock is not None:
            lock.release()
    return dest


def restore(ref: str, root: str | os.PathLike) -> Path:
    """Move a run from ``<root>/.trash`` back to ``<root>``; its path there."""
    trash = trash_of(root)
    try:
        found = resolve_run(ref, trash)
    except StoreError:
        raise StoreError(f"runs restore: {ref!r} is not in the trash ({trash}).\n"
                         f"  `cifartui runs --trash --root {root}` lists what is there.") from None
    if found.resolve().parent != trash.resolve():
        raise StoreError(f"runs restore: {found} is not in the trash ({trash}); nothing to restore.")
    dest = Path(root) / found.name
    if dest.exists():
        raise StoreError(f"runs restore: {dest} exists already; {found.name} stays in the trash.\n"
                         "  Move or rm that run first.")
    os.rename(found, dest)
    return dest
