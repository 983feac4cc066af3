"""Runs outlive the terminal: what happens to a run the app trains when the app goes away.

- **The terminal hangs up** (an SSH link drops, a laptop lid closes, tmux kills the pane): the kernel sends
  SIGHUP and the tty stops taking writes. :class:`HangupGuard` points standard input, output and error at
  /dev/null at once (nothing is printed to, or blocks on, the dead terminal), quits the UI and leaves the
  training thread alone: the run trains on, in this same process, to its end; its output goes to the run's
  ``train.log``; then the process exits. Nothing is trained twice: the thread never stopped.
- **The user quits with ``b``** (keep training in the background): the UI quits at once; :func:`after_exit`
  lets the training thread finish its current step and save ``last.pt`` (exact resume state: weights,
  optimizer, schedule, RNG, position in the epoch), then starts ``cifartui --headless train --resume RUN``
  as a detached process (its own session, no terminal) and returns to the shell. The resumed run continues
  from that very step, so its final weights equal an uninterrupted run's (bit-exact on the CPU).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cifartui.record.control import TRAIN_LOG, append_train_log

if TYPE_CHECKING:
    from cifartui.tui.app import CifarApp, LiveTraining


def detach_stdio() -> None:
    """Standard input, output and error to /dev/null: writes to a hung-up tty fail (EIO), reads spin on EOF."""
    try:
        fd = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    for target in (0, 1, 2):
        try:
            os.dup2(fd, target)
        except OSError:
            pass
    os.close(fd)


class HangupGuard:
    """Install a SIGHUP handler for the app's whole life, including the wait after its UI has quit."""

    def __init__(self, app: CifarApp):
        self.app = app
        self.hung_up = False
        self._old = None

    def __enter__(self) -> HangupGuard:
        if hasattr(signal, "SIGHUP"):
            self._old = signal.signal(signal.SIGHUP, self._on_hangup)
        return self

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGHUP, self._old)

    def _on_hangup(self, signum, frame) -> None:
        if self.hung_up:
            return
        self.hung_up = True
        detach_stdio()
        app = self.app
        live = app.live
        if live is not None and live.run_dir is not None and not live.finished:
            append_train_log(live.run_dir, "the terminal hung up (SIGHUP): training goes on without the app\n")
        if app.loop is not None and app.is_running:
            app.loop.call_soon_threadsafe(app.terminal_hung_up)  # the handler runs outside the event loop
        elif app.leaving is None:
            app.leaving = "hangup"


def after_exit(app: CifarApp, code: int) -> int:
    """The UI has quit. A run still training goes on (hang-up) or is handed off (``b``); returns the exit code."""
    live = app.live
    if live is None or live.thread is None:
        return code
    if app.leaving == "background":
        return hand_off(live)
    if live.thread.is_alive():  # the terminal hung up: train on here, stop gracefully on SIGTERM / SIGINT
        def stop(signum, frame):
            live.stop.request(f"stopped by {signal.Signals(signum).name}; resume with --resume")

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        live.thread.join()
    return code


def hand_off(live: LiveTraining) -> int:
    """Wait for the training thread to stop after its step (last.pt saved), then resume in a detached process."""
    say("finishing the current step and saving last.pt, then handing the run to a background process ...")
    live.thread.join()
    run_dir = live.run_dir
    if run_dir is None:
        say("the run had not started (no run folder yet): nothing to hand off; start it again with s")
        return 1
    from cifartui.record.store import read_run  # here, not at the top: the app's first frame does without it

    status = read_run(run_dir).status
    if status != "stopped" or not (run_dir / "last.pt").exists():
        say(f"{run_dir.name} ended {status} before the hand-off: nothing left to train")
        return 0
    pid = spawn_resume(run_dir, live.cfg.to_yaml())
    say(f"{run_dir.name} trains on in the background (pid {pid}); output: {run_dir / TRAIN_LOG}\n"
        f"  reattach: cifartui --root {run_dir.parent}   stop: x there, or kill -INT {pid}")
    return 0


def spawn_resume(run_dir: Path, cfg_yaml: str) -> int:
    """``cifartui --headless train --resume RUN`` in a new session (no terminal, survives this one's hang-up)."""
    from cifartui.record.store import CONFIG_FILE

    args = [sys.executable, "-m", "cifartui", "--headless", "train", "--resume", str(run_dir)]
    if cfg_yaml != _read(run_dir / CONFIG_FILE):  # an app resume may change epochs: keep what this run trained with
        handoff = run_dir / "handoff.yaml"
        handoff.write_text(cfg_yaml, encoding="utf-8")
        args.insert(-2, str(handoff))
    with open(run_dir / TRAIN_LOG, "a", encoding="utf-8") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True, close_fds=True)
    return proc.pid


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def say(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:  # the terminal is gone
        pass
