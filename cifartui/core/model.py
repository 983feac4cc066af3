"""timm model factory: pretrained weights by tag, initial weights from a file, head-size checks."""

from __future__ import annotations

import difflib
from typing import Callable

import torch

from cifartui.config import ModelConfig
from cifartui.core import checkpoint as ckpt
from cifartui.errors import UserError

Notify = Callable[[str, str], None]


class ModelError(UserError):
    """A model problem; the message names the field, the value and the fix."""


def _timm():
    import timm

    return timm


def check_model_name(name: str) -> None:
    timm = _timm()
    if timm.is_model(name):
        return
    arch = name.split(".")[0]
    close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Close names: {', '.join(close)}." if close else " `python -c \"import timm; print(timm.list_models('resnet*'))\"` lists them."
    raise ModelError(f"model.name: {name!r} is not a timm model.{hint}")


def resolve_name(cfg: ModelConfig) -> tuple[str, bool]:
    """The timm name to create (with a pretrained tag when one is asked for) and whether to download."""
    check_model_name(cfg.name)
    pretrained = cfg.pretrained
    if isinstance(pretrained, str):
        text = pretrained.strip()
        if text.lower() in ("true", "yes"):
            return cfg.name, True
        if text.lower() in ("false", "no", "none", ""):
            return cfg.name, False
        full = text if "." in text else f"{cfg.name.split('.')[0]}.{text}"
        if full.split(".")[0] != cfg.name.split(".")[0]:
            raise ModelError(
                f"model.pretrained: {text!r} is a tag of {full.split('.')[0]}, not of model.name={cfg.name!r}.\n"
                f"  Use a tag of {cfg.name}, e.g. model.pretrained=true for its default weights."
            )
        tags = _timm().list_pretrained(f"{full.split('.')[0]}.*")
        if tags and full not in tags:
            raise ModelError(f"model.pretrained: {text!r} is not a known tag. Known: {', '.join(tags[:8])}.")
        return full, True
    return cfg.name, bool(pretrained)


def head_name(model: torch.nn.Module) -> str:
    classifier = (getattr(model, "pretrained_cfg", None) or {}).get("classifier", "fc")
    return classifier[0] if isinstance(classifier, (tuple, list)) else classifier


def head_classes(sd: dict[str, torch.Tensor], head: str) -> int | None:
    weight = sd.get(f"{head}.weight")
    return int(weight.shape[0]) if weight is not None and weight.ndim >= 1 else None


def build_model(cfg: ModelConfig, num_classes: int, notify: Notify) -> tuple[torch.nn.Module, dict]:
    """A timm model with ``num_classes`` outputs; returns it with its data config (mean, std, input size)."""
    timm = _timm()
    name, pretrained = resolve_name(cfg)
    if pretrained:
        notify("info", f"Loading pretrained weights {name} ...")
    try:
        model = timm.create_model(name, pretrained=pretrained, num_classes=num_classes, drop_rate=cfg.drop_rate)
    except RuntimeError as exc:
        if "pretrained" in str(exc).lower() or "no pretrained" in str(exc).lower():
            raise ModelError(f"model.pretrained: {exc}. Set model.pretrained=false or pick a tag that has weights.") from None
        raise
    except Exception as exc:  # hub errors come as OSError, httpx/requests errors, ValueError...
        if not pretrained:
            raise
        raise ModelError(
            f"model.pretrained: could not fetch the weights of {name} ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}).\n"
            "  Offline? Copy the weights here and set model.checkpoint=PATH with model.pretrained=false, "
            "or set model.pretrained=false to train from scratch. (A cached copy is used when HF_HUB_OFFLINE=1.)"
        ) from None
    data_cfg = timm.data.resolve_model_data_config(model)
    if cfg.checkpoint:
        load_initial_weights(model, cfg.checkpoint, notify)
    return model, data_cfg


def _split_keys(model: torch.nn.Module, sd: dict[str, torch.Tensor]):
    own = model.state_dict()
    head = head_name(model)
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    is_head = lambda k: k.startswith(head + ".")  # noqa: E731
    body_problems = [k for k in missing + unexpected + mismatched if not is_head(k)]
    head_problems = [k for k in mismatched + missing if is_head(k)]
    return head, body_problems, head_problems


def _architecture_error(path: str, meta: dict, model: torch.nn.Module, body: list[str], field: str) -> ModelError:
    arch = meta.get("arch") or "another architecture"
    ours = getattr(model, "default_cfg", {}).get("architecture") or type(model).__name__
    return ModelError(
        f"{field}: {path!r} holds weights of {arch}, which do not fit {ours} "
        f"({len(body)} tensors differ, e.g. {', '.join(body[:3])}).\n"
        f"  Set model.name to the checkpoint's architecture{f' ({arch})' if meta.get('arch') else ''}, or use a checkpoint of {ours}."
    )


def load_initial_weights(model: torch.nn.Module, path: str, notify: Notify) -> None:
    """Transfer learning: load every tensor; a classifier head of another size is re-initialised."""
    obj = ckpt.load(path)
    sd = ckpt.state_dict_of(obj)
    head, body, head_problems = _split_keys(model, sd)
    if body:
        raise _architecture_error(path, obj, model, body, "model.checkpoint")
    if head_problems:
        theirs = head_classes(sd, head)
        ours = head_classes(model.state_dict(), head)
        sd = {k: v for k, v in sd.items() if not k.startswith(head + ".")}
        notify("warning", f"model.checkpoint: its classifier ({head}) has {theirs} classes, this run has {ours}: "
                          f"the head is re-initialised, every other layer is loaded.")
    model.load_state_dict(sd, strict=False)
    notify("info", f"Loaded initial weights from {path}")


def load_exact_weights(model: torch.nn.Module, sd: dict[str, torch.Tensor], path: str, field: str, meta: dict | None = None) -> None:
    """Resume, evaluation, prediction: the head must match; a mismatch is one clear error."""
    head, body, head_problems = _split_keys(model, sd)
    if body:
        raise _architecture_error(path, meta or {}, model, body, field)
    if head_problems:
        theirs = head_classes(sd, head)
        ours = head_classes(model.state_dict(), head)
        raise ModelError(
            f"{field}: {path!r} has a {theirs}-class head ({head}.weight {list(sd[head + '.weight'].shape)}), "
            f"but the model was built for {ours} classes ({head}.weight {list(model.state_dict()[head + '.weight'].shape)}).\n"
            f"  Build it with num_classes={theirs}, e.g. timm.create_model(name, num_classes={theirs}, checkpoint_path=...), "
            f"or evaluate on data with {theirs} classes. To train a new head on these weights, use model.checkpoint instead."
        )
    model.load_state_dict(sd, strict=True)
