"""What the screens know about one run, rebuilt from its events (live, followed or finished).

Pure Python + numpy: the same object is fed by the in-process training bridge and by an
:class:`~cifartui.record.store.EventFollower` polling a run another process is writing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from cifartui.record.events import END_STATUSES

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
    """Events folded into the state the screens draw: epochs, steps, evaluations, log, status."""

    def __init__(self, run_dir: str | Path | None = None):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.started: dict[str, Any] | None = None
        self.epochs: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self.evaluations: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.checkpoints: list[dict[str, Any]] = []
        self.ended: dict[str, Any] | None = None
        self.last_step: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
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
        t = e.get("type")
        self.version += 1
        when = e.get("time")
        if self.first_time is None and isinstance(when, (int, float)) and not str(t).startswith("app_"):
            self.first_time = float(when)
        if t == "run_started":
            if self.started is not None and e.get("resumed_from_epoch"):
                # a resume appends to the same events: drop what the resumed epochs will redo
                keep = int(e["resumed_from_epoch"])
                self.epochs = [x for x in self.epochs if x.get("epoch", 0) < keep]
                self.steps = [x for x in self.steps if x.get("epoch", 0) < keep]
                self._series.clear()
            self.started = e
            self.ended = None
            self.phase = ""
            self.task = None
            if e.get("gpu_total_mb"):
                self.gpu_total_mb = e["gpu_total_mb"]
        elif t == "step":
            self.steps.append(e)
            self.last_step = e
            if e.get("gpu_mem_mb") is not None:
                self.gpu_mem_mb = e["gpu_mem_mb"]
        elif t == "epoch":
            self.epochs = [x for x in self.epochs if x.get("epoch") != e.get("epoch")]
            self.epochs.append(e)
            self._log("info", f"epoch {e.get('epoch')}: train loss {_f(e.get('train_loss'))} acc {_p(e.get('train_acc'))}, "
                              f"val loss {_f(e.get('val_loss'))} acc {_p(e.get('val_acc'))}"
                              + ("  ★ best" if e.get("is_best") else ""), when)
        elif t == "evaluation":
            if e.get("file"):
                self.evaluations = [x for x in self.evaluations if x.get("file") != e["file"]]
                self.evaluations.append(e)
        elif t == "checkpoint":
            self.checkpoints.append(e)
            if e.get("kind") == "last" and e.get("step"):  # a mid-epoch save: a stop
                self._log("info", f"saved {e.get('path')} (epoch {e.get('epoch')}, step {e.get('step')})", when)
        elif t == "log":
            self._log(e.get("level", "info"), e.get("message", ""), when)
            if isinstance(e.get("progress"), (int, float)) and self.started is None:
                self.task = (str(e.get("message", "")), min(1.0, max(0.0, float(e["progress"]))))
                self.phase = self.task[0]
        elif t == "run_ended":
            self.ended = e
            self.phase = ""
            if e.get("status") == "failed":
                self._log("error", f"run failed: {e.get('reason', '')}", when)
            else:
                self._log("info", f"run {e.get('status')}: {e.get('reason', '')}", when)
        elif t == APP_STATUS:
            self.phase = e.get("message", "")
            self._log("info", self.phase, when)
        elif t == APP_RUN_DIR:
            self.run_dir = Path(e["path"])
        elif t == APP_ERROR:
            self.error = e
            self.phase = ""
            self._log("error", e.get("message", "training failed"), when)
        elif t == APP_DONE:
            self.done = True
            self.phase = ""

    def _log(self, level: str, message: str, when: Any) -> None:
        self.logs.append({"level": level, "message": message, "time": when})
        if len(self.logs) > MAX_LOG:
            del self.logs[: len(self.logs) - MAX_LOG]

    # -- views ------------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        if self.run_dir is not None:
            return self.run_dir.name
        return (self.started or {}).get("run_id") or "(new run)"

    @property
    def status(self) -> str:
        if self.ended is not None:
            return str(self.ended.get("status", "unknown"))
        if self.error is not None:
            return "failed"
        if self.disk_status is not None and self.disk_status not in ("running", "unknown"):
            return self.disk_status
        if self.started is not None or self.phase:
            return "running"
        return self.disk_status or "unknown"

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def class_names(self) -> list[str]:
        return list((self.started or {}).get("class_names") or [])

    @property
    def best_epoch(self) -> dict[str, Any] | None:
        if not self.epochs:
            return None
        return max(self.epochs, key=lambda e: (e.get("val_acc", 0.0), -e.get("epoch", 0)))

    def relative_time(self, when: Any) -> str:
        """``+m:ss`` since the run's first event: stable across time zones and reruns."""
        if not isinstance(when, (int, float)) or self.first_time is None:
            return "     "
        s = max(0, int(when - self.first_time))
        return f"+{s // 60:d}:{s % 60:02d}" if s < 6000 else f"+{s // 3600}h{(s % 3600) // 60:02d}"

    def progress(self) -> Progress | None:
        st = self.started or {}
        epochs = int(st.get("epochs") or 0)
        steps = int(st.get("steps_per_epoch") or 0)
        last = self.last_step
        done_epochs = max((e.get("epoch", 0) for e in self.epochs), default=0)
        if last is not None and last.get("epoch", 0) > done_epochs:
            epoch, step, steps = int(last["epoch"]), int(last["step"]), int(last["steps"] or steps)
        elif done_epochs:
            epoch, step = done_epochs, steps
        else:
            epoch, step = 1, 0
        if not epochs:
            return None
        if self.ended is not None and self.ended.get("status") in ("completed", "early_stopped"):
            fraction = 1.0
        else:
            fraction = min(1.0, ((max(epoch, 1) - 1) + (step / steps if steps else 0.0)) / epochs)
        ips = last.get("images_per_second") if last is not None else None
        if self.epochs and self.epochs[-1].get("images_per_second"):
            ips = ips or self.epochs[-1]["images_per_second"]
        return Progress(epoch=max(epoch, 1 if self.started else 0), epochs=epochs, step=step, steps=steps,
                        fraction=fraction, eta_seconds=self._eta(epochs, steps, fraction), images_per_second=ips)

    def _eta(self, epochs: int, steps: int, fraction: float) -> float | None:
        """From event times only (no wall clock), so the same events always give the same estimate."""
        if self.ended is not None or fraction >= 1.0:
            return None
        remaining_epochs = epochs * (1.0 - fraction)
        if self.epochs:
            secs = [e.get("epoch_seconds") for e in self.epochs[-3:] if e.get("epoch_seconds")]
            if secs:
                return remaining_epochs * sum(secs) / len(secs)
        cur = [s for s in self.steps if self.last_step and s.get("epoch") == self.last_step.get("epoch")]
        if len(cur) >= 2 and steps:
            dt = cur[-1]["time"] - cur[0]["time"]
            ds = cur[-1]["step"] - cur[0]["step"]
            if dt > 0 and ds > 0:
                return remaining_epochs * steps * dt / ds
        return None

    # -- series for the charts --------------------------------------------------------------------
    def epoch_series(self, key: str) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for e in sorted(self.epochs, key=lambda e: e.get("epoch", 0)):
            v = e.get(key)
            if isinstance(v, (int, float)) and v == v:
                xs.append(float(e["epoch"]))
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

    def evaluation_label(self, ev: dict[str, Any]) -> str:
        return f"{ev.get('split')} · epoch {ev.get('epoch')} · top-1 {100 * (ev.get('top1') or 0):.2f}%"


class StepSeries:
    """One step-level metric as (x, y) lists plus their prefix sums: bucket means in O(buckets)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.xs: list[float] = []
        self.ys: list[float] = []
        self._sum_x = [0.0]
        self._sum_y = [0.0]
        self.consumed = 0  # how many of the run's steps were read

    def extend(self, steps: list[dict[str, Any]]) -> None:
        key, xs, ys, sx, sy = self.key, self.xs, self.ys, self._sum_x, self._sum_y
        for s in steps[self.consumed:]:
            v, n = s.get(key), s.get("steps") or 0
            if isinstance(v, (int, float)) and v == v and n:
                x = s["epoch"] - 1 + s["step"] / n
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
