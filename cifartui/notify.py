"""``output.notify``: a shell command run once when a run ends (ntfy, mail, a webhook): a headless or queued
run, or one the app trains (also after its terminal hung up).

Its environment names the run: ``CIFARTUI_RUN`` (the run id), ``CIFARTUI_RUN_DIR`` (its folder),
``CIFARTUI_STATUS`` (completed, early_stopped, stopped, failed), ``CIFARTUI_TEST_ACC`` and
``CIFARTUI_BEST_VAL`` (fractions, e.g. 0.8476; empty when the run has none), ``CIFARTUI_REASON``.
It runs in a session of its own with a time limit (``output.notify_timeout``), after which its whole
process group is killed. Its output and any failure go to the run's ``train.log``; a notify command never
changes how the run ended or the exit code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from cifartui.record.control import append_train_log
from cifartui.record.read_model import RunRecord

OUTPUT_TAIL = 2000  # characters of the command's output kept in train.log


def run_environment(run_dir: str | os.PathLike) -> dict[str, str]:
    """The ``CIFARTUI_*`` variables for a run, from its record (the one read model)."""
    run_dir = Path(run_dir).resolve()
    record = RunRecord.read(run_dir)
    best, test, ended = record.best, record.test, record.ended
    number = lambda v: "" if v is None else repr(float(v))  # noqa: E731 - full precision, parseable
    return {"CIFARTUI_RUN": run_dir.name, "CIFARTUI_RUN_DIR": str(run_dir), "CIFARTUI_STATUS": record.status,
            "CIFARTUI_TEST_ACC": number(test.top1 if test is not None else None),
            "CIFARTUI_BEST_VAL": number(best.best_acc if best is not None else None),
            "CIFARTUI_REASON": ended.reason if ended is not None else ""}


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the shell and whatever it started (curl, sleep, mail)
    except OSError:
        proc.kill()
    proc.wait()


def notify_ended(cfg, store, error: BaseException | None = None) -> str | None:
    """``output.notify`` for a run this process trained (headless, a queue worker, the app), however it ended,
    even when its run_ended could not be written (a full disk); not after ``error`` is a
    :class:`~cifartui.errors.ResumeRefused` (the run is as it was). Returns run_notify's failure line, or None."""
    from cifartui.errors import ResumeRefused

    if store is None or not cfg.output.notify or isinstance(error, ResumeRefused):
        return None
    return run_notify(cfg.output.notify, store.path, cfg.output.notify_timeout)


def run_notify(command: str | None, run_dir: str | os.PathLike, timeout: float = 60.0) -> str | None:
    """Run ``command`` for the ended run in ``run_dir``; returns a line describing a failure (also written to
    train.log), or None when it exited 0. Never raises, except KeyboardInterrupt after killing the command."""
    if not command or not command.strip():
        return None
    try:
        env = {**os.environ, **run_environment(run_dir)}
    except Exception as exc:  # noqa: BLE001 - a damaged run still gets its notification attempt logged
        env = {**os.environ, "CIFARTUI_RUN": Path(run_dir).name, "CIFARTUI_RUN_DIR": str(run_dir), "CIFARTUI_STATUS": "unknown"}
        append_train_log(run_dir, f"notify: could not read the run ({type(exc).__name__}: {exc})")
    started = time.monotonic()
    failure: str | None = None
    # output to a file, not a pipe: a background child holding a pipe open could block us past the limit
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(command, shell=True, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            failure = f"notify: could not start ({exc})"
        else:
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                failure = f"notify: killed after {timeout:g} s (output.notify_timeout)"
            except BaseException:
                _kill_group(proc)
                raise
            else:
                if code != 0:
                    failure = f"notify: exited with code {code}"
        out.seek(0)
        text = out.read()[-OUTPUT_TAIL:].decode("utf-8", "replace").strip()
    took = time.monotonic() - started
    if failure is None:
        append_train_log(run_dir, f"notify: done in {took:.1f} s" + (f"; it said: {text}" if text else ""))
    else:
        append_train_log(run_dir, failure + (f"; it said: {text}" if text else ""))
    return failure
