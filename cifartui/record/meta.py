"""What the user says about a run: tags, a note, archived. ``meta.json`` in the run folder, written atomically
by ``cifartui runs tag/note/archive`` and the Runs screen, never by the trainer (``events.jsonl`` stays the
trainer's, append-only). Read by :func:`cifartui.record.store.read_run`, so every listing carries it.

A change is a read-modify-write under an exclusive ``flock`` on the run folder itself (no extra file), so two
commands tagging the same run at once both land. A damaged ``meta.json`` is never overwritten: the change is
refused with the file named, so what the user wrote is not lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from cifartui.errors import UserError
from cifartui.record.atomic import atomic_write_text

META_FILE = "meta.json"
_TAG_OK = re.compile(r"^\w[\w.+/-]{0,39}$")


@dataclass
class RunMeta:
    tags: list[str] = field(default_factory=list)
    note: str = ""
    archived: bool = False
    other: dict[str, Any] = field(default_factory=dict)  # keys a newer version wrote: kept when rewriting

    def to_dict(self) -> dict[str, Any]:
        return {**self.other, "tags": self.tags, "note": self.note, "archived": self.archived}


def check_tag(tag: str) -> str:
    if not _TAG_OK.match(tag or ""):
        raise UserError(
            f"tag: {tag!r} is not a valid tag.\n"
            "  Use letters, digits, '_', '.', '+', '/' or '-' (up to 40 characters, no spaces), e.g. baseline")
    return tag


def _from_data(data: Any) -> RunMeta:
    if not isinstance(data, dict):
        return RunMeta()
    tags = data.get("tags")
    tags = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
    note = data.get("note") if isinstance(data.get("note"), str) else ""
    other = {k: v for k, v in data.items() if k not in ("tags", "note", "archived")}
    return RunMeta(tags=tags, note=note, archived=data.get("archived") is True, other=other)


def read_meta_checked(run_path: str | os.PathLike) -> tuple[RunMeta, str | None]:
    """(meta, None); or (empty meta, why) when meta.json cannot be read. A missing file is no problem."""
    try:  # os.path, not pathlib: this runs once per run of every listing (10,000 runs: ~0.1 s saved)
        with open(os.path.join(run_path, META_FILE), encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return RunMeta(), None
    except (OSError, ValueError) as exc:
        return RunMeta(), (exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return RunMeta(), "not valid JSON"
    if not isinstance(data, dict):
        return RunMeta(), "not a JSON object"
    return _from_data(data), None


def read_meta(run_path: str | os.PathLike) -> RunMeta:
    """Never raises: a damaged file reads as no tags (``run_problems`` names it)."""
    return read_meta_checked(run_path)[0]


@contextlib.contextmanager
def _locked(run_path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no flock; one user at a time
        yield
        return
    fd = os.open(run_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def update_meta(run_path: str | os.PathLike, change: Callable[[RunMeta], None]) -> RunMeta:
    """Apply ``change`` to the run's meta and write it back atomically; the new meta."""
    path = Path(run_path)
    with _locked(path):
        meta, why = read_meta_checked(path)
        if why is not None:
            raise UserError(f"{path.name}/{META_FILE}: {why}; it is left as it is.\n"
                            f"  Fix or delete {path / META_FILE} (it holds only tags, note and archived), then retry.")
        change(meta)
        meta.other["updated"] = time.time()
        atomic_write_text(path / META_FILE, json.dumps(meta.to_dict(), ensure_ascii=False, indent=1))
    return meta


def add_tags(run_path: str | os.PathLike, tags: list[str]) -> RunMeta:
    tags = [check_tag(t) for t in tags]
    return update_meta(run_path, lambda m: m.tags.extend(t for t in dict.fromkeys(tags) if t not in m.tags))


def remove_tags(run_path: str | os.PathLike, tags: list[str]) -> RunMeta:
    def change(m: RunMeta) -> None:
        m.tags = [t for t in m.tags if t not in tags]

    return update_meta(run_path, change)


def set_tags(run_path: str | os.PathLike, tags: list[str]) -> RunMeta:
    """The tags become exactly ``tags`` (the Runs screen's tag dialog edits the whole list)."""
    tags = list(dict.fromkeys(check_tag(t) for t in tags))

    def change(m: RunMeta) -> None:
        m.tags = tags

    return update_meta(run_path, change)


def set_note(run_path: str | os.PathLike, note: str) -> RunMeta:
    def change(m: RunMeta) -> None:
        m.note = note.strip()

    return update_meta(run_path, change)


def set_archived(run_path: str | os.PathLike, archived: bool) -> RunMeta:
    def change(m: RunMeta) -> None:
        m.archived = archived

    return update_meta(run_path, change)
