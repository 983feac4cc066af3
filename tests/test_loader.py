import torch

from cifartui.core.loader import BatchLoader, random_crop

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def data(n=64, size=8):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g), torch.arange(n) % 4


def test_random_crop_matches_pad_then_slice():
    x, _ = data(16)
    g = torch.Generator().manual_seed(3)
    out = random_crop(x, 2, g)
    g = torch.Generator().manual_seed(3)
    dy = torch.randint(0, 5, (16, 1), generator=g)
    dx = torch.randint(0, 5, (16, 1), generator=g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):
        ref = padded[i, :, dy[i, 0]: dy[i, 0] + 8, dx[i, 0]: dx[i, 0] + 8]
        assert torch.equal(out[i], ref)


def test_shapes_normalisation_and_resize():
    x, y = data()
    loader = BatchLoader(x, y, 16, mean=MEAN, std=STD, image_size=12, augment="standard", shuffle=True, seed=1)
    batches = list(loader)
    assert len(batches) == 4 and batches[0][0].shape == (16, 3, 12, 12) and batches[0][0].dtype == torch.float32
    plain = BatchLoader(x, y, 64, mean=MEAN, std=STD)
    (xb, yb), = list(plain)
    assert torch.allclose(xb, (x.float() / 255 - 0.5) / 0.25, atol=1e-5) and torch.equal(yb, y)


def test_order_and_augmentation_are_a_function_of_seed_epoch_step():
    x, y = data()
    make = lambda seed: BatchLoader(x, y, 16, mean=MEAN, std=STD, augment="strong", shuffle=True, seed=seed)  # noqa: E731
    a, b, c = make(5), make(5), make(6)
    for ld in (a, b, c):
        ld.set_epoch(2)
    ba, bb, bc = list(a.batches()), list(b.batches()), list(c.batches())
    assert all(torch.equal(p[1], q[1]) and torch.equal(p[3], q[3]) for p, q in zip(ba, bb))
    assert not torch.equal(ba[0][3], bc[0][3])
    # resuming at step 2 yields exactly the batches 2 and 3 of the uninterrupted epoch
    resumed = list(a.batches(start_step=2))
    assert [s for s, *_ in resumed] == [2, 3] and torch.equal(resumed[0][1], ba[2][1])
    a.set_epoch(3)
    assert not torch.equal(list(a.batches())[0][3], ba[0][3])


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
        shards.append(torch.cat([idx for *_r, idx in ld.batches()]).tolist())
    assert len({len(s) for s in shards}) == 1
    assert not set(shards[0]) & set(shards[1]) and not set(shards[1]) & set(shards[2])
