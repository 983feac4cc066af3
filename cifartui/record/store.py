"""A run on disk: ``<root>/<id>/`` with config.yaml, events.jsonl, summary.json, classes.json,
checkpoints and evaluation arrays.

Writing: :class:`RunStore` is an event sink (call it with events). Reading: :func:`read_run`,
:func:`list_runs` and :class:`EventFollower` never import torch and tolerate a half-written last line,
because the run may still be growing in another process (headless, torchrun, another SSH session).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from cifartui.errors import UserError
from cifartui.record.atomic import atomic_write, atomic_write_text
from cifartui.record.control import pid_alive
from cifartui.record.read_model import RunRecord
from cifartui.record.events import END_STATUSES, EpochEnd, Evaluation, Event, RunEnded, RunStarted, Samples

if TYPE_CHECKING:  # numpy loads where arrays are read or written, not for listing runs or the app's start
    import numpy as np

EVENTS_FILE = "events.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.yaml"
CLASSES_FILE = "classes.json"
EVAL_DIR = "eval"
# A run on another host whose events stopped growing this long ago is taken as crashed.
STALE_SECONDS = 3600.0
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,79}$")


class StoreError(UserError):
    """A problem with the run folder or its name; the message says what to do."""


def check_run_name(name: str) -> str:
    if not _NAME_OK.match(name or "") or ".." in name:
        raise StoreError(
            f"name: {name!r} is not a valid run name.\n"
            "  Use letters, digits, '.', '_', '+' or '-' (up to 80 characters, no '/' and no '..'), "
            "e.g. name: cifar100-resnet34."
        )
    return name


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class RunStore:
    """The writer side of one run folder. Call the instance with events (it is a sink)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.id = self.path.name
        # the read model, folded as events are written: summary.json is its summary (one fold for every reader)
        self.record = RunRecord(self.path)
        self._events = None

    # -- creation ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | os.PathLike, name: str) -> "RunStore":
        """Make a new run folder ``<root>/<YYYYmmdd-HHMMSS>-<name>`` (unique, sortable by time)."""
        check_run_name(name)
        root = Path(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"output.root: cannot create {str(root)!r} ({exc.strerror}).\n"
                "  Pick a folder you can write to, e.g. --set output.root=./runs"
            ) from exc
        if not os.access(root, os.W_OK):
            raise StoreError(
                f"output.root: {str(root)!r} is not writable.\n"
                "  Pick a folder you can write to, e.g. --set output.root=./runs"
            )
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(1, 1000):
            run_id = f"{stamp}-{name}" if n == 1 else f"{stamp}-{name}-{n}"
            path = root / run_id
            try:
                path.mkdir()  # exclusive: two processes never get the same folder
            except FileExistsError:
                continue
            (path / EVAL_DIR).mkdir()
            return cls(path)
        raise StoreError(f"output.root: too many runs named {name!r} in the same second")

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunStore":
        """Reopen an existing run for appending (resume)."""
        store = cls(path)
        store._repair_after_crash()
        events, _ = read_events(store.path / EVENTS_FILE)  # the history this resume continues
        store.record.apply_all(events)
        return store

    def _repair_after_crash(self) -> None:
        """A writer killed mid-write leaves a line without its newline and temp files of atomic writes.
        End the torn line (readers skip it) so appended events start on a line of their own."""
        events = self.path / EVENTS_FILE
        try:
            with open(events, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
        except (FileNotFoundError, OSError):
            torn = False
        if torn:
            with open(events, "a", encoding="utf-8") as f:
                f.write("\n")
        for tmp in list(self.path.glob(".*.tmp")) + list((self.path / EVAL_DIR).glob(".*.tmp")):
            tmp.unlink(missing_ok=True)

    # -- writing ----------------------------------------------------------------------------------
    def write_config(self, text: str) -> None:
        atomic_write_text(self.path / CONFIG_FILE, text)

    def write_classes(self, names: list[str]) -> None:
        atomic_write_text(self.path / CLASSES_FILE, json.dumps(names))

    def __call__(self, event: Event) -> None:
        if isinstance(event, (Evaluation, Samples)) and event.arrays is not None:
            if isinstance(event, Evaluation):
                rel = f"{EVAL_DIR}/{event.split}_e{event.epoch:03d}.npz"
            else:
                rel = f"samples_{event.split}.npz"
            (self.path / EVAL_DIR).mkdir(exist_ok=True)
            arrays = event.arrays
            import numpy as np

            atomic_write(self.path / rel, lambda f: np.savez_compressed(f, **arrays))
            event.file = rel
        if isinstance(event, RunStarted):
            self.write_classes(event.class_names)
        line = json.dumps(event.to_dict(), default=_json_default, separators=(",", ":")) + "\n"
        if self._events is None:
            self._events = open(self.path / EVENTS_FILE, "a", encoding="utf-8")
        # One write call per whole line, then flush: a reader sees whole lines or a tail to skip.
        self._events.write(line)
        self._events.flush()
        if isinstance(event, (EpochEnd, RunEnded, RunStarted, Evaluation)):
            os.fsync(self._events.fileno())
        self._update_summary(event)

    def _update_summary(self, event: Event) -> None:
        if isinstance(event, (Evaluation, Samples)):
            event = replace(event, arrays=None)  # the record keeps figures, never the arrays (memory)
        self.record.apply(event)
        if not isinstance(event, (EpochEnd, RunEnded, RunStarted, Evaluation)):
            return
        summary = self.record.summary()
        summary.update(id=self.id, updated=time.time())
        atomic_write_text(self.path / SUMMARY_FILE, json.dumps(summary, default=_json_default))

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None


# -- reading ----------------------------------------------------------------------------------------
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_events(path: str | os.PathLike, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Events from byte ``offset`` on, and the offset after the last whole line.

    A last line without its newline (a writer mid-write) is left for the next call; a garbled
    whole line (a crash long ago, a disk error) is skipped, never fatal.
    """
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n")
    if end < 0:
        return [], offset
    events = []
    for raw in chunk[: end + 1].splitlines():
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("type"), str):
            events.append(obj)
    return events, offset + end + 1


class EventFollower:
    """Reads new events of a run as they are appended (the TUI follows live runs with it)."""

    def __init__(self, run_path: str | os.PathLike):
        self.path = Path(run_path) / EVENTS_FILE
        self.offset = 0

    def poll(self) -> list[dict[str, Any]]:
        events, self.offset = read_events(self.path, self.offset)
        return events


@dataclass
class RunSummary:
    id: str
    path: str
    name: str = ""
    status: str = "unknown"
    reason: str = ""
    epochs_done: int = 0
    epochs: int = 0
    best_val_acc: float | None = None
    best_epoch: int | None = None
    test_acc: float | None = None
    model: str = ""
    dataset: str = ""
    world_size: int = 1
    started: float | None = None
    updated: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        return d


def _live_status(s: dict[str, Any], events_mtime: float | None) -> str:
    """``running`` only while the writer is alive: a dead pid on this host, or silence for
    STALE_SECONDS elsewhere, means the run crashed (never shown "running" forever)."""
    pid, host = s.get("pid"), s.get("host")
    if pid and host == socket.gethostname():
        return "running" if pid_alive(int(pid)) else "crashed"
    last = events_mtime or s.get("updated") or 0
    return "running" if time.time() - last < STALE_SECONDS else "crashed"


def read_run(run_path: str | os.PathLike) -> RunSummary:
    path = Path(run_path)
    s = _read_json(path / SUMMARY_FILE)
    if not isinstance(s, dict):
        s = RunRecord.read(path).summary()  # runs written before summary.json existed, or a lost file
    try:
        mtime = (path / EVENTS_FILE).stat().st_mtime
    except OSError:
        mtime = None
    status = s.get("status") or "unknown"
    if status == "running":
        status = _live_status(s, mtime)
    elif status not in END_STATUSES:
        status = "unknown" if mtime is None else _live_status(s, mtime)
    return RunSummary(
        id=path.name, path=str(path), name=s.get("name") or path.name, status=status,
        reason=s.get("reason") or "", epochs_done=int(s.get("epochs_done") or 0),
        epochs=int(s.get("epochs") or 0), best_val_acc=s.get("best_val_acc"),
        best_epoch=s.get("best_epoch"), test_acc=s.get("test_acc"), model=s.get("model") or "",
        dataset=s.get("dataset") or "", world_size=int(s.get("world_size") or 1),
        started=s.get("started"), updated=mtime, extra=s,
    )


def is_run_dir(path: Path) -> bool:
    return (path / EVENTS_FILE).exists() or (path / SUMMARY_FILE).exists()


def list_runs(root: str | os.PathLike) -> list[RunSummary]:
    """Every run under ``root``, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [read_run(p) for p in root.iterdir() if p.is_dir() and is_run_dir(p)]
    runs.sort(key=lambda r: r.id, reverse=True)
    return runs


def resolve_run(ref: str | os.PathLike, root: str | os.PathLike = "runs") -> Path:
    """A run from a path, an id under ``root``, or a unique id prefix/suffix; errors say what exists."""
    p = Path(ref)
    if p.is_dir() and is_run_dir(p):
        return p
    root = Path(root)
    candidate = root / str(ref)
    if str(ref) and "/" not in str(ref) and ".." not in str(ref) and candidate.is_dir() and is_run_dir(candidate):
        return candidate
    matches = [r for r in list_runs(root) if str(ref) and (r.id.startswith(str(ref)) or r.id.endswith(str(ref)) or r.name == str(ref))]
    if len(matches) == 1:
        return Path(matches[0].path)
    if len(matches) > 1:
        names = ", ".join(m.id for m in matches[:5])
        raise StoreError(f"run {str(ref)!r} is ambiguous under {str(root)!r}: {names}. Give the full id.")
    raise StoreError(
        f"run {str(ref)!r} not found under {str(root)!r}.\n"
        "  `cifartui runs --root DIR` lists the runs; pass a run folder path or its id."
    )


def read_config_data(run_path: str | os.PathLike) -> dict[str, Any]:
    """The run's config.yaml as plain data ({} when missing or unreadable): for readers that must not fail on
    a config an older or newer schema would refuse."""
    import yaml

    try:
        text = (Path(run_path) / CONFIG_FILE).read_text(encoding="utf-8")
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def load_config_text(run_path: str | os.PathLike) -> str:
    return (Path(run_path) / CONFIG_FILE).read_text(encoding="utf-8")


def load_classes(run_path: str | os.PathLike) -> list[str]:
    names = _read_json(Path(run_path) / CLASSES_FILE)
    return list(names) if isinstance(names, list) else []


def load_evaluation(run_path: str | os.PathLike, file: str) -> dict[str, np.ndarray]:
    """The arrays of one evaluation (``file`` as recorded in its event, relative to the run)."""
    full = (Path(run_path) / file).resolve()
    if Path(run_path).resolve() not in full.parents:
        raise StoreError(f"evaluation file {file!r} lies outside the run folder")
    import numpy as np

    with np.load(full, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def load_samples(run_path: str | os.PathLike, split: str) -> np.ndarray | None:
    """Thumbnails (uint8 N,H,W,3) of a split in dataset order, or None when the run saved none."""
    path = Path(run_path) / f"samples_{split}.npz"
    if not path.exists():
        return None
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        return data["images"]


def evaluations(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("type") == "evaluation" and e.get("file")]
