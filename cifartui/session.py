"""Start or resume a run: the one place that wires a config, a run store and the trainer together.

Both front ends (headless CLI and the TUI) call :func:`create_run` / :func:`open_run_for_resume`
and then :func:`train`; neither trains by itself.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Iterable

from cifartui import config as config_mod
from cifartui.config import Config
from cifartui.record.events import Event, RunEnded
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
    store.write_config(cfg.to_yaml())
    return store


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
    all_sinks = ([store, run_log] if store is not None else []) + list(sinks)
    trainer = Trainer(cfg, run_dir, all_sinks, stop=stop, run_id=store.id if store else "", resume=resume_dir is not None)
    try:
        return trainer.run()
    finally:
        if store is not None:
            store.close()
            run_log.finish()
