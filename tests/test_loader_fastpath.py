"""The loader's fast paths (bench/ proves their speed) change no result a caller can see."""

import weakref

import pytest
import torch
import torch.nn.functional as F

from cifartui.core import fused
from cifartui.core.loader import BatchLoader, random_crop, random_crop_flip, random_flip

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def data(n=64, size=8):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g), torch.arange(n) % 4


def test_fused_crop_flip_equals_crop_then_flip():
    x, _ = data(32)
    for padding in (0, 2, 4):
        a = random_crop_flip(x, padding, torch.Generator().manual_seed(7))
        g = torch.Generator().manual_seed(7)
        b = random_flip(random_crop(x, padding, g), g)
        assert torch.equal(a, b)


def test_uint8_resize_matches_float_resize_within_rounding(monkeypatch):
    monkeypatch.setattr(fused, "available", lambda: False)  # the torch path (numba's is tested below)
    x, y = data(16)
    loader = BatchLoader(x, y, 16, mean=MEAN, std=STD, image_size=24)
    (xb, _), = list(loader)
    ref = F.interpolate(x.float(), size=(24, 24), mode="bilinear", align_corners=False)
    ref = (ref / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    # uint8 resize (fixed-point weights, as PIL's) rounds to whole intensity levels: under one level apart
    assert (xb - ref).abs().max() < 1 / 255 / min(STD)
    assert xb.is_contiguous()


def test_kept_batches_never_change_and_dropped_ones_are_recycled():
    x, y = data(96, 16)
    # 32 x 3 x 224 x 224 float32 batches (19 MB): large enough to be recycled
    make = lambda: BatchLoader(x, y, 32, mean=MEAN, std=STD, image_size=224, augment="standard", shuffle=True, seed=3)  # noqa: E731
    kept = [b.clone() for b in (xb for xb, _ in make())]
    held = [xb for xb, _ in make()]  # a caller that keeps every batch
    assert all(torch.equal(a, b) for a, b in zip(kept, held))
    assert len({t.data_ptr() for t in held}) == len(held)
    views = [xb[:1] for xb, _ in make()]  # only views kept: the storage is still in use
    assert all(torch.equal(v, k[:1]) for v, k in zip(views, kept))
    seen = []
    for xb, _ in make():  # a training loop: each batch dropped before the next but one
        seen.append(weakref.ref(xb))
    batches = [r() for r in seen]
    assert batches[2] is not None and batches[2] is batches[0]  # the first buffer came back
    for a, b in zip([xb.clone() for xb, _ in make()], kept):  # recycling changes no value
        assert torch.equal(a, b)


def test_batches_saved_for_backward_are_not_recycled():
    x, y = data(96, 16)
    loader = BatchLoader(x, y, 32, mean=MEAN, std=STD, image_size=224)
    w = torch.ones(1, requires_grad=True)
    graphs, copies = [], []
    for xb, _ in loader:
        graphs.append((xb * w).sum())  # autograd keeps xb (its tensor, not a Python name)
        copies.append(xb.clone())
        del xb
    for loss in graphs:
        loss.backward()
    assert torch.allclose(w.grad, torch.stack(copies).sum().reshape(1), rtol=1e-4)


def _reference(x, size, scale, shift):
    out = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False)
    return out * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)


@pytest.mark.parametrize("shape,size,threads", [((5, 3, 8, 8), (56, 56), 1), ((4, 3, 5, 7), (24, 30), 3),
                                               ((2, 1, 32, 32), (224, 224), 2), ((3, 3, 9, 9), (9, 20), 2)])
def test_fused_resize_equals_torch_bilinear_then_normalise(shape, size, threads):
    if not fused.available():
        pytest.fail("numba is a dependency (pyproject.toml): the fused resize must be available in the test env")
    x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    scale, shift = torch.rand(shape[1], generator=g) + 0.5, torch.rand(shape[1], generator=g) - 0.5
    out = torch.full((shape[0], shape[1], *size), float("nan"))
    fused.resize_normalise(x, out, scale, shift, threads)
    # torch computes source coordinates in float32, the kernel in float64: a weight can differ by a few ulp,
    # which across 255 levels is up to ~1e-3 of an intensity level (measured over 30 seeds); allow 4e-3.
    atol = 4e-3 * scale.abs().max().item()
    torch.testing.assert_close(out, _reference(x, size, scale, shift), rtol=0, atol=atol)


def test_fused_resize_refuses_a_downscale():
    x = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match="not an upscale"):
        fused.resize_normalise(x, torch.empty(1, 3, 16, 16), torch.ones(3), torch.zeros(3))


def test_loader_upscale_is_the_same_with_and_without_numba(monkeypatch):
    x, y = data(24)
    make = lambda: BatchLoader(x, y, 8, mean=MEAN, std=STD, image_size=56, augment="standard", shuffle=True, seed=5)  # noqa: E731
    assert make()._fused(x[:1])
    fast = [xb.clone() for xb, _ in make()]
    monkeypatch.setattr(fused, "available", lambda: False)
    assert not make()._fused(x[:1])
    slow = [xb.clone() for xb, _ in make()]
    for a, b in zip(fast, slow):  # the torch path rounds to whole intensity levels after resizing, as PIL does
        assert (a - b).abs().max() < 1 / 255 / min(STD)


def test_a_loop_that_looks_one_batch_ahead_still_recycles_buffers():
    from collections import deque

    x, y = data(192, 16)
    loader = BatchLoader(x, y, 16, mean=MEAN, std=STD, image_size=224)  # 9.6 MB batches: recycled
    held = deque(maxlen=2)  # the current batch and the next, as a prefetching loop keeps them
    buffers = set()
    for xb, _ in loader:
        buffers.add(xb.data_ptr())
        held.append(xb)
        del xb
    assert len(buffers) <= 3  # three buffers in turn, not a fresh one per batch
