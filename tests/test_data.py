import pickle
import tarfile
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from cifartui import config
from cifartui.core import data as data_mod
from cifartui.core.data import DataError, load_data

from support import REAL_DATA


def cfg(**values):
    return config.load(None, [f"{k}={v}" for k, v in values.items()]).data


# -- synthetic -------------------------------------------------------------------------------------
def test_synthetic_is_seeded_shaped_and_class_dependent():
    b = load_data(cfg(**{"data.num_classes": 6, "data.train_size": 600, "data.test_size": 120, "data.synthetic_size": 24}), seed=0)
    again = load_data(cfg(**{"data.num_classes": 6, "data.train_size": 600, "data.test_size": 120, "data.synthetic_size": 24}), seed=0)
    assert torch.equal(b.train_x, again.train_x) and torch.equal(b.val_y, again.val_y)
    assert b.train_x.dtype == torch.uint8 and b.train_x.shape[1:] == (3, 24, 24)
    assert len(b.train_y) + len(b.val_y) == 600 and len(b.test_y) == 120 and b.num_classes == 6
    # learnable: class means differ far more than the noise of a class mean
    means = torch.stack([b.train_x[b.train_y == c].float().mean(0) for c in range(6)])
    assert (means[0] - means[2]).abs().mean() > 5


def test_validation_split_is_fixed_by_the_seed_and_stratified():
    c = cfg(**{"data.num_classes": 5, "data.train_size": 500})
    a, b, other = load_data(c, 7), load_data(c, 7), load_data(c, 8)
    assert torch.equal(a.val_x, b.val_x) and not torch.equal(a.val_x, other.val_x)
    assert torch.bincount(a.val_y).tolist() == [10] * 5


def test_class_subset_remaps_labels():
    b = load_data(cfg(**{"data.num_classes": 5, "data.classes": "[class_3, class_1]"}), 0)
    assert b.class_names == ["class_3", "class_1"] and set(b.train_y.tolist()) == {0, 1}
    with pytest.raises(DataError, match="did you mean|Did you mean"):
        load_data(cfg(**{"data.num_classes": 5, "data.classes": "[klass_1]"}), 0)


# -- CIFAR in the official python format, built here (no download) ---------------------------------
def _pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def make_cifar100(root, n_train=40, n_test=20, archive=True):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    fine = [f"fine{i}" for i in range(100)]
    for name, n in (("train", n_train), ("test", n_test)):
        labels = [int(i % 100) for i in range(n)]
        _pickle(folder / name, {"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), "fine_labels": labels,
                                "coarse_labels": [lab // 5 for lab in labels], "filenames": [f"{i}.png" for i in range(n)]})
    _pickle(folder / "meta", {"fine_label_names": fine, "coarse_label_names": [f"c{i}" for i in range(20)]})
    if archive:
        with tarfile.open(root / "cifar-100-python.tar.gz", "w:gz") as tar:
            tar.add(folder, arcname="cifar-100-python")
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()


def test_cifar100_from_an_official_format_archive(tmp_path):
    make_cifar100(tmp_path)
    b = load_data(cfg(**{"data.source": "cifar100", "data.root": str(tmp_path), "data.download": "false", "data.val_fraction": 0.25}), 0)
    assert b.num_classes == 100 and b.class_names[:2] == ["fine0", "fine1"]
    assert len(b.train_y) + len(b.val_y) == 40 and len(b.test_y) == 20 and b.train_x.shape[1:] == (3, 32, 32)


def test_cifar10_from_extracted_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        _pickle(folder / name, {"data": rng.integers(0, 255, (10, 3072), dtype=np.uint8), "labels": list(range(10))})
    _pickle(folder / "batches.meta", {"label_names": [f"n{i}" for i in range(10)]})
    b = load_data(cfg(**{"data.source": "cifar10", "data.root": str(tmp_path), "data.download": "false", "data.val_fraction": 0.2}), 0)
    assert b.num_classes == 10 and len(b.train_y) + len(b.val_y) == 50 and len(b.test_y) == 10


def test_cifar_offline_download_gives_a_clear_error(tmp_path, monkeypatch):
    import urllib.request

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as e:
        load_data(cfg(**{"data.source": "cifar100", "data.root": str(tmp_path)}), 0)
    msg = str(e.value)
    assert "cannot download CIFAR-100" in msg and "data.root" in msg and "synthetic" in msg
    assert not any(tmp_path.iterdir()), "no partial file left behind"


def test_download_shows_progress_and_checks_integrity(tmp_path, monkeypatch):
    import hashlib
    import io
    import urllib.request

    payload = bytes(range(256)) * 4096  # 1 MiB

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Response(payload))
    notes = []
    dest = tmp_path / "a.tar.gz"
    data_mod.download("http://x/a.tar.gz", dest, hashlib.md5(payload).hexdigest(), "A",
                      lambda lv, m, progress=None: notes.append((m, progress)))
    assert dest.read_bytes() == payload and notes[-1] == ("Downloading A: 100% of 1 MB", 1.0)
    assert notes[0][1] > 0 and [p for _, p in notes] == sorted(p for _, p in notes)  # fractions for the app's bar
    with pytest.raises(OSError, match="md5 mismatch"):
        data_mod.download("http://x/a.tar.gz", tmp_path / "b.tar.gz", "0" * 32, "A", lambda *a, **k: None)
    assert not (tmp_path / "b.tar.gz").exists() and not (tmp_path / "b.tar.gz.partial").exists()


def test_cifar_missing_without_download(tmp_path):
    with pytest.raises(DataError, match="no CIFAR-10 files"):
        load_data(cfg(**{"data.source": "cifar10", "data.root": str(tmp_path), "data.download": "false"}), 0)


def test_cifar_pickle_that_runs_code_is_refused(tmp_path):
    make_cifar100(tmp_path, archive=False)

    class Evil:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path('PWNED').touch()",))

    _pickle(tmp_path / "cifar-100-python" / "meta", {"fine_label_names": Evil()})
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_data(cfg(**{"data.source": "cifar100", "data.root": str(tmp_path), "data.download": "false"}), 0)
    assert not (tmp_path / "PWNED").exists()


# -- image folders ---------------------------------------------------------------------------------
def make_folder(root, classes=("cat", "dog"), n=6, size=(20, 20)):
    for c_i, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = np.full((size[1], size[0], 3), 40 * c_i + i, dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.png")


def test_imagefolder_single_folder_carves_val_and_test(tmp_path):
    make_folder(tmp_path, n=10)
    b = load_data(cfg(**{"data.source": "imagefolder", "data.root": str(tmp_path), "data.image_size": 16, "data.val_fraction": 0.2}), 0)
    assert b.class_names == ["cat", "dog"] and b.train_x.shape[1:] == (3, 16, 16)
    assert len(b.train_y) + len(b.val_y) + len(b.test_y) == 20 and len(b.val_y) > 0 and len(b.test_y) > 0


def test_imagefolder_train_valid_layout_of_any_size(tmp_path):
    make_folder(tmp_path / "train", n=4, size=(50, 30))
    make_folder(tmp_path / "valid", n=2, size=(40, 40))
    b = load_data(cfg(**{"data.source": "imagefolder", "data.root": str(tmp_path), "data.image_size": 24}), 0)
    assert len(b.val_y) == 4 and torch.equal(b.test_y, b.val_y) and b.train_x.shape[-1] == 24


def test_imagefolder_reports_unreadable_images_by_path(tmp_path):
    make_folder(tmp_path, n=6)
    (tmp_path / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    notes = []
    b = load_data(cfg(**{"data.source": "imagefolder", "data.root": str(tmp_path), "data.val_fraction": 0.2}), 0,
                  notify=lambda level, msg: notes.append((level, msg)))
    assert len(b.train_y) + len(b.val_y) + len(b.test_y) == 12
    assert any(level == "warning" and "broken.png" in msg for level, msg in notes)


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data(cfg(**{"data.source": "imagefolder", "data.root": str(tmp_path / "nope")}), 0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_data(cfg(**{"data.source": "imagefolder", "data.root": str(tmp_path / "empty")}), 0)
    make_folder(tmp_path / "one", classes=("cat",), n=6)
    with pytest.raises(DataError, match="needs two or more"):
        load_data(cfg(**{"data.source": "imagefolder", "data.root": str(tmp_path / "one")}), 0)
    make_folder(tmp_path / "mixed", n=3, size=(20, 20))
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(tmp_path / "mixed" / "dog" / "big.png")
    with pytest.raises(DataError, match="data.image_size"):
        load_data(cfg(**{"data.source": "imagefolder", "data.root": str(tmp_path / "mixed")}), 0)


@pytest.mark.skipif(not REAL_DATA.exists(), reason="../shared/data/cifar100-real is not beside this checkout")
def test_real_cifar100_images_load_in_official_order():
    b = load_data(cfg(**{"data.source": "imagefolder", "data.root": str(REAL_DATA), "data.classes": "[apple, boy, girl]"}), 0)
    assert b.class_names == ["apple", "boy", "girl"] and b.train_x.shape[1:] == (3, 32, 32)
    assert len(b.train_y) + len(b.val_y) == 300 and len(b.test_y) == 90
    full = (REAL_DATA / "fine_label_names.txt").read_text().split()
    assert sorted(p.name for p in (REAL_DATA / "train").iterdir() if p.is_dir()) == full
