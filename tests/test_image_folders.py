"""Image folders as a hostile user leaves them: links, loops, hidden junk, empty classes, odd bit depths,
EXIF orientation. Real folders in tmp_path, real images (CIFAR-100 PNGs from ../shared and ones made here)."""

import os
import shutil
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from cifartui import config
from cifartui.cli import main
from cifartui.core import data as data_mod
from cifartui.core.data import DataError, load_data
from cifartui.preflight import _check_image_folder

from support import REAL_DATA, tiny_overrides

needs_real = pytest.mark.skipif(not REAL_DATA.exists(), reason="../shared/data/cifar100-real is not beside this checkout")


def cfg(**values):
    return config.load(None, [f"{k}={v}" for k, v in values.items()]).data


def notes_of():
    notes = []
    return notes, lambda level, msg, progress=None: notes.append((level, msg))


def copy_real(dest, cls, n, split="train"):
    dest.mkdir(parents=True, exist_ok=True)
    files = sorted((REAL_DATA / split / cls).iterdir())[:n]
    for f in files:
        shutil.copy(f, dest / f.name)
    return [dest / f.name for f in files]


def png16(path, arr):
    """A real 16-bit PNG written byte by byte (Pillow cannot write 16-bit RGB): arr uint16 (H, W) or (H, W, 3)."""
    arr = np.asarray(arr, dtype=">u2")
    h, w = arr.shape[:2]
    colour = 0 if arr.ndim == 2 else {2: 4, 3: 2, 4: 6}[arr.shape[2]]
    raw = b"".join(b"\x00" + arr[r].tobytes() for r in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def exif_jpeg(path, w, h, orientation):
    """Left half red, right half blue, stored sideways with an EXIF orientation tag."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = (255, 0, 0)
    arr[:, w // 2:] = (0, 0, 255)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(path, quality=95, exif=exif)


def rows(x):
    return {bytes(t.numpy().tobytes()) for t in x}


# -- links, hidden junk, empty classes ------------------------------------------------------------
def hostile_folder(root):
    apple = copy_real(root / "apple", "apple", 6)
    boy = copy_real(root / "boy", "boy", 6)
    (root / "apple" / "._0000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble junk")  # sorts first
    (root / "apple" / "loop").symlink_to(root / "apple", target_is_directory=True)  # a loop
    (root / "apple" / "up").symlink_to(root, target_is_directory=True)  # the parent: every class again
    (root / "boy" / "apples").symlink_to(root / "apple", target_is_directory=True)  # another class folder
    (root / "apple" / "again.png").symlink_to(apple[0])  # the same file twice in a class
    (root / "apple" / "zz_boy.png").symlink_to(boy[0])  # a link into another class: the real file wins
    (root / "boy" / "rel.png").symlink_to(os.path.relpath(boy[1], root / "boy"))  # relative link
    (root / "boy" / "dangling.png").symlink_to(root / "gone.png")  # points nowhere: unreadable, listed
    (root / "boy" / "cyc1.png").symlink_to(root / "boy" / "cyc2.png")  # a cycle of file links: unreadable, listed
    (root / "boy" / "cyc2.png").symlink_to(root / "boy" / "cyc1.png")
    for hidden in (root / ".ipynb_checkpoints", root / "apple" / ".ipynb_checkpoints", root / "__MACOSX" / "apple"):
        hidden.mkdir(parents=True)
        shutil.copy(apple[1], hidden / "0001-checkpoint.png")
    (root / "__MACOSX" / "apple" / "._0000.png").write_bytes(b"junk")
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("not a class")
    return apple, boy


@needs_real
def test_links_hidden_and_empty_folders_count_each_real_image_once(tmp_path):
    root = tmp_path / "flowers"
    apple, boy = hostile_folder(root)
    notes, notify = notes_of()
    b = load_data(cfg(**{"data.source": "imagefolder", "data.root": str(root), "data.val_fraction": 0.2}), 0, notify=notify)
    assert b.class_names == ["apple", "boy"] and b.train_x.shape[1:] == (3, 32, 32)  # native size despite ._ first
    xs = torch.cat([b.train_x, b.val_x, b.test_x])
    ys = torch.cat([b.train_y, b.val_y, b.test_y])
    assert len(ys) == 12 and len(rows(xs)) == 12, "each of the 12 real images exactly once"
    assert torch.bincount(ys).tolist() == [6, 6]
    assert not rows(b.test_x) & rows(b.train_x) and not rows(b.test_x) & rows(b.val_x)
    # the boy image linked from apple/ is labelled boy (the real file), not apple
    boy0 = np.asarray(Image.open(boy[0])).transpose(2, 0, 1).tobytes()
    assert [int(y) for x, y in zip(xs, ys) if x.numpy().tobytes() == boy0] == [1]
    text = "\n".join(m for lv, m in notes if lv == "warning")
    assert "Did not follow 3 symlinked folder(s)" in text
    assert all(str(root / p) in text for p in ("apple/loop", "apple/up", "boy/apples"))
    assert "Skipped 3 duplicate image(s)" in text and "again.png" in text and "zz_boy.png" in text and "rel.png" in text
    assert "Skipped 3 unreadable image(s)" in text and all(f in text for f in ("dangling.png", "cyc1.png", "cyc2.png"))
    assert "empty/ (no image files)" in text
    assert "ipynb" not in text and "MACOSX" not in text and "._0000" not in text  # hidden: silently not data


@needs_real
def test_image_size_null_takes_the_first_readable_image(tmp_path):
    copy_real(tmp_path / "apple", "apple", 4)
    copy_real(tmp_path / "boy", "boy", 4)
    (tmp_path / "apple" / "-torn.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")  # sorted first, not hidden
    (tmp_path / "apple" / "-text.jpg").write_text("a text file named like a photo")
    notes, notify = notes_of()
    b = load_data(cfg(**{"data.source": "imagefolder", "data.root": str(tmp_path), "data.val_fraction": 0.25}), 0, notify=notify)
    assert b.image_size == 32 and len(b.train_y) + len(b.val_y) + len(b.test_y) == 8
    assert any("Skipped 2 unreadable image(s)" in m and "-torn.png" in m and "-text.jpg" in m for _l, m in notes)


def test_a_class_of_unreadable_images_is_dropped_with_a_warning(tmp_path):
    for c, v in (("cat", 10), ("dog", 90), ("eel", 170)):
        (tmp_path / c).mkdir()
        for i in range(4):
            Image.fromarray(np.full((8, 8, 3), v + i, np.uint8)).save(tmp_path / c / f"{i}.png")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"not a png")
    notes, notify = notes_of()
    b = load_data(cfg(**{"data.source": "imagefolder", "data.root": str(tmp_path), "data.val_fraction": 0.25}), 0, notify=notify)
    assert b.class_names == ["cat", "dog", "eel"]
    assert sorted(torch.cat([b.train_y, b.val_y, b.test_y]).tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    # labels still match the pixels after the remap: cat dark, eel bright
    xs, ys = torch.cat([b.train_x, b.val_x, b.test_x]), torch.cat([b.train_y, b.val_y, b.test_y])
    assert xs[ys == 0].max() < 20 and xs[ys == 2].min() >= 170
    assert any("Ignored 1 class folder(s)" in m and "bad/ (no readable image)" in m for _l, m in notes)


def test_an_unreadable_class_folder_is_named_and_dropped(tmp_path, monkeypatch):
    for c in ("cat", "dog", "locked"):
        (tmp_path / c).mkdir()
        for i in range(4):
            Image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)).save(tmp_path / c / f"{i}.png")
    (tmp_path / "dog" / "sub").mkdir()
    real = os.scandir

    def scandir(path="."):  # root can read anything: simulate chmod 000
        if os.path.basename(os.fspath(path)) in ("locked", "sub"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    notes, notify = notes_of()
    b = load_data(cfg(**{"data.source": "imagefolder", "data.root": str(tmp_path), "data.val_fraction": 0.25}), 0, notify=notify)
    assert b.class_names == ["cat", "dog"]
    text = "\n".join(m for _l, m in notes)
    assert "locked/ (cannot be read: Permission denied)" in text
    assert "Skipped 1 unreadable folder(s)" in text and str(tmp_path / "dog" / "sub") in text


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 folder anyway")
def test_chmod_000_class_folder(tmp_path):
    for c in ("cat", "dog", "locked"):
        (tmp_path / c).mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / c / "0.png")
        Image.fromarray(np.ones((8, 8, 3), np.uint8)).save(tmp_path / c / "1.png")
    (tmp_path / "locked").chmod(0)
    try:
        notes, notify = notes_of()
        b = load_data(cfg(**{"data.source": "imagefolder", "data.root": str(tmp_path), "data.val_fraction": 0.25}), 0, notify=notify)
        assert b.class_names == ["cat", "dog"] and any("locked/ (cannot be read" in m for _l, m in notes)
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_only_symlinked_class_folders_is_a_clear_error(tmp_path):
    for c in ("cat", "dog"):
        (tmp_path / "real" / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(tmp_path / "real" / c / f"{i}.png")
        (tmp_path / "links").mkdir(exist_ok=True)
        (tmp_path / "links" / c).symlink_to(tmp_path / "real" / c, target_is_directory=True)
    with pytest.raises(DataError, match="holds no class folders(.|\n)*Symlinked folders are not followed"):
        load_data(cfg(**{"data.source": "imagefolder", "data.root": str(tmp_path / "links")}), 0)
    # data.root itself may be a link
    (tmp_path / "root_link").symlink_to(tmp_path / "real", target_is_directory=True)
    b = load_data(cfg(**{"data.source": "imagefolder", "data.root": str(tmp_path / "root_link"), "data.val_fraction": 0.5}), 0)
    assert b.class_names == ["cat", "dog"]


@needs_real
def test_split_layout_never_puts_one_file_in_two_splits(tmp_path):
    train = [copy_real(tmp_path / "train" / c, c, 5) for c in ("apple", "boy")]
    copy_real(tmp_path / "val" / "apple", "apple", 2, split="test")
    copy_real(tmp_path / "val" / "boy", "boy", 2, split="test")
    copy_real(tmp_path / "test" / "apple", "apple", 3, split="test")
    (tmp_path / "test" / "boy").mkdir()
    (tmp_path / "test" / "boy" / "leak.png").symlink_to(train[1][0])  # a training image linked into test
    os.link(train[0][0], tmp_path / "test" / "apple" / "hard.png")  # a hard link: the same file too
    (tmp_path / "test" / "empty").mkdir()  # an empty class folder in test: harmless
    notes, notify = notes_of()
    b = load_data(cfg(**{"data.source": "imagefolder", "data.root": str(tmp_path)}), 0, notify=notify)
    assert len(b.train_y) == 10 and len(b.val_y) == 4 and len(b.test_y) == 3
    assert not rows(b.test_x) & rows(b.train_x)
    assert any("Skipped 2 duplicate image(s)" in m and "leak.png" in m and "hard.png" in m for _l, m in notes)
    # test/ as a link to train/: every image already counted: an error, not an inflated score
    shutil.rmtree(tmp_path / "test")
    (tmp_path / "test").symlink_to(tmp_path / "train", target_is_directory=True)
    with pytest.raises(DataError, match="every image under .*test.* is a link to an image already counted"):
        load_data(cfg(**{"data.source": "imagefolder", "data.root": str(tmp_path)}), 0)


def test_preflight_counts_classes_as_the_loader_does(tmp_path):
    (tmp_path / "cat").mkdir()
    for junk in (".ipynb_checkpoints", "__MACOSX"):
        (tmp_path / junk).mkdir()
    (tmp_path / "dog").symlink_to(tmp_path / "cat", target_is_directory=True)
    with pytest.raises(DataError, match=r"single class folder \(cat\)"):
        _check_image_folder(tmp_path)


# -- decoding like the user means ------------------------------------------------------------------
def test_16_bit_png_keeps_its_grays(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (64, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")  # Pillow writes mode I;16 as a 16-bit gray PNG
    with Image.open(tmp_path / "ramp.png") as im:
        assert im.mode == "I;16"
    got = data_mod._decode(str(tmp_path / "ramp.png"), None)
    assert got.shape == (64, 64, 3) and got.dtype == np.uint8
    assert np.array_equal(got[0, :, 0], np.rint(ramp[0] / 257).astype(np.uint8)) and (got[..., 0] == got[..., 2]).all()
    assert got[0, 0, 0] == 0 and got[0, -1, 0] == 255 and abs(int(got[0, 32, 0]) - 130) <= 1  # 65535*32/63 / 257
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(tmp_path / "mid.png")
    assert (data_mod._decode(str(tmp_path / "mid.png"), None) == 128).all()  # mid-gray, not white
    png16(tmp_path / "rgb16.png", np.stack([np.full((8, 8), v, np.uint16) for v in (65535, 32768, 4096)], -1))
    assert data_mod._decode(str(tmp_path / "rgb16.png"), None)[0, 0].tolist() == [255, 128, 16]
    png16(tmp_path / "gray16.png", np.full((8, 8), 16384, np.uint16))  # written byte by byte, not by Pillow
    assert (data_mod._decode(str(tmp_path / "gray16.png"), None) == 64).all()


@pytest.mark.parametrize("name, make, want", [
    ("int32_16bit_values.tif", lambda: Image.fromarray(np.full((8, 8), 32768, np.int32)), 128),
    ("int32_8bit_values.tif", lambda: Image.fromarray(np.full((8, 8), 200, np.int32)), 200),
    ("float_unit.tif", lambda: Image.fromarray(np.full((8, 8), 0.5, np.float32)), 128),
    ("float_bytes.tif", lambda: Image.fromarray(np.full((8, 8), 100.0, np.float32)), 100),
    ("float_nan.tif", lambda: Image.fromarray(np.where(np.eye(8, dtype=bool), np.nan, 0.25).astype(np.float32)), 64),
    ("i16.tif", lambda: Image.fromarray(np.full((8, 8), 65535, np.uint16)), 255),
    ("gray.png", lambda: Image.fromarray(np.full((8, 8), 77, np.uint8)), 77),
    ("bilevel.png", lambda: Image.fromarray(np.full((8, 8), 255, np.uint8)).convert("1"), 255),
])
def test_high_depth_and_gray_modes_scale_by_their_range(tmp_path, name, make, want):
    make().save(tmp_path / name)
    got = data_mod._decode(str(tmp_path / name), None)
    assert got.shape == (8, 8, 3) and got.dtype == np.uint8
    assert int(np.median(got)) == want and (got[..., 0] == got[..., 1]).all()


def test_signed_int_image_is_stretched_by_its_own_range(tmp_path):
    Image.fromarray(np.array([[-1000, 0], [1000, 3000]], np.int32)).save(tmp_path / "signed.tif")
    got = data_mod._decode(str(tmp_path / "signed.tif"), None)[..., 0]
    assert got.tolist() == [[0, 64], [128, 255]]


def test_palette_and_alpha_become_rgb_on_black(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :4] = (200, 100, 50)
    rgb[:, 4:] = (10, 220, 30)
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=4).save(tmp_path / "pal.png")
    with Image.open(tmp_path / "pal.png") as im:
        assert im.mode == "P"
    assert data_mod._decode(str(tmp_path / "pal.png"), None)[0, 0].tolist() == [200, 100, 50]
    rgba = np.dstack([rgb, np.full((8, 8), 128, np.uint8)])
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    got = data_mod._decode(str(tmp_path / "rgba.png"), None)
    assert got[0, 0].tolist() == [0, 0, 0] and got[1, 0].tolist() == [100, 50, 25]  # composited on black
    Image.fromarray(np.dstack([np.full((8, 8), 200, np.uint8), np.full((8, 8), 255, np.uint8)]), "LA").save(tmp_path / "la.png")
    assert (data_mod._decode(str(tmp_path / "la.png"), None) == 200).all()
    pal = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=4)
    pal.info["transparency"] = pal.getpixel((0, 0))  # the reddish colour is transparent (tRNS)
    pal.save(tmp_path / "pal_trns.png", transparency=pal.getpixel((0, 0)))
    got = data_mod._decode(str(tmp_path / "pal_trns.png"), None)
    assert got[0, 0].tolist() == [0, 0, 0] and got[0, 7].tolist() == [10, 220, 30]
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    assert np.abs(data_mod._decode(str(tmp_path / "cmyk.jpg"), None)[0, 0].astype(int) - [200, 100, 50]).max() < 12


@pytest.mark.parametrize("orientation, top, shape", [(1, None, (20, 40)), (6, "red", (40, 20)), (8, "blue", (40, 20)),
                                                      (3, None, (20, 40))])
def test_exif_orientation_is_applied(tmp_path, orientation, top, shape):
    exif_jpeg(tmp_path / "p.jpg", 40, 20, orientation)
    got = data_mod._decode(str(tmp_path / "p.jpg"), None)
    assert got.shape[:2] == shape
    red = got[..., 0].astype(int) > 128
    if top is None:  # not rotated a quarter turn: red on the left (1) or the right (3, upside down)
        assert red[:, : shape[1] // 2].mean() > 0.9 if orientation == 1 else red[:, shape[1] // 2:].mean() > 0.9
    else:
        half = red[: shape[0] // 2] if top == "red" else red[shape[0] // 2:]
        assert half.mean() > 0.9 and red.mean() == pytest.approx(0.5, abs=0.05)


@needs_real
def test_mixed_modes_in_one_run_and_the_cli_does_not_abort(tmp_path, capsys):
    root = tmp_path / "data"
    hostile_folder(root)
    for c in ("apple", "boy"):
        exif_jpeg(root / c / "rot.jpg", 32, 32, 6)
        Image.fromarray(np.full((32, 32), 32768, np.uint16)).save(root / c / "deep.png")
        Image.fromarray(np.full((32, 32, 4), 128, np.uint8), "RGBA").save(root / c / "alpha.png")
    notes, notify = notes_of()
    b = load_data(cfg(**{"data.source": "imagefolder", "data.root": str(root), "data.val_fraction": 0.2}), 0, notify=notify)
    xs = torch.cat([b.train_x, b.val_x, b.test_x])
    assert len(xs) == 18 and b.image_size == 32
    assert sum(bool((x == 128).all()) for x in xs) == 2  # the 16-bit mid-grays, not white
    rotated = [x for x in xs if x[0, :16].float().mean() > 200 and x[2, :16].float().mean() < 50]
    assert len(rotated) == 2 and all(x[2, 16:].float().mean() > 200 for x in rotated)  # red on top, blue below
    sets = tiny_overrides(tmp_path / "runs", **{"data.source": "imagefolder", "data.root": str(root), "data.val_fraction": 0.2})
    code = main(["--headless", "train", "configs/demo.yaml", *sum((["--set", s] for s in sets), [])])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Did not follow 3 symlinked folder(s)" in out.out + out.err
