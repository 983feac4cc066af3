"""Batches on the training device: seeded shuffling and augmentation on whole batches.

The dataset lives on the device as uint8 [N, C, H, W]. Each step indexes a batch and sends it through one
torch pipeline, :meth:`BatchLoader.transform`, as whole-batch tensor ops (no per-image Python, no PIL, no
worker processes):

1. augment while the images are still small and uint8: ``standard`` crops each zero-padded image at a
   random offset and flips it at random, both as one gather; ``strong`` does a random-resized-crop (which
   also resizes) and a flip; ``trivial`` / ``randaugment`` do what ``standard`` does, then give each image
   its own TrivialAugmentWide / RandAugment op (core/augment.py, one call per image);
2. resize to the model's input size (e.g. 32 px CIFAR to a pretrained model's 224 px), bilinear;
3. convert to float32 and normalise: (x / 255 - mean) / std as one multiply-add;
4. ``strong`` only: random erasing.

Randomness is a pure function of (seed, epoch, step): the shuffle order from (seed, epoch), the
augmentation of a batch from (seed, epoch, step). Resuming mid-epoch therefore needs no RNG state.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from cifartui.core.augment import POLICIES, apply_per_sample, make_policy


def random_flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], device=x.device, generator=g) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


# Above this many values a batch is gathered with 4-D indexing: no int64 index as large as the batch.
_FLAT_GATHER_MAX = 2**24


def random_crop_flip(x: torch.Tensor, padding: int, g: torch.Generator) -> torch.Tensor:
    """Per-sample random crop of the zero-padded batch (torchvision's RandomCrop(size, padding)), then a
    random horizontal flip (RandomHorizontalFlip), as one gather: each output pixel is read once from
    the padded batch, a flipped image simply reads its columns right to left."""
    if padding <= 0:
        return random_flip(x, g)
    b, c, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    hp, wp = xp.shape[-2:]
    dy = torch.randint(0, 2 * padding + 1, (b, 1), device=x.device, generator=g)
    dx = torch.randint(0, 2 * padding + 1, (b, 1), device=x.device, generator=g)
    flip = torch.rand(b, device=x.device, generator=g) < 0.5
    j = torch.arange(w, device=x.device)
    rows = dy + torch.arange(h, device=x.device)  # [B, H]: the crop's rows in the padded image
    cols = dx + torch.where(flip[:, None], w - 1 - j, j)  # [B, W]: its columns, right to left when flipped
    if x.numel() <= _FLAT_GATHER_MAX:
        # small batches (CIFAR: 128 x 3 x 32 x 32): one index_select on the flat batch, a few times faster
        # on the CPU than the 4-D gather below and free of its thread barriers
        plane = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w)  # offsets within one channel
        base = (torch.arange(b * c, device=x.device) * (hp * wp)).view(b, c, 1)  # where each channel starts
        return xp.reshape(-1).index_select(0, (base + plane).view(-1)).view(b, c, h, w)
    batch = torch.arange(b, device=x.device)[:, None, None]
    # advanced indices split by a slice move to the front: the result is [B, H, W, C], permuted back
    return xp[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


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
    """Zero (= the mean colour after normalisation) one random rectangle in a fraction p of the batch, in place."""
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
    return x.masked_fill_(mask[:, None], 0.0)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of a uint8 batch to size x size (antialiased when shrinking, as PIL does).

    On the CPU the batch stays uint8 and goes channels-last: torch's vectorised kernel for that case is
    ~10x its float one and writes a quarter of the bytes (it rounds to whole intensity levels, as PIL
    does). CUDA resizes floats only, and fast."""
    if x.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    else:
        x = x.float()
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1])


# glibc hands out blocks above its mmap threshold (32 MB at most by default) as fresh mmap'd pages and
# returns them to the OS when freed: a float32 batch of 128 x 224 px (77 MB) is then page-faulted in, page by
# page, at every step (~7 ms of a ~20 ms step here). Measured: 48 -> 98 batches/s (bench loader_224).
BIG_BATCH_BYTES = 32 * 2**20
_heap_kept = False


def keep_freed_batches_in_the_heap() -> None:
    """Let glibc reuse freed batches instead of unmapping them (CPU training at a large input size only).

    Process-wide and one-way: the mmap threshold goes to 1 GB, freed memory is not trimmed back to the OS
    (the process keeps its peak footprint), and every thread allocates from the main arena (other arenas'
    heaps are 64 MB, too small for such a batch, which would be mmap'd anyway). A thread that allocated
    before this call keeps its own arena: the headless trainer (and each torchrun rank, each queue worker)
    builds its loaders on the main thread and gains; the app's training thread may not. No-op without glibc."""
    global _heap_kept
    if _heap_kept:
        return
    _heap_kept = True
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        return
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8  # <malloc.h>
    mallopt(m_mmap_threshold, 1 << 30)
    mallopt(m_trim_threshold, 2**31 - 1)
    mallopt(m_arena_max, 1)


class BatchLoader:
    """Iterate (images, labels) batches of a uint8 dataset that already sits on ``device``.

    ``augment``: none | standard (pad-crop + flip) | strong (random-resized-crop + flip + erasing) |
    trivial / randaugment (pad-crop + flip + a per-image policy op; ``policy_magnitude`` for RandAugment).
    Batches come out as float32 [B, C, image_size, image_size], normalised, channels-last if
    ``channels_last``.

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
        channels_last: bool = False, policy_magnitude: int = 9,
    ):
        self.images, self.labels = images, labels
        self.device = images.device
        self.batch_size = batch_size
        self.image_size = image_size or int(images.shape[-1])
        self.augment, self.padding, self.shuffle = augment, padding, shuffle
        self._policy = make_policy(augment, policy_magnitude) if augment in POLICIES else None
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.channels_last = channels_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
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
        if self.device.type == "cpu" and batch_size * 3 * 4 * self.image_size**2 > BIG_BATCH_BYTES:
            keep_freed_batches_in_the_heap()

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
        """uint8 [B, C, H, W] -> normalised float32 [B, C, S, S]; augmented when ``g`` is given."""
        size = self.image_size
        augment = self.augment if g is not None else "none"
        # 1. augment on the small uint8 images, before the resize multiplies their size
        if augment in ("standard",) + POLICIES:
            x = random_crop_flip(x, self.padding, g)
        if augment in POLICIES:  # each image its own op, keyed by the batch's seed (see core/augment.py)
            x = apply_per_sample(x, self._policy, g.initial_seed())
        if augment == "strong":
            x = random_flip(random_resized_crop(x.float(), size, g), g)  # the crop resizes too
        elif tuple(x.shape[-2:]) != (size, size):
            # 2. resize (still uint8 on the CPU, see resize())
            x = resize(x, size)
        # 3. float32 in the layout the model wants (conversion and layout change in one copy), then
        #    normalised in place: no second batch-sized allocation
        x = x.to(torch.float32, memory_format=self.memory_format).mul_(self._scale).add_(self._shift)
        # 4. erasing after normalisation: zero is the mean colour
        if augment == "strong":
            x = random_erasing(x, g)
        return x

    @contextlib.contextmanager
    def _threads(self, batch: int):
        """A small batch on the CPU (CIFAR at 32 px: 1.5 MB) runs on the calling thread alone. A second
        thread gains little on ops that small, and on a busy machine each op's thread barrier can wait a
        whole time slice for a descheduled thread (measured: 3-10x slower batches). Large batches, e.g.
        resized to 224 px, keep every thread. torch's setting is per thread; it is restored on the way out."""
        n = torch.get_num_threads()
        small = batch * 3 * self.image_size**2 * 4 <= 4 * 2**20
        if self.device.type != "cpu" or not small or n == 1:
            yield
            return
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(n)

    def batches(self, start_step: int = 0):
        """Yield (step, images, labels, sample_indices) from ``start_step`` on (mid-epoch resume)."""
        order = self._order()
        augment = self.shuffle and self.augment != "none"
        for step in range(start_step, len(self)):
            idx = order[step * self.batch_size : (step + 1) * self.batch_size]
            g = None
            if augment:
                # rank 0 keeps the single-process stream; other ranks draw their own (not rank 0's crops again)
                key = self.seed * 1_000_003 + self.epoch * 10_007 + step + self.rank * 7_919_000_003
                g = torch.Generator(device=self.device).manual_seed(key % (2**63))
            with self._threads(len(idx)):
                x = self.transform(self.images.index_select(0, idx), g)
                y = self.labels.index_select(0, idx)
            yield step, x, y, idx

    def __iter__(self):
        for _step, x, y, _idx in self.batches():
            yield x, y
