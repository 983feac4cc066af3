"""What the screens know about one run: a :class:`~cifartui.record.read_model.RunRecord` (the one read model,
with its rules for resumes, the best epoch, evaluations and status) plus what only the app has.

The app adds its own pseudo-events (``APP_*`` below), the phase and error of a run it trains itself, the
log lines it shows, the step history its charts draw and the GPU memory figures the training bridge puts
on ``run_started`` (``gpu_total_mb``) and ``step`` (``gpu_mem_mb``) dicts.

Pure Python + numpy: the same object is fed by the in-process training bridge (``event.to_dict()`` plus
pseudo-events) and by an :class:`~cifartui.record.store.EventFollower` polling a run another process is
writing (JSON objects); each becomes a typed event (``cifartui.record.events``) before it is folded.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from cifartui.record.events import (END_STATUSES, SUCCESS_STATUSES, Checkpoint, EpochEnd, Evaluation, Log, RunEnded,
                                    RunStarted, Step, event_from_dict)
from cifartui.record.read_model import RunRecord

# Pseudo-events the app adds to the stream of a run it trains itself (never written to disk).
APP_STATUS = "app_status"  # {"message": ...}: a phase before the trainer speaks (importing torch ...)
APP_RUN_DIR = "app_run_dir"  # {"path": ...}: the run folder was created
APP_ERROR = "app_error"  # {"message", "traceback", "user_error"}: training raised
APP_DONE = "app_done"  # the worker returned (after run_ended, or after an error)

MAX_LOG = 2000


@dataclass
class Progress:
    epoch: int
    epochs: int
    step: int
    steps: int
    fraction: float  # of the whole run
    eta_seconds: float | None
    images_per_second: float | None


class RunData:
    """A run's :class:`RunRecord` (``record``) and the app's own state: phase, error, log lines, step history."""

    def __init__(self, run_dir: str | Path | None = None):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.record = RunRecord(self.run_dir)
        self.logs: list[dict[str, Any]] = []  # the log lines shown: {"level", "message", "time"}
        self.error: dict[str, Any] | None = None  # the APP_ERROR pseudo-event
        self.phase: str = ""
        self.done = False  # the in-process worker has returned
        self.first_time: float | None = None
        self.gpu_total_mb: float | None = None
        self.gpu_mem_mb: float | None = None
        self.disk_status: str | None = None  # read_run's status, for runs other processes write
        self.version = 0
        self.task: tuple[str, float] | None = None  # a task before training (a download): message, fraction
        self._series: dict[str, StepSeries] = {}

    # -- folding ----------------------------------------------------------------------------------
    def apply_all(self, events: Iterable[dict[str, Any]]) -> bool:
        changed = False
        for e in events:
            self.apply(e)
            changed = True
        return changed

    def apply(self, e: dict[str, Any]) -> None:
        """Fold one JSON object: an event of ``events.jsonl`` (into ``record``) or one of the app's pseudo-events."""
        t = e.get("type")
        self.version += 1
        when = e.get("time")
        if self.first_time is None and isinstance(when, (int, float)) and not str(t).startswith("app_"):
            self.first_time = float(when)
        if t == APP_STATUS:
            self.phase = e.get("message", "")
            self._log("info", self.phase, when)
            return
        if t == APP_RUN_DIR:
            self.run_dir = Path(e["path"])
            self.record.path = self.run_dir
            return
        if t == APP_ERROR:
            self.error = e
            self.phase = ""
            self._log("error", e.get("message", "training failed"), when)
            return
        if t == APP_DONE:
            self.done = True
            self.phase = ""
            return
        ev = event_from_dict(e)
        if ev is None:  # a type this version does not know, or one missing a field
            return
        steps_before = len(self.record.steps)
        self.record.apply(ev)
        if isinstance(ev, Step):
            gpu = e.get("gpu_mem_mb")  # the bridge's extra key: not part of the event
            if gpu is not None:
                self.gpu_mem_mb = gpu
        elif isinstance(ev, EpochEnd):
            self._log("info", f"epoch {ev.epoch}: train loss {_f(ev.train_loss)} acc {_p(ev.train_acc)}, "
                              f"val loss {_f(ev.val_loss)} acc {_p(ev.val_acc)}" + ("  ★ best" if ev.is_best else ""),
                      when)
        elif isinstance(ev, RunStarted):
            if len(self.record.steps) < steps_before:  # the record dropped the steps a resume redoes
                self._series.clear()
            self.phase = ""
            self.task = None
            if e.get("gpu_total_mb"):  # the bridge's extra key
                self.gpu_total_mb = e["gpu_total_mb"]
        elif isinstance(ev, Checkpoint):
            if ev.kind == "last" and ev.step:  # a mid-epoch save: a stop
                self._log("info", f"saved {ev.path} (epoch {ev.epoch}, step {ev.step})", when)
        elif isinstance(ev, Log):
            self._log(ev.level, ev.message, when)
            if isinstance(ev.progress, (int, float)) and self.record.started is None:
                self.task = (str(ev.message), min(1.0, max(0.0, float(ev.progress))))
                self.phase = self.task[0]
        elif isinstance(ev, RunEnded):
            self.phase = ""
            if ev.status == "failed":
                self._log("error", f"run failed: {ev.reason}", when)
            else:
                self._log("info", f"run {ev.status}: {ev.reason}", when)

    def _log(self, level: str, message: str, when: Any) -> None:
        self.logs.append({"level": level, "message": message, "time": when})
        if len(self.logs) > MAX_LOG:
            del self.logs[: len(self.logs) - MAX_LOG]

    # -- the run itself: the record's ---------------------------------------------------------------
    @property
    def started(self) -> RunStarted | None:
        return self.record.started

    @property
    def ended(self) -> RunEnded | None:
        return self.record.ended

    @property
    def epochs(self) -> list[EpochEnd]:
        """One per epoch number, in order (after a resume, the last event of an epoch)."""
        return self.record.epochs

    @property
    def evaluations(self) -> list[Evaluation]:
        return self.record.evaluations

    @property
    def checkpoints(self) -> list[Checkpoint]:
        return self.record.checkpoints

    @property
    def last_step(self) -> Step | None:
        return self.record.last_step

    @property
    def steps(self) -> list[Step]:
        """Every step event, for the charts (the record drops those a resume redoes)."""
        return self.record.steps

    @property
    def class_names(self) -> list[str]:
        return self.record.class_names

    @property
    def best_epoch(self) -> EpochEnd | None:
        return self.record.best

    # -- views ------------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        if self.run_dir is not None:
            return self.run_dir.name
        started = self.record.started
        return (started.run_id if started is not None else "") or "(new run)"

    @property
    def status(self) -> str:
        """The record's status, with what only the app knows: its own training failed (``error``), the store
        found the writer of a followed run dead (``disk_status``), a phase before the first event."""
        record = self.record
        if record.ended is not None:
            return record.status
        if self.error is not None:
            return "failed"
        if self.disk_status is not None and self.disk_status not in ("running", "unknown"):
            return self.disk_status
        if record.status == "running" or self.phase:
            return "running"
        return self.disk_status or "unknown"

    @property
    def running(self) -> bool:
        return self.status == "running"

    def relative_time(self, when: Any) -> str:
        """``+m:ss`` since the run's first event: stable across time zones and reruns."""
        if not isinstance(when, (int, float)) or self.first_time is None:
            return "     "
        s = max(0, int(when - self.first_time))
        return f"+{s // 60:d}:{s % 60:02d}" if s < 6000 else f"+{s // 3600}h{(s % 3600) // 60:02d}"

    def progress(self) -> Progress | None:
        st = self.record.started
        epochs = int(st.epochs or 0) if st is not None else 0
        steps = int(st.steps_per_epoch or 0) if st is not None else 0
        last = self.record.last_step
        done_epochs = self.record.epochs_done
        if last is not None and last.epoch > done_epochs:
            epoch, step, steps = int(last.epoch), int(last.step), int(last.steps or steps)
        elif done_epochs:
            epoch, step = done_epochs, steps
        else:
            epoch, step = 1, 0
        if not epochs:
            return None
        ended = self.record.ended
        if ended is not None and ended.status in SUCCESS_STATUSES:
            fraction = 1.0
        else:
            fraction = min(1.0, ((max(epoch, 1) - 1) + (step / steps if steps else 0.0)) / epochs)
        ips = last.images_per_second if last is not None else None
        epoch_list = self.record.epochs
        if epoch_list and epoch_list[-1].images_per_second:
            ips = ips or epoch_list[-1].images_per_second
        return Progress(epoch=max(epoch, 1 if st is not None else 0), epochs=epochs, step=step, steps=steps,
                        fraction=fraction, eta_seconds=self._eta(epoch_list, epochs, steps, fraction),
                        images_per_second=ips)

    def _eta(self, epoch_list: list[EpochEnd], epochs: int, steps: int, fraction: float) -> float | None:
        """From event times only (no wall clock), so the same events always give the same estimate."""
        if self.record.ended is not None or fraction >= 1.0:
            return None
        remaining_epochs = epochs * (1.0 - fraction)
        if epoch_list:
            secs = [e.epoch_seconds for e in epoch_list[-3:] if e.epoch_seconds]
            if secs:
                return remaining_epochs * sum(secs) / len(secs)
        last = self.record.last_step
        if last is None or not steps:
            return None
        first = None  # the first step of the current epoch: its steps are the newest, read from the end
        for s in reversed(self.steps):
            if s.epoch != last.epoch:
                break
            first = s
        latest = self.steps[-1] if self.steps else None
        if first is None or latest is None or first is latest:
            return None
        dt = latest.time - first.time
        ds = latest.step - first.step
        if dt > 0 and ds > 0:
            return remaining_epochs * steps * dt / ds
        return None

    # -- series for the charts --------------------------------------------------------------------
    def epoch_series(self, key: str) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for e in self.record.epochs:
            v = getattr(e, key, None)
            if isinstance(v, (int, float)) and v == v:
                xs.append(float(e.epoch))
                ys.append(float(v))
        return xs, ys

    def step_series(self, key: str, max_points: int | None = None) -> tuple[list[float], list[float]]:
        """Within-epoch running figures; x in epochs (epoch 2, step 7 of 28 is 1.25).

        Kept per key and extended with the steps that arrived since the last call, so a redraw of a
        100,000-step run costs the new steps plus ``max_points`` buckets, not a pass over every step."""
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = StepSeries(key)
        series.extend(self.steps)
        return series.downsample(max_points) if max_points else (series.xs, series.ys)

    def evaluation_label(self, ev: Evaluation) -> str:
        return f"{ev.split} · epoch {ev.epoch} · top-1 {100 * (ev.top1 or 0):.2f}%"


class StepSeries:
    """One step-level metric as (x, y) lists plus their prefix sums: bucket means in O(buckets)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.xs: list[float] = []
        self.ys: list[float] = []
        self._sum_x = [0.0]
        self._sum_y = [0.0]
        self.consumed = 0  # how many of the run's steps were read

    def extend(self, steps: list[Step]) -> None:
        key, xs, ys, sx, sy = self.key, self.xs, self.ys, self._sum_x, self._sum_y
        for s in steps[self.consumed:]:
            v, n = getattr(s, key, None), s.steps
            if isinstance(v, (int, float)) and v == v and n:
                x = s.epoch - 1 + s.step / n
                xs.append(x)
                ys.append(float(v))
                sx.append(sx[-1] + x)
                sy.append(sy[-1] + v)
        self.consumed = len(steps)

    def downsample(self, max_points: int) -> tuple[list[float], list[float]]:
        return _bucket_means(self.xs, self.ys, self._sum_x, self._sum_y, max_points)


def downsample(xs: list[float], ys: list[float], max_points: int) -> tuple[list[float], list[float]]:
    """At most ``max_points`` points: bucket means keep the shape of a long noisy series."""
    if len(xs) <= max_points or max_points < 2:
        return xs, ys
    return _bucket_means(xs, ys, _prefix(xs), _prefix(ys), max_points)


def _prefix(values: list[float]) -> list[float]:
    return list(itertools.accumulate(values, initial=0.0))


def _bucket_means(xs, ys, sum_x, sum_y, max_points: int) -> tuple[list[float], list[float]]:
    n = len(xs)
    if n <= max_points or max_points < 2:
        return xs, ys
    out_x, out_y = [], []
    for b in range(max_points):
        lo, hi = b * n // max_points, (b + 1) * n // max_points
        if hi > lo:
            out_x.append((sum_x[hi] - sum_x[lo]) / (hi - lo))
            out_y.append((sum_y[hi] - sum_y[lo]) / (hi - lo))
    return out_x, out_y


def _f(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "-"


def _p(v: Any) -> str:
    return f"{100 * v:.2f}%" if isinstance(v, (int, float)) else "-"


def is_end_status(status: str) -> bool:
    return status in END_STATUSES or status == "crashed"
