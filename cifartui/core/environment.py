"""What only torch knows about where a run trains: CUDA and cuDNN versions, and the GPUs the run uses.

Added by the trainer to the torch-free environment (:mod:`cifartui.environment`) in ``run_started``.
Each GPU carries its NVML UUID so that the app can find the very same device through NVML (whose indices
follow PCI order and ignore ``CUDA_VISIBLE_DEVICES``, unlike torch's).
"""

from __future__ import annotations

from typing import Any

import torch


def _uuid(props: Any) -> str | None:
    try:
        uuid = str(props.uuid)
    except Exception:  # noqa: BLE001 - older builds without the field, or a driver that does not say
        return None
    return uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"  # NVML's spelling


def torch_environment(device: torch.device, local_processes: int = 1) -> dict[str, Any]:
    """``torch_build``; for a CUDA run also ``cuda``, ``cudnn`` and ``gpus`` (name, index, uuid, memory): the device
    of this process and, under torchrun, those of the other processes on this node (one GPU each, ``cuda:LOCAL_RANK``)."""
    build = {"torch_build": torch.__version__}  # the wheel's local tag (2.14.1+cu130) that package metadata drops
    if device.type != "cuda":
        return build
    env: dict[str, Any] = {**build, "cuda": torch.version.cuda, "cudnn": None, "gpus": []}
    try:
        env["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:  # noqa: BLE001 - a broken cuDNN install is not the run's concern here
        pass
    first = device.index or 0
    indices = range(local_processes) if local_processes > 1 else [first]
    for index in indices:
        if index >= torch.cuda.device_count():
            continue
        props = torch.cuda.get_device_properties(index)
        env["gpus"].append({"index": index, "name": props.name, "uuid": _uuid(props),
                            "memory_mb": round(props.total_memory / 2**20)})
    return env
