"""GPU figures from NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``): utilisation, memory,
temperature and power of the GPUs a run uses, for the dashboard's GPU panel and the peaks a run records.

Without NVML (no NVIDIA driver, a CPU machine, a Mac) :meth:`Nvml.open` is None and callers show and record
nothing: never an error. Torch-free: the app reads these figures for runs other processes train.

The devices of a run come from its ``run_started`` environment (``gpus``: NVML UUIDs, see
:mod:`cifartui.core.environment`); a run written before that is matched by its pid among each GPU's
compute processes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from cifartui.record.events import Event, RunEnded, RunStarted


@dataclass
class GpuReading:
    index: int  # NVML's (PCI order): may differ from torch's cuda:N
    name: str
    uuid: str
    util: float | None  # % of the last sample period a kernel ran
    memory_used_mb: float | None
    memory_total_mb: float | None
    temperature_c: float | None
    power_w: float | None


def _text(value: Any) -> str:
    """An NVML string: older pynvml builds return bytes."""
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _norm(uuid: Any) -> str:
    text = _text(uuid).strip().lower()
    return text[4:] if text.startswith("gpu-") else text


class Nvml:
    """One NVML session. Every figure a device cannot give (power on some boards) reads as None."""

    def __init__(self, nvml: Any):
        self.nvml = nvml
        self.count = int(nvml.nvmlDeviceGetCount())

    @classmethod
    def open(cls) -> "Nvml | None":
        try:
            import pynvml

            pynvml.nvmlInit()
            return cls(pynvml)
        except Exception:  # noqa: BLE001 - no package, no driver, no GPU: no panel, no error
            return None

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass

    def _call(self, fn: str, *args: Any) -> Any:
        try:
            return getattr(self.nvml, fn)(*args)
        except Exception:  # noqa: BLE001 - NVMLError_NotSupported and friends
            return None

    def indices_for(self, uuids: list[str] = (), pid: int | None = None, cuda: bool = False) -> list[int]:
        """NVML indices of a run's GPUs: by UUID; else by the run's pid among the compute processes; else the
        only GPU of a one-GPU machine when the run uses CUDA."""
        wanted = [_norm(u) for u in uuids if u]
        found: list[int] = []
        for index in range(self.count):
            handle = self._call("nvmlDeviceGetHandleByIndex", index)
            if handle is None:
                continue
            if wanted:
                if _norm(self._call("nvmlDeviceGetUUID", handle)) in wanted:
                    found.append(index)
            elif pid is not None:
                processes = self._call("nvmlDeviceGetComputeRunningProcesses", handle) or []
                if any(getattr(p, "pid", None) == pid for p in processes):
                    found.append(index)
        if not found and not wanted and cuda and self.count == 1:
            found = [0]
        return found

    def read(self, index: int) -> GpuReading | None:
        handle = self._call("nvmlDeviceGetHandleByIndex", index)
        if handle is None:
            return None
        name = self._call("nvmlDeviceGetName", handle)
        util = self._call("nvmlDeviceGetUtilizationRates", handle)
        memory = self._call("nvmlDeviceGetMemoryInfo", handle)
        temperature = self._call("nvmlDeviceGetTemperature", handle, getattr(self.nvml, "NVML_TEMPERATURE_GPU", 0))
        power = self._call("nvmlDeviceGetPowerUsage", handle)  # milliwatts
        return GpuReading(
            index=index, name=_text(name) or f"GPU {index}", uuid=_text(self._call("nvmlDeviceGetUUID", handle)),
            util=float(util.gpu) if util is not None else None,
            memory_used_mb=memory.used / 2**20 if memory is not None else None,
            memory_total_mb=memory.total / 2**20 if memory is not None else None,
            temperature_c=float(temperature) if temperature is not None else None,
            power_w=power / 1000.0 if power is not None else None)

    def read_all(self, indices: list[int]) -> list[GpuReading]:
        return [r for r in (self.read(i) for i in indices) if r is not None]


def run_gpus(started: RunStarted | None) -> tuple[list[str], bool]:
    """(UUIDs recorded at the start, whether the run uses CUDA) of a run."""
    if started is None:
        return [], False
    gpus = (started.environment or {}).get("gpus")
    gpus = gpus if isinstance(gpus, list) else []  # a hand-edited or damaged event: no UUIDs, not an error
    uuids = [str(g.get("uuid")) for g in gpus if isinstance(g, dict) and g.get("uuid")]
    return uuids, str(started.device).startswith("cuda")


class Peaks:
    """Peak (and mean utilisation) figures per GPU over a run: what ``run_ended.gpu_peak`` records."""

    def __init__(self) -> None:
        self.by_uuid: dict[str, dict[str, Any]] = {}
        self.samples = 0
        self.first: float | None = None
        self.last: float | None = None

    def add(self, readings: list[GpuReading], when: float | None = None) -> None:
        when = time.time() if when is None else when
        self.first = self.first if self.first is not None else when
        self.last = when
        self.samples += 1
        for r in readings:
            peak = self.by_uuid.setdefault(r.uuid or str(r.index), {"index": r.index, "name": r.name, "uuid": r.uuid,
                                                                   "memory_total_mb": r.memory_total_mb, "_util_sum": 0.0,
                                                                   "_util_n": 0})
            for key, value in (("util_max", r.util), ("memory_used_max_mb", r.memory_used_mb),
                               ("temperature_max_c", r.temperature_c), ("power_max_w", r.power_w)):
                if value is not None:
                    peak[key] = max(peak.get(key, value), value)
            if r.util is not None:
                peak["_util_sum"] += r.util
                peak["_util_n"] += 1

    def to_dict(self) -> dict[str, Any] | None:
        if not self.by_uuid:
            return None
        gpus = []
        for peak in self.by_uuid.values():
            row = {k: v for k, v in peak.items() if not k.startswith("_")}
            if peak["_util_n"]:
                row["util_mean"] = round(peak["_util_sum"] / peak["_util_n"], 1)
            gpus.append({k: (round(v, 1) if isinstance(v, float) else v) for k, v in row.items()})
        return {"gpus": gpus, "samples": self.samples,
                "seconds": round((self.last or 0) - (self.first or 0), 1)}


class GpuPeakRecorder:
    """An event sink, placed before the store: from ``run_started`` (a CUDA run, NVML present) it samples the
    run's GPUs every ``interval`` seconds on a daemon thread; at ``run_ended`` it stops and puts the peaks on
    that very event (``gpu_peak``) before the store writes it. Never raises into the trainer."""

    def __init__(self, interval: float = 2.0):
        self.interval = interval
        self.peaks = Peaks()
        self._nvml: Nvml | None = None
        self._indices: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        try:
            if isinstance(event, RunStarted):
                self._start(event)
            elif isinstance(event, RunEnded):
                self.close()
                event.gpu_peak = self.peaks.to_dict()
        except Exception:  # noqa: BLE001 - figures about the run must never end it
            pass

    def _start(self, event: RunStarted) -> None:
        uuids, cuda = run_gpus(event)
        if not cuda or self._thread is not None:
            return
        self._nvml = Nvml.open()
        if self._nvml is None:
            return
        self._indices = self._nvml.indices_for(uuids, event.pid, cuda)
        if not self._indices:
            return
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="gpu-peaks", daemon=True)
        self._thread.start()

    def sample(self) -> None:
        if self._nvml is None:
            return
        readings = self._nvml.read_all(self._indices)
        with self._lock:
            self.peaks.add(readings)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # noqa: BLE001
                pass

    def close(self) -> None:
        """Stop sampling (the end of the run, or the session's clean-up when the trainer never ended)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
            self.sample()  # one last reading: a peak at the very end counts
        if self._nvml is not None:
            self._nvml.close()
            self._nvml = None
