"""A stand-in for the ``pynvml`` module (nvidia-ml-py) with GPUs whose figures a test sets.

A mock because this machine has no NVIDIA driver, so the real NVML cannot answer here; it implements only
the calls :mod:`cifartui.gpustats` makes, with NVML's units (bytes, milliwatts) and its ``GPU-`` UUIDs.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field


class NVMLError(Exception):
    pass


@dataclass
class FakeGpu:
    name: str = "NVIDIA H200"
    uuid: str = "GPU-0aa1b2c3-0000-0000-0000-000000000001"
    util: int = 97
    used_mb: float = 10240.0
    total_mb: float = 81920.0
    temperature: int = 61
    power_w: float | None = 250.0  # None: the board does not report power (NVMLError_NotSupported)
    pids: list[int] = field(default_factory=list)


def fake_pynvml(gpus: list[FakeGpu], driver: bool = True) -> types.ModuleType:
    """The module; ``driver=False``: nvmlInit fails as it does on a machine without the NVIDIA driver."""
    m = types.ModuleType("pynvml")
    m.NVMLError = NVMLError
    m.NVML_TEMPERATURE_GPU = 0
    m.init_calls = 0

    def init():
        m.init_calls += 1
        if not driver:
            raise NVMLError("NVML Shared Library Not Found")

    def power(gpu):
        if gpu.power_w is None:
            raise NVMLError("Not Supported")
        return int(gpu.power_w * 1000)

    m.nvmlInit = init
    m.nvmlShutdown = lambda: None
    m.nvmlDeviceGetCount = lambda: len(gpus)
    m.nvmlDeviceGetHandleByIndex = lambda i: gpus[i]
    m.nvmlDeviceGetUUID = lambda g: g.uuid
    m.nvmlDeviceGetName = lambda g: g.name
    m.nvmlDeviceGetUtilizationRates = lambda g: types.SimpleNamespace(gpu=g.util, memory=0)
    m.nvmlDeviceGetMemoryInfo = lambda g: types.SimpleNamespace(used=int(g.used_mb * 2**20), total=int(g.total_mb * 2**20),
                                                               free=int((g.total_mb - g.used_mb) * 2**20))
    m.nvmlDeviceGetTemperature = lambda g, sensor: g.temperature
    m.nvmlDeviceGetPowerUsage = power
    m.nvmlDeviceGetComputeRunningProcesses = lambda g: [types.SimpleNamespace(pid=p, usedGpuMemory=0) for p in g.pids]
    return m
