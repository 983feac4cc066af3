"""The dashboard's GPU figures: NVML read off the UI thread for the run in view, and the "input-bound?" hint.

Only for a run on this host that uses CUDA (trained here, or followed: the same devices either way). NVML is
opened once, on first use, on the worker thread that polls; when it cannot be (no driver, no package) the
watch stays quiet for good: no panel, no error.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from dataclasses import dataclass

from cifartui.gpustats import GpuReading, Nvml, run_gpus
from cifartui.record.events import RunStarted

HINT_WINDOW = 20.0  # seconds of training the utilisation is averaged over before any hint
HINT_BELOW = 50.0  # % busy: under this, the GPU mostly waits (for data, or for the host)


@dataclass
class GpuView:
    readings: list[GpuReading]
    hint: str = ""


class GpuWatch:
    def __init__(self, window: float = HINT_WINDOW, below: float = HINT_BELOW):
        self.window, self.below = window, below
        self._nvml: Nvml | None = None
        self._tried = False
        self._run: tuple | None = None
        self._indices: list[int] = []
        self._history: deque[tuple[float, float]] = deque()  # (monotonic time, mean utilisation of the run's GPUs)

    def poll(self, started: RunStarted | None, training: bool, now: float | None = None) -> GpuView | None:
        """Read the run's GPUs (blocking NVML calls: call it on a worker thread). None: nothing to show."""
        if started is None or started.host != socket.gethostname():
            return None  # another host's GPUs are out of NVML's reach
        uuids, cuda = run_gpus(started)
        if not cuda:
            return None
        if not self._tried:
            self._tried = True
            self._nvml = Nvml.open()
        if self._nvml is None:
            return None
        run = (started.run_id, started.pid, tuple(uuids))
        if run != self._run:
            self._run, self._history = run, deque()
            self._indices = self._nvml.indices_for(uuids, started.pid, cuda)
        if not self._indices:
            return None
        readings = self._nvml.read_all(self._indices)
        return GpuView(readings, self._hint(readings, training, time.monotonic() if now is None else now))

    def _hint(self, readings: list[GpuReading], training: bool, now: float) -> str:
        utils = [r.util for r in readings if r.util is not None]
        if not training or not utils:
            self._history.clear()  # evaluation, set-up, a stop: low utilisation then says nothing
            return ""
        self._history.append((now, sum(utils) / len(utils)))
        while self._history and now - self._history[0][0] > self.window:
            self._history.popleft()
        covered = now - self._history[0][0]
        mean = sum(u for _, u in self._history) / len(self._history)
        if covered < self.window * 0.75 or mean >= self.below:
            return ""
        return (f"input-bound? GPU busy only {mean:.0f}% over the last {covered:.0f} s of training: "
                "data loading or host syncs may starve it")
