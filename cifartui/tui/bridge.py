"""From the training thread to the UI thread.

The trainer calls :class:`TrainingBridge` (an event sink) on its own thread. Each event is turned into
a dict and appended to an ordered buffer. Step events only wait there: the app's heartbeat drains the
buffer once a second (``CifarApp.pump_live``). Every other event (an epoch, an evaluation, a log
line, the end of the run) also wakes the UI with one :class:`EventsReady` message (``post_message`` is
thread-safe), at most one pending at a time. So a fast trainer never wakes the UI thread per step (each
wake-up takes a core from training on a busy CPU), nothing is lost, events stay in order, no backlog
builds in the message queue, and the trainer never waits for the UI.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable

from textual.message import Message

from cifartui.record.events import Event, RunStarted, Step

QUIET = frozenset({"step"})  # events that wait for the UI's heartbeat instead of waking it


class EventsReady(Message):
    """New events of a run trained in this process wait in ``bridge``."""

    def __init__(self, bridge: "TrainingBridge") -> None:
        super().__init__()
        self.bridge = bridge

    def can_replace(self, message: Message) -> bool:
        # Several wake-ups in a row for the same bridge are one drain.
        return isinstance(message, EventsReady) and message.bridge is self.bridge


class TrainingBridge:
    """Event sink for :func:`cifartui.session.train`, safe to call from any thread."""

    def __init__(self, post: Callable[[Message], Any]):
        self._post = post
        self._lock = threading.Lock()
        self._buffer: deque[dict[str, Any]] = deque()
        self._pending = False
        self.posted = 0  # wake-ups sent (for tests and the throughput note)
        self.received = 0

    def __call__(self, event: Event) -> None:
        data = event.to_dict()
        if isinstance(event, RunStarted) and event.device.startswith("cuda"):
            data["gpu_total_mb"] = _gpu_total_mb(event.device)
        elif isinstance(event, Step) and self._cuda:
            data["gpu_mem_mb"] = _gpu_used_mb(self._cuda)
        self.push(data)

    _cuda: str | None = None

    closed = False

    def close(self) -> None:
        """The app is gone (hang-up, hand-off): drop what comes, so a long run does not fill memory."""
        with self._lock:
            self.closed = True
            self._buffer.clear()

    def push(self, data: dict[str, Any]) -> None:
        if self.closed:
            return
        if data.get("type") == "run_started" and str(data.get("device", "")).startswith("cuda"):
            self._cuda = data["device"]
        data.setdefault("time", time.time())
        with self._lock:
            self._buffer.append(data)
            self.received += 1
            if self._pending or data.get("type") in QUIET:
                return
            self._pending = True
            self.posted += 1
        self._post(EventsReady(self))

    def __len__(self) -> int:
        return len(self._buffer)

    def drain(self) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._buffer)
            self._buffer.clear()
            self._pending = False
        return items


def _gpu_total_mb(device: str) -> float | None:
    try:  # torch is already imported on the training thread when this runs
        import torch

        return torch.cuda.get_device_properties(torch.device(device)).total_memory / 2**20
    except Exception:
        return None


def _gpu_used_mb(device: str) -> float | None:
    try:
        import torch

        return torch.cuda.memory_allocated(torch.device(device)) / 2**20  # no device sync
    except Exception:
        return None
