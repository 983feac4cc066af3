"""loader / loader_224: training batches per second of our BatchLoader against torchvision's
DataLoader with PIL transforms (RandomCrop(32, padding=4), RandomHorizontalFlip, [Resize(224)],
ToTensor, Normalize; num_workers = cores), batch 128, on 50,000 generated CIFAR-size uint8 images.

Both produce the same thing: a float32 batch [128, 3, S, S], normalised, augmented per sample.
The baseline gets its best case: the first batch (worker start-up) is not timed, and its workers
prefetch as usual. Ours runs on the CPU here, in the main process, with torch's intra-op threads.
"""

from __future__ import annotations

import time

from bench.common import Result, cores, interleave

MEAN = (0.5071, 0.4865, 0.4409)  # CIFAR-100's
STD = (0.2673, 0.2564, 0.2762)
BATCH = 128


def _images(n: int):
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 100, (n,), generator=g)
    return x, y


class _PILDataset:
    """What a torchvision user writes: one PIL image per sample, transformed in the worker."""

    def __init__(self, hwc, labels, transform):
        self.hwc, self.labels, self.transform = hwc, labels, transform

    def __len__(self) -> int:
        return len(self.hwc)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.hwc[i])), int(self.labels[i])


def _baseline(x, y, size: int):
    from torch.utils.data import DataLoader
    from torchvision import transforms as T

    steps = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()]
    if size != 32:
        steps.append(T.Resize(size))
    steps += [T.ToTensor(), T.Normalize(MEAN, STD)]
    ds = _PILDataset(x.permute(0, 2, 3, 1).contiguous().numpy(), y.numpy(), T.Compose(steps))
    return DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=cores(), drop_last=True)


def _time_batches(make_iter, batches: int) -> float:
    """Batches per second over ``batches`` batches, after one untimed batch (start-up)."""
    it = make_iter()
    first = next(it)
    assert first[0].shape[0] == BATCH
    t0 = time.perf_counter()
    for _ in range(batches):
        xb = next(it)[0]
    rate = batches / (time.perf_counter() - t0)
    assert xb.dtype.is_floating_point
    del it  # shuts the baseline's workers down before the next measurement
    return rate


def _run(size: int, quick: bool) -> Result:
    from cifartui.core.loader import BatchLoader

    n = 4 * BATCH if quick else 50_000
    ours_batches, base_batches = (3, 2) if quick else ((100, 40) if size == 32 else (30, 10))
    repeats = 1 if quick else (5 if size == 32 else 3)
    x, y = _images(n)
    ours = BatchLoader(x, y, BATCH, mean=MEAN, std=STD, image_size=size, augment="standard", padding=4,
                       shuffle=True, drop_last=True, seed=0)
    base = _baseline(x, y, size)
    epoch = [0]

    def ours_iter():
        epoch[0] += 1
        ours.set_epoch(epoch[0])
        return (b[1:3] for b in ours.batches())

    value, baseline = interleave(lambda: _time_batches(ours_iter, ours_batches),
                                 lambda: _time_batches(lambda: iter(base), base_batches), repeats)
    # goals: 10x the baseline at 32 px; 5x at 224 px, where plain torch ops on the CPU upscale and write
    # a 77 MB float32 batch each step (pretrained models at 224 px train on a GPU, not here)
    goal = 10.0 if size == 32 else 5.0
    return Result(value, baseline, "batches/s", goal, note=_memory_floor(size) if size != 32 else "")


def _memory_floor(size: int) -> str:
    """What memory alone allows: writing one float32 output batch (uint8 -> float32 copy, no resize)."""
    import torch

    src = torch.randint(0, 256, (BATCH, 3, size, size), dtype=torch.uint8)
    out = torch.empty(src.shape, dtype=torch.float32)
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        out.copy_(src)
        times.append(time.perf_counter() - t0)
    floor = sorted(times)[len(times) // 2]
    return (f"converting one {out.numel() * 4 / 2**20:.0f} MB float32 batch from uint8, nothing else, takes "
            f"{floor * 1000:.1f} ms here: no CPU loader that returns float32 batches passes {1 / floor:.0f} batches/s")


def run_loader(quick: bool) -> Result:
    return _run(32, quick)


def run_loader_224(quick: bool) -> Result:
    return _run(224, quick)
