import pytest
import torch
import torch.nn.functional as F

from cifartui.core import loader as loader_mod
from cifartui.core.loader import BatchLoader, random_crop_flip

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def data(n=64, size=8):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g), torch.arange(n) % 4


def normalise(x):
    return (x / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


@pytest.mark.parametrize("flat", [True, False])  # the flat index_select (small batches) and the 4-D gather
@pytest.mark.parametrize("padding", [0, 2, 4])
def test_random_crop_flip_is_pad_then_slice_then_flip(monkeypatch, flat, padding):
    if not flat:
        monkeypatch.setattr(loader_mod, "_FLAT_GATHER_MAX", 0)
    x, _ = data(16)
    out = random_crop_flip(x, padding, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # the same draws, in the same order
    if padding:
        dy = torch.randint(0, 2 * padding + 1, (16, 1), generator=g)
        dx = torch.randint(0, 2 * padding + 1, (16, 1), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    padded = F.pad(x, (padding,) * 4)
    for i in range(16):
        y0, x0 = (int(dy[i, 0]), int(dx[i, 0])) if padding else (0, 0)
        ref = padded[i, :, y0 : y0 + 8, x0 : x0 + 8]
        assert torch.equal(out[i], ref.flip(2) if flip[i] else ref)
    assert flip.any() and not flip.all()  # both cases were checked


def test_shapes_dtype_and_normalisation():
    x, y = data()
    loader = BatchLoader(x, y, 16, mean=MEAN, std=STD, image_size=12, augment="standard", shuffle=True, seed=1)
    batches = list(loader)
    assert len(batches) == 4 and batches[0][0].shape == (16, 3, 12, 12) and batches[0][0].dtype == torch.float32
    plain = BatchLoader(x, y, 64, mean=MEAN, std=STD)
    (xb, yb), = list(plain)
    assert torch.allclose(xb, normalise(x.float()), atol=1e-5) and torch.equal(yb, y)
    assert xb.is_contiguous()


@pytest.mark.parametrize("size", [24, 5])  # up (plain bilinear) and down (antialiased)
def test_resize_is_bilinear_within_one_intensity_level(size):
    x, y = data(16)
    (xb, _), = list(BatchLoader(x, y, 16, mean=MEAN, std=STD, image_size=size))
    ref = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=size < 8)
    # the CPU resizes uint8 (fixed-point weights, as PIL), rounding to whole intensity levels
    assert (xb - normalise(ref)).abs().max() < 1 / 255 / min(STD)
    assert xb.shape == (16, 3, size, size) and xb.is_contiguous()


@pytest.mark.parametrize("augment", ["none", "standard", "strong"])
@pytest.mark.parametrize("size", [8, 16])
def test_channels_last_is_the_same_batch_in_the_other_layout(augment, size):
    x, y = data(32)
    make = lambda cl: BatchLoader(x, y, 16, mean=MEAN, std=STD, image_size=size, augment=augment,  # noqa: E731
                                  shuffle=True, seed=2, channels_last=cl)
    for (a, _), (b, _) in zip(make(False), make(True)):
        assert a.is_contiguous() and b.is_contiguous(memory_format=torch.channels_last)
        assert b.dtype == torch.float32 and torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("augment,size", [("strong", 8), ("standard", 8), ("standard", 20)])
def test_order_and_augmentation_are_a_function_of_seed_epoch_step(augment, size):
    x, y = data()
    make = lambda seed: BatchLoader(x, y, 16, mean=MEAN, std=STD, image_size=size, augment=augment,  # noqa: E731
                                    shuffle=True, seed=seed)
    a, b, c = make(5), make(5), make(6)
    for ld in (a, b, c):
        ld.set_epoch(2)
    ba, bb, bc = list(a.batches()), list(b.batches()), list(c.batches())
    assert all(torch.equal(p[1], q[1]) and torch.equal(p[3], q[3]) for p, q in zip(ba, bb))
    assert not torch.equal(ba[0][3], bc[0][3])
    # resuming at step 2 yields exactly the batches 2 and 3 of the uninterrupted epoch
    resumed = list(a.batches(start_step=2))
    assert [s for s, *_ in resumed] == [2, 3] and torch.equal(resumed[0][1], ba[2][1])
    assert torch.equal(resumed[1][1], ba[3][1]) and torch.equal(resumed[1][2], ba[3][2])
    a.set_epoch(3)
    assert not torch.equal(list(a.batches())[0][3], ba[0][3])
    # augmentation is drawn anew each step: with one image everywhere, batches differ only by their draws
    one = x[:1].expand(64, -1, -1, -1).contiguous()
    steps = [xb for _s, xb, _y, _i in BatchLoader(one, y, 16, mean=MEAN, std=STD, image_size=size, augment=augment,
                                                  shuffle=True, seed=5).batches()]
    assert not torch.equal(steps[0], steps[1])


def test_batches_a_caller_keeps_never_change():
    x, y = data(64, 8)
    make = lambda: BatchLoader(x, y, 16, mean=MEAN, std=STD, image_size=24, augment="standard", shuffle=True, seed=3)  # noqa: E731
    held = [xb for xb, _ in make()]
    fresh = [xb.clone() for xb, _ in make()]
    assert all(torch.equal(a, b) for a, b in zip(held, fresh))
    assert len({t.data_ptr() for t in held}) == len(held)


def test_labels_follow_their_images_and_no_augmentation_without_shuffle():
    x, y = data(40)
    batches = list(BatchLoader(x, y, 16, mean=MEAN, std=STD, augment="standard", seed=0).batches())
    assert [len(b[2]) for b in batches] == [16, 16, 8]  # no drop_last: the last batch is short
    for _s, xb, yb, idx in batches:
        assert torch.equal(yb, y[idx]) and torch.allclose(xb, normalise(x[idx].float()), atol=1e-5)


def test_every_epoch_visits_each_sample_once():
    x, y = data(64)
    loader = BatchLoader(x, y, 16, mean=MEAN, std=STD, shuffle=True, drop_last=True, seed=0)
    seen = torch.cat([idx for *_r, idx in loader.batches()])
    assert sorted(seen.tolist()) == list(range(64))


def test_rank_shards_are_disjoint_and_equal():
    x, y = data(70)
    shards = []
    for rank in range(3):
        ld = BatchLoader(x, y, 8, mean=MEAN, std=STD, shuffle=True, drop_last=True, seed=0, rank=rank, world_size=3)
        assert len(ld) == 70 // 3 // 8
        shards.append(torch.cat([idx for *_r, idx in ld.batches()]).tolist())
    assert len({len(s) for s in shards}) == 1
    assert not set(shards[0]) & set(shards[1]) and not set(shards[1]) & set(shards[2])
    assert not set(shards[0]) & set(shards[2])


def test_evaluation_shards_are_contiguous_and_cover_the_dataset():
    x, y = data(70)
    parts = [torch.cat([idx for *_r, idx in BatchLoader(x, y, 8, mean=MEAN, std=STD, rank=r, world_size=3).batches()])
             for r in range(3)]
    assert torch.equal(torch.cat(parts), torch.arange(70))
