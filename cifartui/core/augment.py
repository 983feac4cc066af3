"""Per-sample augmentation policies on a device uint8 batch: torchvision's TrivialAugmentWide and RandAugment.

A policy draws its op and magnitude once per call, so one call on a whole batch would give every image the
same op. Each image gets its own call instead (a Python loop over the batch: measured in the README, cheap
at 32 px).

The v2 policies take no ``torch.Generator``: they draw from torch's global CPU RNG. To keep every draw a
pure function of (seed, epoch, step), as the rest of the loader's randomness is, the loop runs inside
``torch.random.fork_rng`` with the global RNG seeded from the batch's key: the images' ops are fixed by
the key, and the caller's global stream (dropout, ...) is left exactly as it was, so a resume stays exact.
"""

from __future__ import annotations

from typing import Callable

import torch

POLICIES = ("trivial", "randaugment")
# The batch's generator is seeded with its key; the global RNG gets a different number derived from it, so
# the crop offsets and the policy's draws on the CPU do not come from one and the same stream.
_MIX = 0x9E3779B97F4A7C15


def make_policy(name: str, magnitude: int = 9) -> Callable[[torch.Tensor], torch.Tensor]:
    """The torchvision v2 transform for ``name`` (one of :data:`POLICIES`), for one uint8 [C, H, W] image."""
    from torchvision.transforms import v2

    if name == "trivial":
        return v2.TrivialAugmentWide()
    if name == "randaugment":
        return v2.RandAugment(num_ops=2, magnitude=magnitude)
    raise ValueError(f"unknown augmentation policy {name!r}; expected one of {', '.join(POLICIES)}")


def policy_seed(key: int) -> int:
    return (key * _MIX + 1) % 2**63


def apply_per_sample(x: torch.Tensor, policy: Callable[[torch.Tensor], torch.Tensor], key: int) -> torch.Tensor:
    """``policy`` applied to each image of the uint8 batch ``x`` [B, C, H, W] on its own: a new op per image,
    all drawn from ``key`` alone; torch's global RNG state is restored afterwards."""
    if x.shape[0] == 0:
        return x
    with torch.random.fork_rng(devices=[]):  # the policies draw on the CPU even for CUDA images
        torch.manual_seed(policy_seed(key))
        return torch.stack([policy(image) for image in x])
