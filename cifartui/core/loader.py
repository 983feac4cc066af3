"""Batches on the training device: seeded shuffling and augmentation on whole batches.

The dataset lives on the device as uint8; each step indexes a batch, crops/flips it as one tensor op,
resizes it to the model's input size and normalises it. No per-image Python, no PIL, no workers.

Randomness is a pure function of (seed, epoch, step): the shuffle order from (seed, epoch), the
augmentation of a batch from (seed, epoch, step). Resuming mid-epoch therefore needs no RNG state.
"""

from __future__ import annotations

import contextlib
import math
import sys

import torch
import torch.nn.functional as F

from cifartui.core import fused


def _generator(device: torch.device, seed: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def random_crop(x: torch.Tensor, padding: int, g: torch.Generator) -> torch.Tensor:
    """Per-sample random crop of a zero-padded batch (torchvision RandomCrop(size, padding)), as gathers."""
    if padding <= 0:
        return x
    b, _, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (b, 1), device=x.device, generator=g)
    dx = torch.randint(0, 2 * padding + 1, (b, 1), device=x.device, generator=g)
    rows = dy + torch.arange(h, device=x.device)  # [B, H]
    cols = dx + torch.arange(w, device=x.device)  # [B, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indices split by a slice move to the front: result [B, H, W, C].
    return xp[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def random_flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], device=x.device, generator=g) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_crop_flip(x: torch.Tensor, padding: int, g: torch.Generator) -> torch.Tensor:
    """``random_flip(random_crop(x, padding, g), g)`` as one gather: the same draws, the same result,
    one pass over the batch instead of three (crop, flipped copy, select)."""
    if padding <= 0:
        return random_flip(x, g)
    b, _, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (b, 1), device=x.device, generator=g)
    dx = torch.randint(0, 2 * padding + 1, (b, 1), device=x.device, generator=g)
    flip = torch.rand(b, device=x.device, generator=g) < 0.5
    j = torch.arange(w, device=x.device)
    rows = dy + torch.arange(h, device=x.device)  # [B, H]
    cols = dx + torch.where(flip[:, None], w - 1 - j, j)  # [B, W], read right to left when flipped
    if x.numel() <= _FLAT_GATHER_MAX:
        # one index_select on the flat batch: ~4x faster than the 4-D gather on the CPU, and serial there,
        # so other processes' load cannot stall it in a thread barrier
        c, wp = x.shape[1], w + 2 * padding
        plane = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w)
        base = (torch.arange(b * c, device=x.device) * (xp.shape[2] * wp)).view(b, c, 1)
        return xp.view(-1).index_select(0, (base + plane).view(-1)).view(b, c, h, w)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return xp[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


_CHUNK_BYTES = 4 * 2**20  # CPU fast path: float output converted and normalised this much at a time (L2/L3)
_FLAT_GATHER_MAX = 2**24  # larger batches (big images) gather in 4-D: no index tensor as large as the batch


@contextlib.contextmanager
def _one_thread():
    """The CPU fast path's ops on a small batch run on the calling thread alone: a second thread gains
    little there, while on a busy machine each op's thread barrier can wait a whole time slice for a
    descheduled thread (measured here: batches 3-10x slower). Under OpenMP torch's setting is per thread;
    it is restored on the way out. (Large batches, e.g. resized to 224 px, keep every thread: they gain.)"""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _probe(t: torch.Tensor) -> int:
    return sys.getrefcount(t)


def _free_refs() -> int:
    """getrefcount of a tensor only a pool's list holds, seen as :func:`_reusable` sees it from the pool's
    loop (measured, not assumed: how getrefcount counts differs between Python versions)."""
    bufs = [torch.empty(0)]
    for buf in bufs:
        return _probe(buf)
    return 0


_FREE_REFS = _free_refs()


def _reusable(t: torch.Tensor) -> bool:
    """Nothing but the pool holds ``t``: no other Python name, no view, no autograd save, no numpy array."""
    try:
        return (sys.getrefcount(t) <= _FREE_REFS and t._use_count() == 1
                and torch._C._storage_Use_Count(t.untyped_storage()._cdata) <= 2)
    except AttributeError:  # a torch without these counters: never reuse
        return False


class _OutputPool:
    """Recycled output batches for the CPU. A fresh large tensor per batch (77 MB for 128 images at 224 px)
    costs more in page faults than the resize itself: glibc maps blocks over 32 MB afresh on every
    allocation and unmaps them on free. A buffer is handed out again only once nothing outside the
    pool refers to it (see :func:`_reusable`), so a caller that keeps batches never sees one change."""

    MIN_BYTES = 4 * 2**20  # smaller batches come from malloc's heap cheaply
    # the batch being made and two the caller still holds: a loop that fetches one batch ahead (Lightning
    # does, to know the last batch) holds the current and the next while asking for the one after
    KEEP = 3

    def __init__(self) -> None:
        self._bufs: list[torch.Tensor] = []

    def empty(self, shape, memory_format) -> torch.Tensor:
        for buf in self._bufs:  # the same loop shape as _free_refs'
            if buf.shape == shape and buf.is_contiguous(memory_format=memory_format) and _reusable(buf):
                return buf
        buf = torch.empty(shape, dtype=torch.float32, memory_format=memory_format)
        if math.prod(shape) * 4 >= self.MIN_BYTES:
            self._bufs = (self._bufs + [buf])[-self.KEEP:]
        return buf


def random_resized_crop(x: torch.Tensor, size: int, g: torch.Generator, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Per-sample RandomResizedCrop of a float batch via one affine grid_sample (also resizes)."""
    b = x.shape[0]
    dev = x.device
    area = torch.empty(b, device=dev).uniform_(scale[0], scale[1], generator=g)
    log_r = torch.empty(b, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=g)
    r = torch.exp(log_r)
    w = torch.sqrt(area * r).clamp(max=1.0)
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(b, device=dev, generator=g) * 2 - 1) * (1 - w)
    cy = (torch.rand(b, device=dev, generator=g) * 2 - 1) * (1 - h)
    theta = torch.zeros(b, 2, 3, device=dev, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def random_erasing(x: torch.Tensor, g: torch.Generator, p: float = 0.25, area=(0.02, 0.33), ratio=(0.3, 3.3)) -> torch.Tensor:
    """Zero (= the mean colour after normalisation) one random rectangle in a fraction p of the batch."""
    b, _, h, w = x.shape
    dev = x.device
    apply = torch.rand(b, device=dev, generator=g) < p
    a = torch.empty(b, device=dev).uniform_(area[0], area[1], generator=g)
    r = torch.exp(torch.empty(b, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=g))
    eh = (torch.sqrt(a * r) * h).clamp(1, h)
    ew = (torch.sqrt(a / r) * w).clamp(1, w)
    y0 = torch.rand(b, device=dev, generator=g) * (h - eh)
    x0 = torch.rand(b, device=dev, generator=g) * (w - ew)
    ys = torch.arange(h, device=dev)[None, :]
    xs = torch.arange(w, device=dev)[None, :]
    in_y = (ys >= y0[:, None]) & (ys < (y0 + eh)[:, None])
    in_x = (xs >= x0[:, None]) & (xs < (x0 + ew)[:, None])
    mask = (in_y[:, :, None] & in_x[:, None, :]) & apply[:, None, None]
    return x.masked_fill(mask[:, None], 0.0)


class BatchLoader:
    """Iterate (images, labels) batches of a uint8 dataset that already sits on ``device``.

    ``augment``: none | standard (pad-crop + flip) | strong (random-resized-crop + flip + erasing).
    With ``world_size`` > 1 every rank takes a disjoint, equal-length shard of each epoch's order: the
    shuffled order is cut to a multiple of ``world_size`` (at most world_size - 1 samples sit out this
    epoch; the next epoch's order differs) and dealt round-robin, so after k steps the ranks together have
    seen exactly the first k x batch_size x world_size samples of the order. With ``drop_last`` a shard's
    last partial batch is dropped as in a single process, so every rank runs the same number of steps
    (DDP needs that). Evaluation (no shuffle) splits contiguously in ceil(n / world_size) chunks, the last
    one shorter, nothing dropped: gathered in rank order, predictions come back in dataset order.
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *, mean, std,
        image_size: int | None = None, augment: str = "none", padding: int = 4, shuffle: bool = False,
        drop_last: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1,
        channels_last: bool = False,
    ):
        self.images, self.labels = images, labels
        self.device = images.device
        self.batch_size = batch_size
        self.image_size = image_size or int(images.shape[-1])
        self.augment, self.padding, self.shuffle = augment, padding, shuffle
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.channels_last = channels_last
        n = len(labels)
        self.shard_size = n // world_size if (shuffle and world_size > 1) else n
        self._chunk = n
        if world_size > 1 and not shuffle:
            # evaluation: contiguous chunks of ceil(n / world_size); the last is shorter (or empty)
            self._chunk = math.ceil(n / world_size)
            self.shard_size = max(0, min(n, (rank + 1) * self._chunk) - rank * self._chunk)
        self.drop_last = drop_last and self.shard_size >= batch_size
        self.epoch = 0
        mean_t = torch.tensor(mean, device=self.device, dtype=torch.float32).view(1, 3, 1, 1)
        std_t = torch.tensor(std, device=self.device, dtype=torch.float32).view(1, 3, 1, 1)
        # x/255 then (x - mean)/std folded into one multiply-add
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t
        self._pool = _OutputPool()

    def __len__(self) -> int:
        if self.drop_last:
            return self.shard_size // self.batch_size
        return math.ceil(self.shard_size / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> torch.Tensor:
        n = len(self.labels)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(n, generator=g)
            # Drop the tail that does not divide evenly so every rank runs the same number of steps.
            order = order[: self.shard_size * self.world_size][self.rank :: self.world_size]
        else:
            order = torch.arange(n)
            if self.world_size > 1:  # evaluation: contiguous shards, the last one may be shorter
                order = order[self.rank * self._chunk : (self.rank + 1) * self._chunk]
        return order.to(self.device, non_blocking=True)

    def transform(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        size = self.image_size
        if self.device.type == "cpu" and not (g is not None and self.augment == "strong"):
            small = x.shape[0] * x.shape[1] * size * size * 4 <= _CHUNK_BYTES  # e.g. 128 images at 32 px
            threads = 1 if small else torch.get_num_threads()
            fused_resize = self._fused(x)
            # the fused resize runs its own threads: torch's stay out of the way (their OpenMP workers spin
            # for a while after each op, on the cores the resize needs: measured 15 ms a batch against 9)
            with _one_thread() if small or fused_resize else contextlib.nullcontext():
                if g is not None and self.augment == "standard":
                    x = random_crop_flip(x, self.padding, g)
                if fused_resize:  # one pass, each output value written once
                    out = self._pool.empty((x.shape[0], x.shape[1], size, size), self._memory_format)
                    return fused.resize_normalise(x, out, self._scale, self._shift, threads)
                return self._transform_cpu(x)
        if g is not None and self.augment == "standard":
            x = random_crop_flip(x, self.padding, g)
        x = x.float()
        if g is not None and self.augment == "strong":
            x = random_resized_crop(x, size, g)
            x = random_flip(x, g)
        elif x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1])
        x = x * self._scale + self._shift
        if g is not None and self.augment == "strong":
            x = random_erasing(x, g)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @property
    def _memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def _fused(self, x: torch.Tensor) -> bool:
        """Whether :mod:`fused` resizes this batch: upscaling (bilinear needs no antialias), numba at hand."""
        return self.image_size >= max(x.shape[-2:]) and tuple(x.shape[-2:]) != (self.image_size,) * 2 and fused.available()

    def _transform_cpu(self, x: torch.Tensor) -> torch.Tensor:
        """The CPU path without numba's fused resize (and for downscaling): resize while still uint8 (channels-last, torch's vectorised kernel: ~10x the
        float one; rounds to whole intensity levels, as PIL does), then convert into a recycled float
        batch and normalise in place, a few images at a time so that the three passes over each chunk
        stay in cache. No fresh large allocation per batch."""
        size = self.image_size
        resize = x.shape[-1] != size or x.shape[-2] != size
        if resize:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self._pool.empty((x.shape[0], x.shape[1], size, size), self._memory_format)
        chunk = max(1, _CHUNK_BYTES // (4 * x.shape[1] * size * size))
        for i in range(0, x.shape[0], chunk):
            part = x[i : i + chunk]
            if resize:
                part = F.interpolate(part, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1])
            out[i : i + chunk].copy_(part).mul_(self._scale).add_(self._shift)
        return out

    def batches(self, start_step: int = 0):
        """Yield (step, images, labels, sample_indices) from ``start_step`` on (mid-epoch resume)."""
        order = self._order()
        augment = self.shuffle and self.augment != "none"
        for step in range(start_step, len(self)):
            idx = order[step * self.batch_size : (step + 1) * self.batch_size]
            with _one_thread() if self.device.type == "cpu" else contextlib.nullcontext():
                # a small gather: one thread does it, and leaves no OpenMP worker spinning on the cores
                # that the resize threads need next (measured: 13 ms a batch for the resize against 9)
                x = self.images.index_select(0, idx)
                y = self.labels.index_select(0, idx)
            # rank 0 keeps the single-process stream; other ranks draw their own (not rank 0's crops again)
            key = self.seed * 1_000_003 + self.epoch * 10_007 + step + self.rank * 7_919_000_003
            g = _generator(self.device, key % (2**63)) if augment else None
            yield step, self.transform(x, g), y, idx

    def __iter__(self):
        for _step, x, y, _idx in self.batches():
            yield x, y
