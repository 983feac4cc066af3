"""A local run queue and sweeps, with no server: plain files in the runs root.

``<root>/.queue/<id>.json`` is one entry (a fully resolved config and its state), written atomically.
``<root>/.queue/<id>.taken`` is the claim on it: whoever creates it with ``O_CREAT | O_EXCL`` owns the entry
and is the only process that may change its state (a worker training it, or ``queue rm`` cancelling it).
Claims are never removed once an entry leaves ``pending``, so a finished entry can never be taken again.

Why this is safe across processes, and across hosts sharing the root: the exclusive create is a single
atomic operation on the file server for NFSv3 and NFSv4 (Linux clients since 2.6.5 send it as an exclusive
CREATE instead of checking and creating in two steps), so of two workers racing for one entry exactly one
gets the file and the other gets EEXIST. On NFSv2 O_EXCL is *not* atomic; there a claim would need the
link() trick (create a unique file, link it to the claim name, check the link count).

New entries are published with os.link() of a staged file onto the id's name, which fails if the name
exists (atomic on every NFS version), so two ``queue add`` in the same second never overwrite each other.

Nothing here imports torch: the app and ``cifartui queue`` list entries at once; a worker loads torch when
it trains, after ``--devices`` has set CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Iterable

import yaml

from cifartui import config as config_mod
from cifartui.config import Config, ConfigError
from cifartui.record.atomic import atomic_write_text
from cifartui.errors import UserError
from cifartui.record.control import pid_alive
from cifartui.record.store import check_run_name, is_run_dir, read_run

QUEUE_DIR = ".queue"
WORKERS_DIR = "workers"
WORKER_LOG = "worker.log"
STATES = ("pending", "running", "done", "failed", "stopped", "cancelled")
# A worker on another host is taken as gone when its file has not been touched for this long.
WORKER_STALE_SECONDS = 300.0
HEARTBEAT_SECONDS = 60.0
MAX_GRID = 10000  # ids carry a 4-digit counter; a bigger grid is almost surely a typo
EXIT_SIGINT, EXIT_SIGTERM = 130, 143
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9._+-]+")
HOST = socket.gethostname()


@dataclass
class Entry:
    id: str
    sweep: str
    state: str
    overrides: dict[str, Any]
    swept: list[str]
    config: str  # the resolved config as YAML: later edits to the source file change nothing queued
    source: str | None
    name: str
    created: float
    run: str | None = None
    worker: dict[str, Any] | None = None  # {"host", "pid"} of the process that took it
    started: float | None = None
    ended: float | None = None
    reason: str = ""

    def to_dict(self, with_config: bool = True) -> dict[str, Any]:
        d = asdict(self)
        if not with_config:
            d.pop("config")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Entry":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def queue_dir(root: str | os.PathLike) -> Path:
    return Path(root) / QUEUE_DIR


# -- adding ------------------------------------------------------------------------------------------
def _parse_sweep(item: str) -> tuple[str, list[Any]]:
    """``train.lr=0.001,0.002`` -> ("train.lr", [0.001, 0.002]); values parse like --set (YAML), so a list value
    can be swept too: ``data.classes=[cat,dog],[ship,truck]``."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not _KEY.fullmatch(key):
        raise UserError(f"--sweep {item!r}: expected KEY=V1,V2,... with a dotted key, e.g. --sweep train.lr=0.001,0.002")
    try:
        values = config_mod.safe_load_yaml(f"[{raw}]")  # bounded: no alias bomb, no deep nesting
    except yaml.YAMLError:
        raise UserError(f"--sweep {item!r}: the values are not a comma-separated list (an empty item?), "
                        f"e.g. --sweep {key}=0.001,0.002") from None
    if not values:
        raise UserError(f"--sweep {item!r}: no values for {key}. Give a comma-separated list, e.g. --sweep {key}=0.001,0.002")
    return key, values


def _label(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(_label(v) for v in value)
    return json.dumps(value) if isinstance(value, (bool, type(None))) else str(value)


def run_name(base: str, point: dict[str, Any]) -> str:
    """``demo`` + {"train.lr": 0.001, "train.batch_size": 64} -> ``demo-lr0.001-batch_size64`` (run-name charset, 80 max)."""
    parts = [base] + [key.rsplit(".", 1)[-1] + _label(v) for key, v in point.items()]
    name = _NOT_NAME_CHAR.sub("_", "-".join(parts)).replace("..", "_")[:80].rstrip("-.")
    return check_run_name(name)


def _load(source: str | os.PathLike | Config, items: list[str]) -> Config:
    if isinstance(source, Config):
        return source.with_overrides(**dict(config_mod.parse_override(i) for i in items))
    return config_mod.load(source, items)


def add_entries(root: str | os.PathLike, source: str | os.PathLike | Config, sets: Iterable[str] = (),
                sweeps: Iterable[str] = ()) -> list[Entry]:
    """Queue one entry per point of the grid over every ``--sweep`` (one entry without sweeps).

    Every point is validated before anything is written, so bad input leaves the queue as it was."""
    sets, sweeps = list(sets), list(sweeps)
    grid, resolved = validate_grid(source, sweeps, sets, root)
    root = Path(root)
    qdir = queue_dir(root)
    try:
        qdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--root: cannot create {str(qdir)!r} ({exc.strerror}); pick a folder you can write to.") from None
    src = None if isinstance(source, Config) else str(source)
    stamp, entries = time.strftime("%Y%m%d-%H%M%S"), []
    counter = itertools.count(1 + max((int(p.stem.rsplit("-", 1)[-1]) for p in qdir.glob(f"{stamp}-*.json")), default=0))
    for cfg, overrides in resolved:
        entry = Entry(id="", sweep=entries[0].id if entries else "", state="pending", overrides=overrides,
                      swept=list(grid), config=cfg.to_yaml(), source=src, name=cfg.name, created=time.time())
        entries.append(_publish(qdir, entry, stamp, counter))
    return entries


def validate_grid(source: str | os.PathLike | Config, sweeps: Iterable[str], sets: Iterable[str] = (),
                  root: str | os.PathLike = "runs") -> tuple[dict[str, list[Any]], list[tuple[Config, dict[str, Any]]]]:
    """The grid and each point's resolved config and overrides; raises UserError (naming the point) for the
    first one the schema refuses. Writes nothing: the app checks a sweep with it before queueing."""
    sets, sweeps = list(sets), list(sweeps)
    grid: dict[str, list[Any]] = {}
    for item in sweeps:
        key, values = _parse_sweep(item)
        if key in grid:
            raise UserError(f"--sweep {key}: given twice; put all its values in one --sweep {key}=V1,V2,...")
        grid[key] = values
    size = 1
    for values in grid.values():
        size *= len(values)
    if size > MAX_GRID:
        raise UserError(f"--sweep: the grid has {size} points, more than {MAX_GRID}; sweep fewer values.")
    try:
        _load(source, sets)  # the config and --set alone first: their errors are not a sweep's
    except ConfigError as exc:
        raise UserError(f"queue add: {exc}\n  Nothing was queued.") from None
    root = Path(root)
    resolved = []
    for combo in itertools.product(*grid.values()):
        point = dict(zip(grid, combo))
        shown = " ".join(f"{k}={_label(v)}" for k, v in point.items())
        try:
            cfg = _load(source, sets + [f"{k}={json.dumps(v)}" for k, v in point.items()])
            name = run_name(cfg.name, point) if point else cfg.name
            cfg = cfg.with_overrides(name=name, **{"output.root": str(root)})
        except UserError as exc:
            raise UserError(f"queue add: --sweep point {shown} is refused:\n  {exc}\n  Nothing was queued.") from None
        overrides = {**dict(config_mod.parse_override(i) for i in sets), **point}
        overrides.pop("output.root", None)  # the queue's root decides where runs go
        resolved.append((cfg, overrides))
    return grid, resolved


def _publish(qdir: Path, entry: Entry, stamp: str, counter) -> Entry:
    """Write a new entry under the next free id. os.link() onto the final name fails if it exists."""
    staging = qdir / f".adding-{HOST}-{os.getpid()}"
    first_of_sweep = not entry.sweep
    try:
        while True:
            entry.id = f"{stamp}-{next(counter):04d}"
            if first_of_sweep:
                entry.sweep = entry.id  # a sweep is named after its first entry
            atomic_write_text(staging, json.dumps(entry.to_dict(), indent=1))
            try:
                os.link(staging, qdir / f"{entry.id}.json")
                return entry
            except FileExistsError:
                continue
    finally:
        staging.unlink(missing_ok=True)


# -- reading -----------------------------------------------------------------------------------------
def _read(path: Path) -> Entry | None:
    try:
        return Entry.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None  # removed meanwhile, or not ours


def _stored_entries(root: str | os.PathLike) -> list[Entry]:
    """Entries as written, oldest first."""
    found = (_read(p) for p in sorted(queue_dir(root).glob("*.json")))
    return [e for e in found if e is not None]


def _process_gone(root: str | os.PathLike, host: str | None, pid: int | None) -> bool:
    """This host: the pid is dead. Another host: its worker file went stale (or is gone)."""
    if not pid:
        return False
    if host == HOST:
        return not pid_alive(int(pid))
    try:
        age = time.time() - (queue_dir(root) / WORKERS_DIR / f"{host}-{pid}.json").stat().st_mtime
    except OSError:
        return True
    return age > WORKER_STALE_SECONDS


def _read_claim(root: str | os.PathLike, entry_id: str) -> dict[str, Any] | None:
    try:
        return json.loads((queue_dir(root) / f"{entry_id}.taken").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _as_seen(root: str | os.PathLike, entry: Entry) -> Entry:
    """The state to show: a running entry whose worker died is failed (computed here, never written)."""
    if entry.state == "running" and entry.worker:
        host, pid = entry.worker.get("host"), entry.worker.get("pid")
        if _process_gone(root, host, pid):
            return replace(entry, state="failed", reason=f"the worker ({host} pid {pid}) died during the run; "
                                                         f"continue it with: cifartui --headless train --resume {entry.run}")
    elif entry.state == "pending":
        claim = _read_claim(root, entry.id)
        if claim and _process_gone(root, claim.get("host"), claim.get("pid")):
            return replace(entry, state="failed", reason=f"the worker ({claim.get('host')} pid {claim.get('pid')}) "
                                                         "died after taking it, before the run started")
    return entry


def list_entries(root: str | os.PathLike) -> list[Entry]:
    """Every entry, oldest first, with the state to show (dead workers' entries read as failed)."""
    return [_as_seen(root, e) for e in _stored_entries(root)]


def find_entry(root: str | os.PathLike, ref: str) -> Entry:
    """An entry by id or unique id prefix."""
    entries = _stored_entries(root)
    matches = [e for e in entries if e.id == ref] or [e for e in entries if ref and e.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UserError(f"queue: {ref!r} matches {len(matches)} entries ({', '.join(e.id for e in matches[:4])}{', ...' if len(matches) > 4 else ''}); give the full id.")
    raise UserError(f"queue: no entry {ref!r} in {str(queue_dir(root))!r}. `cifartui queue --root {root}` lists them.")


def sweep_table(root: str | os.PathLike, sweep_id: str) -> list[dict[str, Any]]:
    """A sweep's entries with their runs' results, best validation accuracy first (not yet scored last)."""
    entries = [e for e in list_entries(root) if e.sweep == sweep_id]
    if not entries:
        sweeps = sorted({e.sweep for e in _stored_entries(root)})
        matches = [s for s in sweeps if sweep_id and s.startswith(sweep_id)]
        if len(matches) == 1:
            return sweep_table(root, matches[0])
        if matches:
            raise UserError(f"queue compare: {sweep_id!r} matches {len(matches)} sweeps ({', '.join(matches[:4])}{', ...' if len(matches) > 4 else ''}); "
                            "give the full id.")
        raise UserError(f"queue compare: no sweep {sweep_id!r} in {str(queue_dir(root))!r}"
                        + (f"; sweeps: {', '.join(sweeps[-8:])}." if sweeps else " (the queue is empty)."))
    rows = []
    for e in entries:
        run = read_run(e.run) if e.run and Path(e.run).is_dir() else None
        rows.append({"entry": e.id, "sweep": e.sweep, "run": run.id if run else None, "path": e.run, "state": e.state,
                     "status": run.status if run else e.state, "best_val_acc": run.best_val_acc if run else None,
                     "test_acc": run.test_acc if run else None, "values": {k: e.overrides.get(k) for k in e.swept}})
    rows.sort(key=lambda r: (r["best_val_acc"] is None, -(r["best_val_acc"] or 0.0), r["entry"]))
    return rows


# -- claiming and changing state ---------------------------------------------------------------------
def take(root: str | os.PathLike, entry_id: str) -> bool:
    """Claim an entry: True for exactly one caller, ever (see the module docstring for why on NFS too)."""
    path = queue_dir(root) / f"{entry_id}.taken"
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump({"host": HOST, "pid": os.getpid(), "time": time.time()}, f)
    return True


def _release(root: str | os.PathLike, entry_id: str) -> None:
    """Give a claim back before the entry changed state (Ctrl-C between taking and training)."""
    (queue_dir(root) / f"{entry_id}.taken").unlink(missing_ok=True)


def _save(root: str | os.PathLike, entry: Entry) -> None:
    atomic_write_text(queue_dir(root) / f"{entry.id}.json", json.dumps(entry.to_dict(), indent=1))


def _finish(root: str | os.PathLike, entry: Entry, state: str, reason: str = "") -> None:
    entry.state, entry.reason, entry.ended = state, reason, time.time()
    _save(root, entry)


def take_next(root: str | os.PathLike) -> Entry | None:
    """Claim the oldest pending entry; None when none is left. Losing a race moves on to the next one."""
    for entry in _stored_entries(root):
        if entry.state == "pending" and take(root, entry.id):
            fresh = _read(queue_dir(root) / f"{entry.id}.json")
            if fresh is not None and fresh.state == "pending":  # we read it before claiming: read it again
                return fresh
    return None


def cancel(root: str | os.PathLike, ref: str) -> Entry:
    """``queue rm``: take the entry's claim (so a worker cannot take it too), then mark it cancelled."""
    entry = _as_seen(root, find_entry(root, ref))
    if entry.state != "pending" or not take(root, entry.id):
        state = entry.state if entry.state != "pending" else "being started by a worker"
        where = f" (run {entry.run})" if entry.run else ""
        raise UserError(f"queue rm {entry.id}: the entry is {state}{where}; only pending entries can be removed."
                        + ("\n  Stop a running one from the app, or with Ctrl-C / kill -TERM of its worker." if entry.state == "running" else ""))
    _finish(root, entry, "cancelled", f"cancelled by {HOST} pid {os.getpid()}")
    return entry


# -- workers -----------------------------------------------------------------------------------------
class _Terminated(BaseException):
    """SIGTERM between runs: leave like Ctrl-C does (a BaseException, so no `except Exception` swallows it)."""


def _raise_terminated(signum, frame):
    raise _Terminated


class _WorkerFile:
    """``<root>/.queue/workers/<host>-<pid>.json`` while the worker lives, touched every minute: how
    :func:`worker_alive` sees workers of any host. A daemon thread touches it, so long runs stay visible."""

    def __init__(self, root: str | os.PathLike):
        self.path = queue_dir(root) / WORKERS_DIR / f"{HOST}-{os.getpid()}.json"
        self.done = threading.Event()

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps({"host": HOST, "pid": os.getpid(), "started": time.time()}))
        threading.Thread(target=self._beat, name="queue-heartbeat", daemon=True).start()
        return self

    def _beat(self) -> None:
        while not self.done.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(self.path)
            except OSError:
                pass

    def __exit__(self, *exc):
        self.done.set()
        self.path.unlink(missing_ok=True)


def worker_alive(root: str | os.PathLike) -> bool:
    """Whether any worker (this host or another sharing the root) is serving this queue."""
    for path in (queue_dir(root) / WORKERS_DIR).glob("*.json"):
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not _process_gone(root, info.get("host"), info.get("pid")):
            return True
    return False


_detached: list[subprocess.Popen] = []


def start_detached_worker(root: str | os.PathLike) -> int:
    """Start ``cifartui queue run --root ROOT`` in a session of its own (it outlives the app and its
    terminal); its output is appended to ``<root>/.queue/worker.log``. Returns its pid."""
    qdir = queue_dir(root)
    qdir.mkdir(parents=True, exist_ok=True)
    _detached[:] = [p for p in _detached if p.poll() is None]  # reap the ones that ended (no zombies)
    with open(qdir / WORKER_LOG, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cifartui", "queue", "run", "--root", str(root)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _detached.append(proc)
    return proc.pid


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"


def _say(text: str) -> None:
    print(f"queue: {text}", flush=True)


def _device_overrides(cfg: Config, devices: list[str] | None) -> dict[str, str]:
    """``--devices`` decides where a worker trains: cpu means cpu; with one GPU visible, cuda:N is that GPU."""
    if devices == ["cpu"]:
        return {"device": "cpu"}
    if devices and cfg.device.startswith("cuda:"):
        return {"device": "cuda"}
    return {}


def _train_entry(root: Path, entry: Entry, devices: list[str] | None) -> int | None:
    """Train one claimed entry and record how it ended. Returns an exit code when the worker must stop."""
    from cifartui import session

    store = None
    try:
        cfg = config_mod.load_text(entry.config, f"queue entry {entry.id}")
        # the queue's own root, whatever path it was added with: runs land beside the queue
        cfg = cfg.with_overrides(**{"output.root": str(root)}, **_device_overrides(cfg, devices))
        store = session.prepare(cfg)  # checks first (torch loads here), then the run folder
    except (KeyboardInterrupt, _Terminated):
        if store is not None and not is_run_dir(store.path):
            shutil.rmtree(store.path, ignore_errors=True)  # only its config: not a run yet
        _release(root, entry.id)
        raise
    except Exception as exc:
        _finish(root, entry, "failed", _describe(exc))
        _say(f"{entry.id} failed: {entry.reason}")
        return None
    entry.state, entry.run, entry.started = "running", str(store.path), time.time()
    entry.worker = {"host": HOST, "pid": os.getpid()}
    _save(root, entry)
    _say(f"{entry.id} -> {store.path}")
    from cifartui.headless import run_headless

    resume = f"continue it with: cifartui --headless train --resume {store.path}"
    try:
        code = run_headless(cfg, store=store)  # 130 / 143 when a signal reached it, however the run ended
    except (KeyboardInterrupt, _Terminated):
        _finish(root, entry, "stopped", f"the worker was interrupted; {resume}")
        raise
    except Exception as exc:
        _finish(root, entry, "failed", _describe(exc))
        _say(f"{entry.id} failed: {entry.reason}")
        return None
    run = read_run(store.path)  # the run's own status first: a stop request may end it "stopped" with exit code 0
    if run.status == "stopped":
        reason = run.reason or "stopped"
        _finish(root, entry, "stopped", reason if "--resume" in reason else f"{reason}; {resume}")
    elif code == 0:
        _finish(root, entry, "done", run.reason)
    else:
        _finish(root, entry, "failed", run.reason or f"training exited with code {code}")
    _say(f"{entry.id} {entry.state}: {entry.reason}")
    return code if code in (EXIT_SIGINT, EXIT_SIGTERM) else None


def run_worker(root: str | os.PathLike, devices: list[str] | None = None) -> int:
    """Train pending entries, oldest first, until none is left (0). Ctrl-C / SIGTERM: the current run stops
    gracefully, its entry reads stopped, the rest stay pending, and the worker exits 130 / 143."""
    root = Path(root)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a dropped SSH link does not end the queue
    signal.signal(signal.SIGTERM, _raise_terminated)
    queue_dir(root).mkdir(parents=True, exist_ok=True)
    with _WorkerFile(root):
        try:
            while (entry := take_next(root)) is not None:
                code = _train_entry(root, entry, devices)
                if code is not None:
                    return code
        except KeyboardInterrupt:
            return EXIT_SIGINT
        except _Terminated:
            return EXIT_SIGTERM
    _say(f"no pending entry left in {queue_dir(root)}")
    return 0


def parse_devices(text: str | None) -> list[str] | None:
    """``cpu`` or GPU numbers ``0,1,2,3``; None: devices as each config says."""
    if text is None:
        return None
    devices = [d.strip() for d in text.split(",")]
    if devices == ["cpu"] or (all(d.isdigit() for d in devices) and len(set(devices)) == len(devices)):
        return devices
    raise UserError(f"queue run --devices {text!r}: give cpu or distinct GPU numbers, e.g. --devices 0,1,2,3")


def run_queue(root: str | os.PathLike, devices: list[str] | None = None) -> int:
    """``queue run``: one worker in this process, or with several GPUs one child worker per GPU."""
    if devices and len(devices) > 1:
        return _run_children(root, devices)
    if devices:  # before torch is imported: CUDA reads it once
        os.environ["CUDA_VISIBLE_DEVICES"] = "" if devices == ["cpu"] else devices[0]
    return run_worker(root, devices)


def _run_children(root: str | os.PathLike, devices: list[str]) -> int:
    """One ``queue run --devices N`` per GPU. They run in sessions of their own so a terminal's Ctrl-C reaches
    them once, forwarded from here (twice would abort their runs instead of stopping them gracefully)."""
    children: list[subprocess.Popen] = []
    signals: list[int] = []

    def forward(signum, frame):
        signals.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    for device in devices:
        if signals:
            break
        children.append(subprocess.Popen(
            [sys.executable, "-m", "cifartui", "queue", "run", "--root", str(root), "--devices", device],
            env={**os.environ, "CUDA_VISIBLE_DEVICES": device}, start_new_session=True))
    codes = [child.wait() for child in children]
    failed = [c for c in codes if c != 0]
    if not failed:
        return 0
    return failed[0] if failed[0] > 0 else 128 - failed[0]  # killed by signal N: 128 + N, as a shell says
