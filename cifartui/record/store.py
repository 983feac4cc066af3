"""A run on disk: ``<root>/<id>/`` with config.yaml, events.jsonl, summary.json, classes.json,
checkpoints and evaluation arrays.

Writing: :class:`RunStore` is an event sink (call it with events). Reading: :func:`read_run`,
:func:`list_runs` and :class:`EventFollower` never import torch and tolerate a half-written last line,
because the run may still be growing in another process (headless, torchrun, another SSH session).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cifartui.errors import UserError
from cifartui.record.atomic import atomic_write, atomic_write_text
from cifartui.record.control import WriterLock, pid_alive
from cifartui.record.meta import META_FILE, read_meta, read_meta_checked
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


class StorageError(Exception):
    """A write to the run folder failed (disk full, folder gone or read-only): the run cannot go on. Exit 1;
    the message names the first write that failed and what to do."""


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
        self.record = RunRecord(self.path, keep_steps=False)
        self.lock: WriterLock | None = None  # held from before the first write to close() (session.prepare)
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
        """Write one event. A failing write raises StorageError naming that first write (path, errno, what
        to do); the ``run_ended`` that follows is written as far as the disk allows and never raises, so
        the first cause is the one reported."""
        target = self.path
        try:
            if isinstance(event, (Evaluation, Samples)) and event.arrays is not None:
                if isinstance(event, Evaluation):
                    rel = f"{EVAL_DIR}/{event.split}_e{event.epoch:03d}.npz"
                else:
                    rel = f"samples_{event.split}.npz"
                target = self.path / rel
                (self.path / EVAL_DIR).mkdir(exist_ok=True)
                arrays = event.arrays
                import numpy as np

                atomic_write(target, lambda f: np.savez_compressed(f, **arrays))
                event.file = rel
            if isinstance(event, RunStarted):
                target = self.path / CLASSES_FILE
                self.write_classes(event.class_names)
            target = self.path / EVENTS_FILE
            line = json.dumps(event.to_dict(), default=_json_default, separators=(",", ":")) + "\n"
            if self._events is None:
                self._events = open(target, "a", encoding="utf-8")
            # One write call per whole line, then flush: a reader sees whole lines or a tail to skip.
            self._events.write(line)
            self._events.flush()
            if isinstance(event, (EpochEnd, RunEnded, RunStarted, Evaluation)):
                os.fsync(self._events.fileno())
            target = self.path / SUMMARY_FILE
            self._update_summary(event)
        except OSError as exc:
            if isinstance(event, RunEnded) or self.write_error is not None:
                # the end of a run that failed to write: as far as the disk allows, never a second error. A stale
                # summary.json would list the run "running", then "crashed" with no reason: without it, readers
                # fold events.jsonl, whose run_ended (if it got in) says why. Removing needs no space.
                if target.name == SUMMARY_FILE:
                    with contextlib.suppress(OSError):
                        target.unlink()
                return
            path = Path(exc.filename) if isinstance(exc.filename, str) and not Path(exc.filename).name.startswith(".") else target
            self.write_error = StorageError(
                f"cannot write {path} ({exc.strerror or exc}, errno {exc.errno}): the run stops here.\n"
                f"  Free space or fix the permissions of {self.path}; last.pt holds the last good state: "
                f"cifartui --headless train --resume {self.path}")
            raise self.write_error from exc

    write_error: "StorageError | None" = None

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
        """The writer is done: close the events file, then let another process write the run."""
        if self._events is not None:
            self._events.close()
            self._events = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None


# -- reading ----------------------------------------------------------------------------------------
# Readers never crash on a damaged run: they return what they can, and :func:`run_problems` names each file
# they could not read and why (show, report, export and the app print those lines).
class RunReadError(StoreError):
    """One file of a run could not be read; the message names the file and why."""


def _why(exc: BaseException) -> str:
    if isinstance(exc, IsADirectoryError):
        return "a folder where a file should be"
    if isinstance(exc, FileNotFoundError):
        return "missing"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 100 else text[:97] + "..."


def _read_json_checked(path: str | os.PathLike) -> tuple[Any, str | None]:
    """(data, None), or (None, why) for a file that is missing, unreadable or not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.loads(f.read()), None
    except (OSError, ValueError, RecursionError) as exc:
        return None, ("not valid JSON" if isinstance(exc, ValueError) and not isinstance(exc, UnicodeDecodeError)
                      else "nested too deeply" if isinstance(exc, RecursionError) else _why(exc))


def _read_json(path: Path) -> Any:
    return _read_json_checked(path)[0]


def read_events(path: str | os.PathLike, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Events from byte ``offset`` on, and the offset after the last whole line.

    A last line without its newline (a writer mid-write) is left for the next call; a garbled
    whole line (a crash long ago, a disk error) is skipped, never fatal. An unreadable file reads as no
    events (:func:`run_problems` says why).
    """
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
    except OSError:
        return [], offset
    end = chunk.rfind(b"\n")
    if end < 0:
        return [], offset
    return _parse_events(chunk), offset + end + 1  # it leaves the cut-off last line out itself


def _parse_events(chunk: bytes) -> list[dict[str, Any]]:
    """The events of the whole lines of ``chunk`` (a cut-off last line is not one); garbled lines skipped."""
    events = []
    for raw in chunk[: chunk.rfind(b"\n") + 1].splitlines():
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict) and isinstance(obj.get("type"), str):
            events.append(obj)
    return events


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
    tags: list[str] = field(default_factory=list)  # tags, note, archived: the user's, from meta.json
    note: str = ""
    archived: bool = False
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


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value) if value is not None and not isinstance(value, (list, dict)) else default
    except (TypeError, ValueError, OverflowError):
        return default


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value else None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _unreadable(path: Path, why: str) -> RunSummary:
    return RunSummary(id=path.name, path=str(path), name=path.name, status="unreadable", reason=why)


def read_run(run_path: str | os.PathLike, _summary_json: tuple[Any, str | None] | None = None) -> RunSummary:
    """The run's summary; never raises for a damaged run: status ``unreadable`` (with the reason) when neither
    summary.json nor events.jsonl can be read, figures of the wrong type read as missing."""
    path = Path(run_path)
    try:
        summary = _read_run(path, _summary_json)
    except Exception as exc:  # noqa: BLE001 - a damaged run is listed, never fatal
        summary = _unreadable(path, f"cannot read the run folder: {_why(exc)}")
    meta = read_meta(path)
    summary.tags, summary.note, summary.archived = meta.tags, meta.note, meta.archived
    return summary


def _read_run(path: Path, summary_json: tuple[Any, str | None] | None) -> RunSummary:
    s, summary_why = summary_json or _read_json_checked(path / SUMMARY_FILE)
    if not isinstance(s, dict):
        record = RunRecord.read(path)  # runs written before summary.json existed, or a lost/damaged file
        if record.events_applied == 0 and summary_why != "missing":
            events_why = _events_checked(path / EVENTS_FILE)[1]
            if events_why is not None:
                why = summary_why or "not a JSON object"
                return _unreadable(path, f"{SUMMARY_FILE}: {why}; {EVENTS_FILE}: {events_why}")
        s = record.summary()
    status = _str(s.get("status")) or "unknown"
    mtime = _num(s.get("updated")) if status in END_STATUSES else None  # an ended run's last write: no stat
    if mtime is None:
        try:
            mtime = os.stat(os.path.join(path, EVENTS_FILE)).st_mtime
        except OSError:
            mtime = None
    if status == "running":
        status = _live_status(s, mtime)
    elif status not in END_STATUSES:
        status = "unknown" if mtime is None else _live_status(s, mtime)
    best_epoch = s.get("best_epoch")
    return RunSummary(
        id=path.name, path=str(path), name=_str(s.get("name")) or path.name, status=status,
        reason=_str(s.get("reason")), epochs_done=_int(s.get("epochs_done")),
        epochs=_int(s.get("epochs")), best_val_acc=_num(s.get("best_val_acc")),
        best_epoch=best_epoch if isinstance(best_epoch, int) and not isinstance(best_epoch, bool) else None,
        test_acc=_num(s.get("test_acc")), model=_str(s.get("model")),
        dataset=_str(s.get("dataset")), world_size=max(1, _int(s.get("world_size"), 1)),
        started=_num(s.get("started")), updated=mtime, extra=s,
    )


def _events_checked(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """(its whole-line events, why events.jsonl gives none or lost its tail: None when fine or simply empty),
    from one read of the file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], None
    except OSError as exc:
        return [], _why(exc)
    events = _parse_events(data)
    if data and not events:
        return events, "no readable events (damaged or not an events file)"
    if data and not data.endswith(b"\n"):
        return events, "the last line is cut off (a writer stopped mid-line, or the file was truncated)"
    return events, None


_SUMMARY_TYPES = {"status": str, "name": str, "model": str, "dataset": str, "epochs_done": int, "epochs": int,
                  "world_size": int, "best_val_acc": (int, float), "test_acc": (int, float), "started": (int, float)}


def run_problems(run_path: str | os.PathLike) -> list[str]:
    """One line per file of the run that cannot be read, naming it and why (empty for a sound run).
    Missing optional files (no evaluation yet, no thumbnails) are not problems; a missing file an event names is."""
    path = Path(run_path)
    out: list[str] = []
    try:
        if not path.is_dir():
            return [f"{path}: the run folder is missing or not a folder"]
        os.listdir(path)
    except OSError as exc:
        return [f"{path.name}: the run folder cannot be read ({_why(exc)})"]
    s, why = _read_json_checked(path / SUMMARY_FILE)
    if why and why != "missing":
        out.append(f"{SUMMARY_FILE}: {why}")
    elif s is not None and not isinstance(s, dict):
        out.append(f"{SUMMARY_FILE}: not a JSON object (the figures come from {EVENTS_FILE})")
    elif isinstance(s, dict):
        wrong = [k for k, t in _SUMMARY_TYPES.items()
                 if s.get(k) is not None and (not isinstance(s[k], t) or isinstance(s[k], bool))]
        if wrong:
            out.append(f"{SUMMARY_FILE}: {', '.join(wrong)} of the wrong type (shown as missing)")
    events, events_why = _events_checked(path / EVENTS_FILE)
    if events_why:
        out.append(f"{EVENTS_FILE}: {events_why}")
    names, why = _read_json_checked(path / CLASSES_FILE)
    if why and why != "missing":
        out.append(f"{CLASSES_FILE}: {why}")
    elif names is not None and not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        out.append(f"{CLASSES_FILE}: not a list of class names")
    config_why = _config_problem(path / CONFIG_FILE)
    if config_why:
        out.append(f"{CONFIG_FILE}: {config_why}")
    meta_why = read_meta_checked(path)[1]
    if meta_why:
        out.append(f"{META_FILE}: {meta_why} (tags, note and archived shown as none)")
    checked: set[str] = set()
    for e in events:
        if e.get("type") in ("evaluation", "samples"):
            file = e.get("file") if e.get("type") == "evaluation" else f"samples_{e.get('split')}.npz"
            if not isinstance(file, str) or file in checked:
                continue
            checked.add(file)
            try:
                if e.get("type") == "evaluation":
                    _check_npz(_evaluation_path(path, file), file, ("confusion",))
                elif (path / file).exists() or e.get("file"):
                    _check_npz(path / file, file, ("images",))
            except StoreError as exc:
                out.append(str(exc))
    return out


def is_run_dir(path: Path) -> bool:
    try:
        return (path / EVENTS_FILE).exists() or (path / SUMMARY_FILE).exists()
    except OSError:  # a folder we may not look into: a run if it is named like one
        return bool(_STAMPED.match(path.name))


_STAMPED = re.compile(r"^\d{8}-\d{6}-")


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _stamp(folder: str) -> tuple:
    """What identifies the state of a run's files: atomic writes give a new inode, appends a new size, a chmod
    a new ctime."""
    out = []
    for name in (SUMMARY_FILE, META_FILE, EVENTS_FILE):
        try:
            st = os.stat(os.path.join(folder, name))
            out.append((st.st_ino, st.st_ctime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def list_runs(root: str | os.PathLike, cache: dict | None = None) -> list[RunSummary]:
    """Every run under ``root``, newest first; a run that cannot be read is listed as ``unreadable``.

    ``cache``: a dict the caller keeps between calls (the Runs screen, every few seconds): a run whose
    summary.json, meta.json and events.jsonl are as they were is not read again (three stats instead of reading
    and parsing: 10,000 runs in a third of the time). A running run is always read (it turns crashed when its
    writer dies, with no file changing)."""
    try:  # scandir: the kind of each entry comes with the listing, no stat per folder
        with os.scandir(root) as it:
            folders = [e.path for e in it if _is_folder(e)]
    except OSError:
        return []
    runs, kept = [], {}
    for folder in folders:
        stamp = _stamp(folder) if cache is not None else None
        hit = cache.get(folder) if cache is not None else None
        if hit is not None and hit[0] == stamp:
            kept[folder] = hit
            runs.append(hit[1])
            continue
        # summary.json read first: a run has one (one open, not an exists() and then an open)
        summary_json = _read_json_checked(os.path.join(folder, SUMMARY_FILE))
        path = Path(folder)
        if summary_json[1] == "missing" and not is_run_dir(path):
            continue
        run = read_run(path, summary_json)
        runs.append(run)
        if stamp is not None and run.status != "running":
            kept[folder] = (stamp, run)
    if cache is not None:
        cache.clear()
        cache.update(kept)
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


def _read_config(path: Path) -> tuple[Any, str | None]:
    from cifartui.record.bounded_yaml import MAX_CONFIG_BYTES, safe_load_yaml  # yaml: only when a config is read

    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            return None, f"larger than {MAX_CONFIG_BYTES >> 20} MB, not a config"
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        return None, _why(exc)
    import yaml

    try:
        data = safe_load_yaml(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, f"not readable YAML ({str(problem)[:100]})"
    if data is not None and not isinstance(data, dict):
        return None, "not a mapping of settings"
    return data or {}, None


def _config_problem(path: Path) -> str | None:
    why = _read_config(path)[1]
    return None if why == "missing" else why


def read_config_data(run_path: str | os.PathLike) -> dict[str, Any]:
    """The run's config.yaml as plain data ({} when missing or unreadable, :func:`run_problems` says why): for
    readers that must not fail on a config an older or newer schema would refuse. Bounded: an alias bomb or
    deep nesting reads as {} at once."""
    data, _ = _read_config(Path(run_path) / CONFIG_FILE)
    return data if isinstance(data, dict) else {}


def load_config_text(run_path: str | os.PathLike) -> str:
    """The run's config.yaml as text; RunReadError naming the file when it cannot be read."""
    path = Path(run_path) / CONFIG_FILE
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise RunReadError(f"{CONFIG_FILE}: cannot read it ({_why(exc)})") from None


def load_classes(run_path: str | os.PathLike) -> list[str]:
    names = _read_json(Path(run_path) / CLASSES_FILE)
    return [str(n) for n in names] if isinstance(names, list) else []


def _load_npz(full: Path, rel: str, required: tuple[str, ...], keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    import zipfile
    import zlib

    import numpy as np

    try:
        with np.load(full, allow_pickle=False) as data:
            _require(data.files, rel, required)
            return {k: data[k] for k in data.files if keys is None or k in keys}
    except RunReadError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, RuntimeError) as exc:
        why = _why(exc) if isinstance(exc, OSError) and not isinstance(exc, zipfile.BadZipFile) else \
            f"not a readable .npz, truncated or damaged ({_why(exc)})"
        raise RunReadError(f"{rel}: {why}") from None


def _require(names, rel: str, required: tuple[str, ...]) -> None:
    missing = [k for k in required if k not in names]
    if missing:
        raise RunReadError(f"{rel}: damaged: no {', '.join(repr(k) for k in missing)} array in it")


def _check_npz(full: Path, rel: str, required: tuple[str, ...]) -> None:
    """RunReadError unless ``full`` is a zip holding the ``required`` arrays. Reads the zip's directory only:
    a run keeps an evaluation per epoch, and run_problems checks them all (a truncated file has none)."""
    import zipfile

    try:
        with zipfile.ZipFile(full) as z:
            names = [n[: -len(".npy")] for n in z.namelist() if n.endswith(".npy")]
    except OSError as exc:
        raise RunReadError(f"{rel}: {_why(exc)}") from None
    except (ValueError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as exc:
        raise RunReadError(f"{rel}: not a readable .npz, truncated or damaged ({_why(exc)})") from None
    _require(names, rel, required)


def _evaluation_path(run_path: str | os.PathLike, file: str) -> Path:
    full = (Path(run_path) / file).resolve()
    if Path(run_path).resolve() not in full.parents:
        raise StoreError(f"evaluation file {file!r} lies outside the run folder")
    return full


def load_evaluation(run_path: str | os.PathLike, file: str, required: tuple[str, ...] = ("confusion",),
                    keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The arrays of one evaluation (``file`` as recorded in its event, relative to the run), or only ``keys``
    of them (the others stay compressed on disk); RunReadError (a StoreError) naming the file when it is
    missing, damaged or lacks a ``required`` array."""
    return _load_npz(_evaluation_path(run_path, file), file, required, keys)


def load_samples(run_path: str | os.PathLike, split: str, required: bool = False) -> np.ndarray | None:
    """Thumbnails (uint8 N,H,W,3) of a split in dataset order, or None when the run saved none; RunReadError
    naming the file when it is damaged (or missing, with ``required``)."""
    rel = f"samples_{split}.npz"
    path = Path(run_path) / rel
    if not required and not path.exists():
        return None
    return _load_npz(path, rel, ("images",))["images"]
