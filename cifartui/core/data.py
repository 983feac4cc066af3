"""Datasets → one :class:`DataBundle`: uint8 image tensors (N, 3, H, W), labels, class names, mean/std.

Everything is decoded once, up front; the training loop never touches PIL (see loader.py).
Sources: cifar10 / cifar100 (official python archives, downloaded through torchvision's helper),
imagefolder (torchvision ImageFolder layout), synthetic (generated, learnable, no network).
"""

from __future__ import annotations

import difflib
import functools
import os
import pickle
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from cifartui.config import DataConfig
from cifartui.errors import UserError

Notify = Callable[..., None]  # (level, message, progress=None): progress is a fraction for long tasks
SYNTHETIC_SEED = 12345  # one fixed synthetic dataset: seeds then compare training, not data
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class DataError(UserError):
    """A data problem; the message names the field, the value and the fix."""


@dataclass
class DataBundle:
    train_x: torch.Tensor  # uint8 [N, 3, H, W]
    train_y: torch.Tensor  # int64 [N]
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_names: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str
    # split -> each image's stable reference, in split order (see "image references" below): what `suspects`
    # reports and `data.exclude` lists
    refs: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])


def _quiet(level: str, message: str) -> None:
    pass


# -- CIFAR ----------------------------------------------------------------------------------------
class _SafeUnpickler(pickle.Unpickler):
    """CIFAR's official batches are pickles; allow only what they contain (numpy arrays, builtins),
    so a doctored archive cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("builtins", "bytes"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch file")


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        obj = _SafeUnpickler(f, encoding="latin1").load()
    if not isinstance(obj, dict):
        raise DataError(f"data.root: {path} is not a CIFAR batch file")
    return obj


def cifar_meta(source: str):
    from torchvision.datasets import CIFAR10, CIFAR100

    return CIFAR100 if source == "cifar100" else CIFAR10


def download(url: str, dest: Path, md5: str | None, label: str, notify: Notify) -> None:
    """Fetch ``url`` to ``dest`` through ``dest.partial`` (renamed only when whole and its md5 matches).

    Progress goes two ways: a tqdm bar on stderr for a terminal, and a log event every 10% so the app
    (and a log file) can show it too.
    """
    import urllib.request

    from torch.utils.model_zoo import tqdm
    from torchvision.datasets.utils import check_integrity

    partial = dest.with_name(dest.name + ".partial")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "cifartui"}), timeout=30) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            done, next_note = 0, 10
            with open(partial, "wb") as f, tqdm(total=total or None, unit="B", unit_scale=True, desc=label) as bar:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
                    if total and 100 * done // total >= next_note:
                        notify("info", f"Downloading {label}: {100 * done // total}% of {total / 2**20:.0f} MB",
                               progress=done / total)
                        next_note += 10
        if md5 and not check_integrity(str(partial), md5):
            raise OSError(f"the download of {url} is corrupt (md5 mismatch)")
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)


def _ensure_cifar(cfg: DataConfig, notify: Notify) -> Path:
    ds = cifar_meta(cfg.source)
    root = Path(cfg.root).expanduser()
    folder = root / ds.base_folder
    if folder.is_dir():
        return folder
    archive = root / ds.filename
    label = "CIFAR-100" if cfg.source == "cifar100" else "CIFAR-10"
    if not archive.exists():
        if not cfg.download:
            raise DataError(
                f"data.root: no {label} files in {str(root)!r} (looked for {ds.base_folder}/ and {ds.filename}).\n"
                f"  Set data.download=true, or point data.root at a folder holding {ds.base_folder}/, "
                "or use data.source=synthetic / imagefolder."
            )
        notify("info", f"Downloading {label} ({ds.url}) to {root} ...")
        try:
            root.mkdir(parents=True, exist_ok=True)
            download(ds.url, archive, ds.tgz_md5, label, notify)
        except OSError as exc:  # URLError, socket errors, no space, permission
            raise DataError(
                f"data.source={cfg.source}: cannot download {label} from {ds.url} ({exc}).\n"
                f"  Offline? Copy {ds.filename} or its extracted {ds.base_folder}/ folder into data.root "
                f"(now {str(root)!r}), or use data.source=synthetic or imagefolder."
            ) from None
    notify("info", f"Extracting {archive.name} ...")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(
            f"data.root: {archive} is not a readable {label} archive ({exc}).\n"
            "  Delete it and download again (data.download=true), or replace it with a good copy."
        ) from None
    if not folder.is_dir():
        raise DataError(f"data.root: {archive} did not contain {ds.base_folder}/")
    return folder


def _load_cifar(cfg: DataConfig, notify: Notify):
    folder = _ensure_cifar(cfg, notify)
    ds = cifar_meta(cfg.source)

    def read(files) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for name, _md5 in files:
            path = folder / name
            if not path.exists():
                raise DataError(f"data.root: {path} is missing; the {folder.name}/ folder is incomplete.")
            entry = _unpickle(path)
            data = np.asarray(entry["data"], dtype=np.uint8)
            xs.append(data.reshape(-1, 3, 32, 32))
            ys.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
        return torch.from_numpy(np.concatenate(xs)), torch.tensor(ys, dtype=torch.int64)

    train_x, train_y = read(ds.train_list)
    test_x, test_y = read(ds.test_list)
    meta = _unpickle(folder / ds.meta["filename"])
    names = [str(n) for n in meta[ds.meta["key"]]]
    return train_x, train_y, None, test_x, test_y, names, _index_refs(cfg.source, len(train_y), len(test_y))


# -- image folders --------------------------------------------------------------------------------
def _hidden(name: str) -> bool:
    """Dot files and folders (``.ipynb_checkpoints``, macOS ``._x.png``) and ``__MACOSX`` are never data."""
    return name.startswith(".") or name == "__MACOSX"


def _high_depth_to_8bit(im) -> np.ndarray:
    """One-channel images deeper than 8 bits -> uint8, scaled by the range their mode can hold:
    16-bit (I;16*) /257; I (32-bit int) and F (float) by the first range their values fit in:
    [0, 1] (float only) x255, [0, 255] as is, [0, 65535] /257, else the image's own min..max."""
    a = np.asarray(im)
    if im.mode.startswith("I;16"):
        return np.rint(a.astype(np.float64) / 257.0).astype(np.uint8)
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    if im.mode == "F" and lo >= 0 and hi <= 1:
        a = a * 255.0
    elif lo >= 0 and hi <= 255:
        pass
    elif lo >= 0 and hi <= 65535:
        a = a / 257.0
    else:
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _to_rgb(im):
    """A PIL image as the user sees it, in 8-bit RGB: EXIF orientation applied, high bit depths scaled
    (not clipped to white), palettes expanded, grayscale repeated, alpha composited on black."""
    from PIL import Image, ImageOps

    im = ImageOps.exif_transpose(im)
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        return Image.fromarray(_high_depth_to_8bit(im), "L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info or im.mode in ("PA", "LA", "La", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        a = np.asarray(im, dtype=np.uint16)
        rgb = (a[..., :3] * a[..., 3:] + 127) // 255  # composite on black: a transparent pixel is black
        return Image.fromarray(rgb.astype(np.uint8), "RGB")
    return im.convert("RGB")


def _decode(path: str, size: int | None) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = _to_rgb(im)
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


@dataclass
class _Scan:
    classes: dict  # class name -> image paths (each real file once), in sorted walk order
    unlisted: dict  # class name -> why its folder could not be read
    bad_dirs: list  # subfolders that could not be read: "path (why)"
    links: list  # symlinked folders, not followed
    duplicates: list  # (path skipped, path of the same real file already counted)


def _scan_folder(folder: Path, seen: dict) -> _Scan:
    """Class folders of ``folder`` and their images, like torchvision's ImageFolder but: hidden entries
    skipped, symlinked folders not followed, each real file (device, inode) counted once across every
    call sharing ``seen`` (a real file wins over a link to it; earlier splits win over later ones)."""
    try:
        top = sorted(os.scandir(folder), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        top = []
    except OSError as exc:
        raise DataError(f"data.root: {str(folder)!r} cannot be read ({exc.strerror or exc}).\n"
                        "  Fix its permissions or point data.root elsewhere.") from None
    scan = _Scan({}, {}, [], [], [])
    items: list[tuple[str, str, bool, tuple | None]] = []  # (class, path, via a link, real file key)
    for entry in top:
        if _hidden(entry.name):
            continue
        try:
            if entry.is_symlink():
                if entry.is_dir():
                    scan.links.append(entry.path)
                continue
            if not entry.is_dir(follow_symlinks=False):
                continue  # loose files beside the class folders are not images of any class
        except OSError:
            continue
        scan.classes[entry.name] = []
        stack = [entry.path]
        while stack:
            d = stack.pop()
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError as exc:
                why = exc.strerror or str(exc)
                if d == entry.path:
                    scan.unlisted[entry.name] = f"cannot be read: {why}"
                else:
                    scan.bad_dirs.append(f"{d} ({why})")
                continue
            subdirs = []
            for e in entries:
                if _hidden(e.name):
                    continue
                try:
                    if e.is_dir(follow_symlinks=False):
                        subdirs.append(e.path)
                        continue
                    link = e.is_symlink()
                    if link and e.is_dir():
                        scan.links.append(e.path)
                        continue
                except OSError:  # e.g. a cycle of file links: kept, so it is listed as unreadable
                    link = True
                if not e.name.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                try:
                    st = os.stat(e.path)
                    key = (st.st_dev, st.st_ino)
                except OSError:
                    key = None  # a dangling link: kept, so it is listed as unreadable when decoded
                items.append((entry.name, e.path, link, key))
            stack.extend(reversed(subdirs))
    keep = set()
    for links_pass in (False, True):
        for i, (_c, path, link, key) in enumerate(items):
            if link != links_pass:
                continue
            if key is not None and key in seen:
                scan.duplicates.append((path, seen[key]))
                continue
            if key is not None:
                seen[key] = path
            keep.add(i)
    for i, (cls, path, _l, _k) in enumerate(items):
        if i in keep:
            scan.classes[cls].append(path)
    return scan


def _listing(lines: list[str], limit: int = 10) -> str:
    more = f"\n    ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return "\n    " + "\n    ".join(lines[:limit]) + more


def _read_folder(folder: Path, size: int | None, class_names: list[str] | None, notify: Notify,
                 seen: dict | None = None):
    scan = _scan_folder(folder, {} if seen is None else seen)
    if scan.links:
        notify("warning", f"Did not follow {len(scan.links)} symlinked folder(s) in {folder} (a link could loop or "
                          f"count the same images twice; move or copy the images in instead):{_listing(scan.links)}")
    if scan.duplicates:
        notify("warning", f"Skipped {len(scan.duplicates)} duplicate image(s) in {folder}: links to a file already "
                          f"counted, so no image is in two places:{_listing([f'{p} (= {q})' for p, q in scan.duplicates])}")
    if scan.bad_dirs:
        notify("warning", f"Skipped {len(scan.bad_dirs)} unreadable folder(s) in {folder}:{_listing(scan.bad_dirs)}")
    if not scan.classes:
        hint = f"\n  Symlinked folders are not followed: {', '.join(scan.links[:3])}." if scan.links else ""
        raise DataError(
            f"data.root: {str(folder)!r} holds no class folders.\n"
            f"  Expected <root>/<class>/<image> (or <root>/train/<class>/... with val/ and test/).{hint}"
        )
    present = [n for n, files in scan.classes.items() if files]
    if class_names is not None:
        missing = [n for n in present if n not in class_names]
        if missing:
            raise DataError(f"data.root: {folder} has classes not in the training set: {', '.join(missing[:5])}")
        index = {n: class_names.index(n) for n in present}
    else:
        index = {n: i for i, n in enumerate(scan.classes)}
    samples = [(p, index[n]) for n in present for p in scan.classes[n]]
    if not samples:
        if scan.duplicates:
            raise DataError(f"data.root: every image under {str(folder)!r} is a link to an image already counted "
                            f"(e.g. {scan.duplicates[0][0]} = {scan.duplicates[0][1]}).\n"
                            "  Give this split its own images.")
        raise DataError(f"data.root: no images ({', '.join(IMAGE_EXTENSIONS)}) under {str(folder)!r}.")

    def load(sample):
        path, label = sample
        try:
            return path, label, _decode(path, size), None
        except Exception as exc:  # PIL raises many types for truncated or corrupt files
            return path, label, None, f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        results = list(pool.map(load, samples, chunksize=64))
    bad = [(p, why) for p, _l, a, why in results if a is None]
    good = [(p, a, l) for p, l, a, _w in results if a is not None]
    if bad:
        notify("warning", f"Skipped {len(bad)} unreadable image(s) in {folder}:{_listing([f'{p} ({w})' for p, w in bad])}")
    if not good:
        raise DataError(f"data.root: none of the {len(samples)} images under {str(folder)!r} could be read.")
    if size is None:  # native size: the first readable image sets it, every other must match
        ref_path, ref, _ = good[0]
        h, w = ref.shape[:2]
        if h != w:
            raise DataError(f"data.image_size: null needs square images; {ref_path} is {w}x{h}. Set data.image_size, e.g. 224.")
        other = next(((p, a) for p, a, _l in good if a.shape[:2] != (h, w)), None)
        if other is not None:
            raise DataError(
                f"data.image_size: null but the images have different sizes (e.g. {other[0]}: "
                f"{other[1].shape[1]}x{other[1].shape[0]}, {ref_path}: {w}x{h}).\n"
                "  Set data.image_size, e.g. 224, to resize them all."
            )
    x = torch.from_numpy(np.stack([a for _p, a, _l in good])).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor([l for _p, _a, l in good], dtype=torch.int64)
    paths = [p for p, _a, _l in good]
    if class_names is not None:
        return x, y, class_names, paths
    names = list(scan.classes)
    counts = torch.bincount(y, minlength=len(names)).tolist()
    dropped = [n for n, c in zip(names, counts) if c == 0]
    if dropped:  # a class the model could never learn: drop it, say so
        why = {n: scan.unlisted.get(n) or ("no readable image" if scan.classes[n] else "no image files") for n in dropped}
        notify("warning", f"Ignored {len(dropped)} class folder(s) in {folder} with no readable image (not classes of "
                          f"this run):{_listing([f'{n}/ ({why[n]})' for n in dropped])}")
        kept = [i for i, c in enumerate(counts) if c > 0]
        remap = torch.full((len(names),), -1, dtype=torch.int64)
        remap[torch.tensor(kept)] = torch.arange(len(kept))
        y = remap[y]
        names = [names[i] for i in kept]
    return x, y, names, paths


def _load_imagefolder(cfg: DataConfig, notify: Notify):
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root: {str(root)!r} does not exist (data.source=imagefolder).\n  Point data.root at a folder of class folders.")
    size = cfg.image_size
    seen: dict = {}  # real files counted so far, over every split: none lands in two
    train_dir = root / "train"
    if train_dir.is_dir():
        train_x, train_y, names, paths = _read_folder(train_dir, size, None, notify, seen)
        refs = {"train": _path_refs(paths, root)}
        size = size or train_x.shape[-1]
        val = next((root / n for n in ("val", "valid", "validation") if (root / n).is_dir()), None)
        val_x = val_y = None
        if val is not None:
            val_x, val_y, _, paths = _read_folder(val, size, names, notify, seen)
            refs["val"] = _path_refs(paths, root)
        test = root / "test"
        if test.is_dir():
            test_x, test_y, _, paths = _read_folder(test, size, names, notify, seen)
            refs["test"] = _path_refs(paths, root)
        elif val is not None:  # the flower_data layout: train/ and valid/ only; score on valid
            notify("warning", f"No test/ folder in {root}: the final test score uses {val.name}/.")
            test_x, test_y = val_x, val_y
            refs["test"] = refs["val"]
        else:
            test_x = test_y = None
        return train_x, train_y, (val_x, val_y) if val_x is not None else None, test_x, test_y, names, refs
    x, y, names, paths = _read_folder(root, size, None, notify, seen)
    return x, y, None, None, None, names, {"train": _path_refs(paths, root)}


# -- synthetic ------------------------------------------------------------------------------------
def make_synthetic(num_classes: int, n: int, size: int, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-dependent images, learnable but not trivially: classes come in pairs that share a colour
    layout and differ only in their stripe pattern (so the confusion matrix has structure, like
    boy/girl); samples are shifted, brightness-jittered, noisy copies of their class template."""
    g = torch.Generator().manual_seed(SYNTHETIC_SEED)
    layouts = torch.rand((num_classes + 1) // 2, 3, 4, 4, generator=g)
    coarse = layouts[torch.arange(num_classes) // 2]
    templates = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    angle = torch.rand(num_classes, generator=g) * torch.pi
    freq = 1.5 + torch.rand(num_classes, generator=g) * 3
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    phase = xx * torch.cos(angle)[:, None, None] + yy * torch.sin(angle)[:, None, None]
    stripes = torch.sin(freq[:, None, None] * torch.pi * phase)
    templates = 0.75 * templates + 0.25 * (stripes[:, None] * 0.5 + 0.5)
    gs = torch.Generator().manual_seed(SYNTHETIC_SEED + 1 + split_seed)
    y = torch.arange(n) % num_classes
    y = y[torch.randperm(n, generator=gs)]
    imgs = templates[y]
    shift = size // 6
    dx = torch.randint(-shift, shift + 1, (n,), generator=gs)
    dy = torch.randint(-shift, shift + 1, (n,), generator=gs)
    imgs = torch.stack([torch.roll(im, (int(a), int(b)), dims=(1, 2)) for im, a, b in zip(imgs, dy, dx)])
    imgs = imgs * (0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=gs)) + 0.3 * torch.randn(imgs.shape, generator=gs)
    return (imgs.clamp(0, 1) * 255).round().to(torch.uint8), y.to(torch.int64)


def _load_synthetic(cfg: DataConfig, notify: Notify):
    train_x, train_y = make_synthetic(cfg.num_classes, cfg.train_size, cfg.synthetic_size, 0)
    test_x, test_y = make_synthetic(cfg.num_classes, cfg.test_size, cfg.synthetic_size, 1)
    names = [f"class_{i:0{len(str(cfg.num_classes - 1))}d}" for i in range(cfg.num_classes)]
    return train_x, train_y, None, test_x, test_y, names, _index_refs("synthetic", len(train_y), len(test_y))


# -- image references -----------------------------------------------------------------------------
# A stable name for each image, the same in every run over the same data: ``cifar100:train:INDEX`` (the
# index in the official train or test batches), ``synthetic:test:INDEX``, or for image folders the file's
# path relative to data.root (``train/cat/001.jpg``). Evaluations store them beside their predictions;
# ``data.exclude`` lists them.
def _index_refs(source: str, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    return {"train": np.array([f"{source}:train:{i}" for i in range(n_train)]),
            "test": np.array([f"{source}:test:{i}" for i in range(n_test)])}


def _path_refs(paths: list[str], root: Path) -> np.ndarray:
    return np.array([Path(os.path.relpath(p, root)).as_posix() for p in paths])


def _exclude(cfg: DataConfig, parts: dict[str, tuple], notify: Notify) -> tuple:
    """The train split without the images ``data.exclude`` lists. Evaluation splits stay whole (so runs stay
    comparable); a reference to none of this data's images is an error naming it."""
    from cifartui.record.exclude import ExcludeError, read_exclude

    try:
        wanted = read_exclude(Path(cfg.exclude).expanduser())
    except ExcludeError as exc:
        raise DataError(f"data.exclude: {exc}") from None
    known = {split: set(refs.tolist()) for split, (_x, _y, refs) in parts.items()}
    unknown = [r for r in wanted if not any(r in k for k in known.values())]
    if unknown:
        example = str(parts["train"][2][0]) if len(parts["train"][2]) else "?"
        where = f", data.root={cfg.root}" if cfg.source in ("imagefolder", "cifar10", "cifar100") else ""
        raise DataError(f"data.exclude: {len(unknown)} reference(s) in {cfg.exclude} name no image of this data "
                        f"(data.source={cfg.source}{where}):{_listing(unknown)}\n"
                        f"  Remove those lines, or point data.exclude at a list made for this data (references "
                        f"look like {example!r}; cifartui suspects RUN --refs writes them).")
    x, y, refs = parts["train"]
    drop = np.isin(refs, wanted)
    elsewhere = sum(1 for r in set(wanted) if r not in known["train"])
    note = (f"; {elsewhere} listed image(s) are in the validation/test splits and stay there (those stay whole so "
            "runs remain comparable)") if elsewhere else ""
    notify("warning", f"data.exclude: left out {int(drop.sum())} of {len(refs)} training images, listed in "
                      f"{cfg.exclude}{note}")
    keep = torch.from_numpy(np.flatnonzero(~drop))
    return x[keep], y[keep], refs[keep.numpy()]


@functools.lru_cache(maxsize=1)
def _batch_images(path: str) -> np.ndarray:
    """One CIFAR batch file's images (N, 3072 uint8), kept for the next call: maps of one suspect after another
    (the drilldown's g) read CIFAR-100's 150 MB training pickle once, not once an image."""
    return np.asarray(_unpickle(Path(path))["data"], dtype=np.uint8)


def load_ref_image(cfg: DataConfig, ref: str) -> torch.Tensor:
    """One image (uint8 [3, H, W]) by its reference, decoded as ``load_data`` decodes it, without loading
    the whole dataset (an image folder of thousands of files reads one)."""
    source, _, rest = ref.partition(":")
    if cfg.source in ("cifar10", "cifar100", "synthetic") and source == cfg.source:
        part, _, index = rest.partition(":")
        if part in ("train", "test") and index.isdigit():
            i = int(index)
            if cfg.source == "synthetic":
                n = cfg.train_size if part == "train" else cfg.test_size
                if i < n:
                    return make_synthetic(cfg.num_classes, n, cfg.synthetic_size, 0 if part == "train" else 1)[0][i]
            else:
                folder, ds = _ensure_cifar(cfg, _quiet), cifar_meta(cfg.source)
                for name, _md5 in (ds.train_list if part == "train" else ds.test_list):
                    data = _batch_images(str(folder / name))
                    if i < len(data):
                        return torch.from_numpy(data[i].reshape(3, 32, 32).copy())
                    i -= len(data)
    elif cfg.source == "imagefolder":
        root = Path(cfg.root).expanduser().resolve()
        path = (root / ref).resolve()
        if root in path.parents and path.is_file():
            return torch.from_numpy(_decode(str(path), cfg.image_size).copy()).permute(2, 0, 1).contiguous()
    raise DataError(f"{ref!r} names no image of data.source={cfg.source} (data.root={cfg.root}).")


# -- assembling the bundle ------------------------------------------------------------------------
def _carve(y: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (kept, taken) that split off ``fraction`` of the samples, stratified by class, with a fixed seed."""
    g = torch.Generator().manual_seed(seed)
    keep_idx, take_idx = [], []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = int(round(len(idx) * fraction))
        if len(idx) > 1:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        take_idx.append(idx[:k])
        keep_idx.append(idx[k:])
    keep = torch.sort(torch.cat(keep_idx)).values
    take = torch.sort(torch.cat(take_idx)).values
    if take.numel() == 0 and len(y) >= 2:  # one sample per class: fall back to a plain random split
        perm = torch.randperm(len(y), generator=g)
        k = min(max(1, int(round(len(y) * fraction))), len(y) - 1)
        take, keep = torch.sort(perm[:k]).values, torch.sort(perm[k:]).values
    return keep, take


def _pick(part: tuple, idx: torch.Tensor) -> tuple:
    """(images, labels, refs) at ``idx`` (indices or a mask)."""
    x, y, refs = part
    return x[idx], y[idx], refs[idx.numpy()]


def _subset_classes(parts, names: list[str], wanted: list[str]):
    unknown = [w for w in wanted if w not in names]
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise DataError(f"data.classes: {unknown[0]!r} is not a class of this dataset.{hint}")
    old = torch.tensor([names.index(w) for w in wanted])
    remap = torch.full((len(names),), -1, dtype=torch.int64)
    remap[old] = torch.arange(len(wanted))
    out = []
    for x, y, refs in parts:
        mask = remap[y] >= 0
        out.append((x[mask], remap[y[mask]], refs[mask.numpy()]))
    return out, list(wanted)


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    sample = x[: 10000].float() / 255.0
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


def split_fingerprint(images: torch.Tensor, labels: torch.Tensor) -> str:
    """What an evaluation scored, in 32 hex digits: blake2b over the images' shape and uint8 bytes and the labels,
    in order. Two evaluations with the same fingerprint saw the same images with the same labels in the same
    order, so their per-sample predictions can be compared one to one (``cifartui diff``). One pass over the
    bytes, no copy for a contiguous CPU tensor (CIFAR-100's 10,000 test images: 30 MB)."""
    import hashlib

    x = images.detach().cpu().contiguous()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{tuple(x.shape)} {x.dtype}".encode())
    digest.update(x.numpy().reshape(-1).data)
    digest.update(labels.detach().cpu().to(torch.int64).contiguous().numpy().data)
    return digest.hexdigest()


def load_data(cfg: DataConfig, seed: int, notify: Notify = _quiet) -> DataBundle:
    loaders = {"cifar10": _load_cifar, "cifar100": _load_cifar, "imagefolder": _load_imagefolder, "synthetic": _load_synthetic}
    train_x, train_y, val, test_x, test_y, names, refs = loaders[cfg.source](cfg, notify)
    train = (train_x, train_y, refs["train"])
    if val is not None:
        val = (*val, refs["val"])
    else:
        keep, take = _carve(train_y, cfg.val_fraction, seed)
        train, val = _pick(train, keep), _pick(train, take)
    test = (test_x, test_y, refs.get("test"))
    if test_x is None:  # a single folder of class folders: carve the test split too
        keep, take = _carve(train[1], cfg.val_fraction, seed + 1)
        train, test = _pick(train, keep), _pick(train, take)
    if cfg.classes:
        (train, val, test), names = _subset_classes([train, val, test], names, cfg.classes)
    if cfg.exclude:
        train = _exclude(cfg, {"train": train, "val": val, "test": test}, notify)
    (train_x, train_y, train_refs), (val_x, val_y, val_refs), (test_x, test_y, test_refs) = train, val, test
    if len(names) < 2 or len(torch.unique(train_y)) < 2:
        raise DataError(
            f"data: only {len(torch.unique(train_y))} class found ({', '.join(names[:3])}); a classifier needs two or more.\n"
            "  Add class folders, or check data.root / data.classes."
        )
    if len(val_y) == 0:
        raise DataError(f"data.val_fraction: {cfg.val_fraction} leaves no validation images; raise it or add images.")
    mean, std = channel_stats(train_x)
    notify("info", f"Data {cfg.source}: {len(train_y)} train, {len(val_y)} val, {len(test_y)} test, "
                   f"{len(names)} classes, {train_x.shape[-1]}px")
    return DataBundle(train_x, train_y, val_x, val_y, test_x, test_y, names, mean, std, cfg.source,
                      refs={"train": train_refs, "val": val_refs, "test": test_refs})
