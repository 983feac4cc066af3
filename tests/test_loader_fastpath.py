"""The loader's fast paths (bench/ proves their speed) change no result a caller can see."""

import weakref

import torch
import torch.nn.functional as F

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


def test_uint8_resize_matches_float_resize_within_rounding():
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
