"""torch.distributed glue for torchrun: who am I, and collective helpers that are no-ops alone.

torchrun (or slurm's srun with the same variables) sets RANK, LOCAL_RANK and WORLD_SIZE plus the
rendezvous address; a plain ``python -m cifartui`` sees none of them and every helper here is a no-op.
Backends: nccl on CUDA, gloo on the CPU. Every collective is bounded by the process-group timeout
(``CIFARTUI_DIST_TIMEOUT_MIN``, default 10 minutes), so a rank that died or hangs cannot keep the others
waiting forever even outside torchrun (torchrun itself tears the group down when a worker exits).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT_MIN = 10.0


@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> DistInfo:
    """torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; plain runs have none of them."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world)


def timeout() -> datetime.timedelta:
    """How long any collective may wait for the slowest rank before it fails (and the run with it)."""
    raw = os.environ.get("CIFARTUI_DIST_TIMEOUT_MIN", "")
    try:
        minutes = float(raw) if raw else DEFAULT_TIMEOUT_MIN
    except ValueError:
        minutes = DEFAULT_TIMEOUT_MIN
    return datetime.timedelta(minutes=max(0.1, minutes))


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def init(info: DistInfo, device: torch.device) -> None:
    if not info.enabled or initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, timeout=timeout(),
                            device_id=device if device.type == "cuda" else None)


def shutdown() -> None:
    if initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if initialized():
        dist.barrier()


@contextlib.contextmanager
def main_first(info: DistInfo, active: bool = True) -> Iterator[None]:
    """Run the body on rank 0 first, then on each node's local rank 0, then on everyone else.

    For work that may download into a shared or node-local folder (CIFAR archives, pretrained weights):
    one process fetches, the others find the files there. The barriers run even when the body raises,
    so the others go on (and meet the same error) instead of waiting for the timeout.
    """
    if not active or not info.enabled or not initialized():
        yield
        return
    phase = 0 if info.rank == 0 else (1 if info.local_rank == 0 else 2)
    for _ in range(phase):
        dist.barrier()
    try:
        yield
    finally:
        for _ in range(2 - phase):
            dist.barrier()


def all_sum(t: torch.Tensor) -> torch.Tensor:
    if initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_true(flag: bool, device: torch.device) -> bool:
    """True on every rank when any rank says True (a stop request, early stopping)."""
    if not initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def first_flagged(step: torch.Tensor) -> int:
    """The smallest non-negative value of an int64 scalar across ranks (-1 on every rank when none is):
    the first step with a non-finite loss on any rank, so that all ranks raise together."""
    if not initialized():
        return int(step.item())
    none = torch.iinfo(torch.int64).max
    t = torch.where(step < 0, torch.full_like(step, none), step).reshape(1)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    value = int(t.item())
    return -1 if value == none else value


def gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate a 1-D tensor of per-rank length across ranks, in rank order."""
    if not initialized():
        return t
    world = dist.get_world_size()
    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])


def broadcast_state(module: torch.nn.Module, src: int = 0) -> None:
    """Copy ``src``'s parameters and buffers into every rank's module, in place."""
    if not initialized():
        return
    for tensor in module.state_dict().values():
        dist.broadcast(tensor, src=src)


def average_buffers(module: torch.nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics) across ranks, in place.

    Under DDP each rank's last training forward updated its own running stats from its own batch, so
    ranks disagree slightly; evaluating with different stats per shard would not equal a single-process
    evaluation of the weights rank 0 saves. After this, every rank holds the same (all-reduced) values.
    """
    if not initialized():
        return
    world = dist.get_world_size()
    for buf in module.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(world)


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    return any_true(flag, device)
