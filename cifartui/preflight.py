"""Checks that are cheap and catch bad input before a run folder is created."""

from __future__ import annotations

import os
from pathlib import Path

from cifartui.config import Config
from cifartui.core.data import DataError
from cifartui.core.engine import resolve_device
from cifartui.core.model import resolve_name
from cifartui.record.store import StoreError


def preflight(cfg: Config) -> None:
    """Raise a UserError naming the field when the config cannot work here."""
    resolve_name(cfg.model)  # unknown timm model / pretrained tag
    resolve_device(cfg.device)
    if cfg.model.checkpoint and not Path(cfg.model.checkpoint).expanduser().is_file():
        from cifartui.core.checkpoint import CheckpointError

        raise CheckpointError(f"model.checkpoint: {cfg.model.checkpoint!r} does not exist. Give the path of a .pt/.pth/.safetensors file.")
    if cfg.data.source == "imagefolder":
        _check_image_folder(Path(cfg.data.root).expanduser())
    if cfg.data.source in ("cifar10", "cifar100") and not cfg.data.download:
        from cifartui.core.data import cifar_meta

        ds, root = cifar_meta(cfg.data.source), Path(cfg.data.root).expanduser()
        if not (root / ds.base_folder).is_dir() and not (root / ds.filename).exists():
            raise DataError(f"data.root: no {cfg.data.source} files in {str(root)!r} (looked for {ds.base_folder}/ and "
                            f"{ds.filename}).\n  Set data.download=true, or point data.root at a folder holding them.")
    root = Path(cfg.output.root).expanduser()
    probe = root if root.exists() else next((p for p in root.parents if p.exists()), Path("."))
    if not os.access(probe, os.W_OK):
        raise StoreError(f"output.root: {str(root)!r} is not writable.\n  Pick a folder you can write to, e.g. --set output.root=./runs")


def _check_image_folder(root: Path) -> None:
    """Folder structure only (no decoding): exists, has class folders, two or more of them."""
    if not root.is_dir():
        raise DataError(f"data.root: {str(root)!r} does not exist (data.source=imagefolder).\n"
                        "  Point data.root at a folder of class folders (or with train/ val/ test/).")
    base = root / "train" if (root / "train").is_dir() else root
    try:  # as the loader sees them: no hidden folders, no __MACOSX, symlinked folders not followed
        classes = [p for p in base.iterdir() if p.is_dir() and not p.is_symlink()
                   and not p.name.startswith(".") and p.name != "__MACOSX"]
    except OSError as exc:
        raise DataError(f"data.root: {str(base)!r} cannot be read ({exc.strerror or exc}).\n"
                        "  Fix its permissions or point data.root elsewhere.") from None
    if not classes:
        raise DataError(f"data.root: {str(base)!r} holds no class folders.\n"
                        "  Expected <root>/<class>/<image> (or <root>/train/<class>/... with val/ and test/).")
    if len(classes) < 2:
        raise DataError(f"data.root: {str(base)!r} has a single class folder ({classes[0].name}); a classifier needs two or more.")
