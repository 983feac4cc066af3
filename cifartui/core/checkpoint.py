"""Checkpoint files: atomic saves, and loads that treat a checkpoint as data, never as code.

``best.pt``: ``{"state_dict": ..., "arch", "num_classes", "class_names", "epoch", "val_acc"}`` -- the
``state_dict`` key makes ``timm.create_model(name, num_classes=N, checkpoint_path="best.pt")`` work.
``last.pt``: the full resume state (model, optimizer, scaler, position, RNGs, config; the lr is a function of the position).
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from cifartui.record.atomic import atomic_write
from cifartui.errors import UserError


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable, unsafe or does not fit; the message says the fix."""


def save(obj: dict[str, Any], path: str | os.PathLike) -> None:
    """torch.save through a temp file + fsync + rename: a kill or a full disk never leaves a torn file."""
    try:
        atomic_write(path, lambda f: torch.save(obj, f))
    except OSError as exc:
        raise CheckpointError(
            f"cannot write checkpoint {path} ({exc.strerror or exc}); the previous file is intact.\n"
            "  Free disk space or pick another output.root."
        ) from exc
    except RuntimeError as exc:  # torch wraps write failures (e.g. ENOSPC) in RuntimeError
        raise CheckpointError(
            f"cannot write checkpoint {path} ({exc}); the previous file is intact.\n"
            "  Free disk space or pick another output.root."
        ) from exc


def load(path: str | os.PathLike, field: str = "model.checkpoint") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (or a .safetensors file) on the CPU."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"{field}: {str(p)!r} does not exist. Give the path of a .pt/.pth/.safetensors file.")
    if p.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            return {"state_dict": load_file(str(p), device="cpu")}
        except Exception as exc:
            raise CheckpointError(f"{field}: {str(p)!r} is not a readable safetensors file ({exc}).") from None
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:  # not a pickle of objects at all: garbage or a torn file
            raise CheckpointError(
                f"{field}: {str(p)!r} is corrupt or truncated (not a torch checkpoint).\n"
                "  Use another copy; a run's last.pt/best.pt are written atomically, so an intact one may sit beside it."
            ) from None
        raise CheckpointError(
            f"{field}: {str(p)!r} holds Python objects that are not plain weights ({found.group(1)}), so it was "
            "not loaded: loading it could run code.\n"
            "  Re-save only the state_dict: torch.save(model.state_dict(), 'weights.pt')."
        ) from None
    except Exception as exc:  # RuntimeError, EOFError, BadZipFile, IndexError... from a torn or foreign file
        raise CheckpointError(
            f"{field}: {str(p)!r} is corrupt or truncated ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}).\n"
            "  Use another copy; a run's last.pt/best.pt are written atomically, so an intact one may sit beside it."
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{field}: {str(p)!r} does not hold a state_dict (found {type(obj).__name__}).")
    return obj


def state_dict_of(obj: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model weights in a checkpoint of ours, timm's train.py, Lightning, or a bare state_dict."""
    for key in ("state_dict", "model", "model_state_dict"):
        inner = obj.get(key)
        if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            obj = inner
            break
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointError("the checkpoint holds no tensors (not a model state_dict)")
    for prefix in ("module.", "_orig_mod.", "model."):
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd
