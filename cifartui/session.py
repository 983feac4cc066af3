"""The one run lifecycle: :func:`prepare` (check, then make or reopen the run folder) and :func:`train`.

Every front end calls these two and nothing else to train: the headless CLI (``run_headless``), the app's
training thread, the queue worker. None makes a run folder or checks a config its own way.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Iterable

from cifartui import config as config_mod
from cifartui.config import Config
from cifartui.errors import UserError
from cifartui.gpustats import GpuPeakRecorder
from cifartui.record.events import Event, RunEnded, RunStarted
from cifartui.record.control import WriterLock
from cifartui.record.store import RunStore

Sink = Callable[[Event], None]


def _is_main_rank() -> bool:
    import os

    return int(os.environ.get("RANK", "0")) == 0


def create_run(cfg: Config) -> RunStore | None:
    """A new run folder with the resolved config saved in it (rank 0 only; other ranks get None)."""
    if not _is_main_rank():
        return None
    store = RunStore.create(cfg.output.root, cfg.name)
    store.lock = WriterLock.acquire(store.path, "train")  # new and unknown to others: this never waits
    store.write_config(cfg.to_yaml())
    return store


def prepare(cfg: Config, resume_dir: str | Path | None = None) -> RunStore | None:
    """Everything before the first step: checks that can refuse the run (a UserError, exit 2, with nothing
    written), then the new run folder, or the resumed one reopened. Under torchrun ranks other than 0 write
    nothing and get None."""
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        if not _is_main_rank():  # rank 0 holds the lock and writes; the others only read last.pt
            return None
        # one writer per run: the lock before anything in the folder changes, then every check that can refuse
        lock = WriterLock.acquire(run_dir, "--resume")
        try:
            if not (run_dir / "last.pt").exists():
                raise UserError(f"--resume: {run_dir} has no last.pt (it ended before its first save); start a new run instead.")
            config_mod.check_resume(config_mod.load(run_dir / "config.yaml"), cfg)
            store = RunStore.open(run_dir)  # ends a torn line, removes a dead writer's temp files
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        store.lock = lock
        return store
    from cifartui.preflight import preflight  # torch and timm load here

    preflight(cfg)
    return create_run(cfg)


def resume_config(run_dir: str | Path, overrides: Iterable[str] = (), cfg_path: str | None = None) -> Config:
    """The run's own config (or ``cfg_path``), with overrides: what a resume trains with."""
    if cfg_path:
        return config_mod.load(cfg_path, list(overrides))
    cfg = config_mod.load(Path(run_dir) / "config.yaml", list(overrides))
    return cfg


def train(cfg: Config, store: RunStore | None, sinks: Iterable[Sink] = (), stop: threading.Event | None = None,
          resume_dir: str | Path | None = None) -> RunEnded:
    """Run the trainer with the store as the first sink. Raises what the trainer raised, after the
    store has recorded a ``run_ended`` event."""
    from cifartui.core.engine import Trainer  # torch is imported here, not at start-up

    from cifartui.headless import RunLog
    from cifartui.record.control import clear_stop_request

    run_dir = store.path if store is not None else (Path(resume_dir) if resume_dir else None)
    run_log = RunLog(store.path) if store is not None else None
    if store is not None and resume_dir is not None:
        clear_stop_request(store.path)  # a request was for the writer that ran then, not for this resume
    environment_files, gpu_peaks = _environment_files(store, resume_dir), GpuPeakRecorder()
    # These two first: they complete run_started (the files) and run_ended (the GPU peaks) before the store
    # writes them.
    all_sinks = ([environment_files, gpu_peaks, store, run_log] if store is not None else []) + list(sinks)
    trainer = Trainer(cfg, run_dir, all_sinks, stop=stop, run_id=store.id if store else "", resume=resume_dir is not None,
                      environment=environment_files.snapshot.environment if store is not None else None)
    try:
        return trainer.run()
    finally:
        gpu_peaks.close()
        if store is not None:
            store.close()
            run_log.finish()


class _EnvironmentFiles:
    """A sink that writes env.txt and git.diff when the run starts (rank 0 only), and names them in that
    run_started event; or, for a run that fails in set-up before it starts, with its run_ended. Not before:
    a resume refused at set-up (another config, a damaged last.pt) records neither, and leaves the folder as
    it found it."""

    def __init__(self, snapshot, run_dir: Path, resumed_at: int | None):
        self.snapshot, self.run_dir, self.resumed_at = snapshot, run_dir, resumed_at

    def __call__(self, event: Event) -> None:
        if not isinstance(event, (RunStarted, RunEnded)) or self.run_dir is None:
            return
        try:
            self.snapshot.write(self.run_dir, resumed_from=self.resumed_at)
        except OSError as exc:  # the events' own write names a full disk and ends the run; this says what is missing
            self.snapshot.environment["files_error"] = f"{type(exc).__name__}: {exc}"
        if isinstance(event, RunStarted):
            for key in ("files", "files_error"):
                if key in self.snapshot.environment:
                    event.environment[key] = self.snapshot.environment[key]
        self.run_dir = None  # once: the first of the two this process emits


def _environment_files(store: RunStore | None, resume_dir: str | Path | None) -> _EnvironmentFiles | None:
    """What made the run (rank 0 only: it writes): taken now, its files written when the run starts."""
    if store is None:
        return None
    from cifartui import environment

    try:
        snapshot = environment.take()
    except Exception as exc:  # noqa: BLE001 - a broken package's metadata must not stop the run it describes
        snapshot = environment.Snapshot({"error": f"{type(exc).__name__}: {exc}"})
    # the epoch a resume starts at names its own files (the first start's stay)
    resumed_at = store.record.epochs_done + 1 if resume_dir is not None else None
    return _EnvironmentFiles(snapshot, store.path, resumed_at)
