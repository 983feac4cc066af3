"""timm's training-recipe tools as the trainer uses them: model EMA, the loss for mixed targets, and
gradient accumulation. Mixup/CutMix live in core/mixing.py, per-sample policies in core/augment.py.

Gradient accumulation here: the loader yields the whole batch of ``batch_size x accum_steps`` images (so
its shuffle, augmentation and mixing are those of the larger batch, keyed by the optimizer step), and
the trainer runs forward and backward on ``batch_size`` chunks of it, each chunk's mean loss weighted by
its share of the batch. The summed gradients are the larger batch's mean-loss gradients, up to float
rounding; only batch-dependent layers (BatchNorm) see ``batch_size`` images at a time and differ.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

from cifartui.config import Config


def make_ema(model: torch.nn.Module, cfg: Config):
    """timm's ``ModelEmaV3`` of ``model`` when ``train.ema`` is on, else None. With ``ema_warmup`` the decay
    of update k (1-based) is ``min(ema_decay, 1 - k^-2/3)`` (timm's warmup; 0 at k = 1: a copy): a run of a
    few thousand steps averages its recent weights instead of dragging its random start along."""
    t = cfg.train
    if not t.ema:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=t.ema_decay, use_warmup=t.ema_warmup)


def make_criterion(cfg: Config) -> torch.nn.Module:
    """Soft-target cross-entropy under Mixup/CutMix (label smoothing is then folded into the targets by
    timm's Mixup), else cross-entropy with ``train.label_smoothing``."""
    if cfg.data.mixup > 0 or cfg.data.cutmix > 0:
        from timm.loss import SoftTargetCrossEntropy

        return SoftTargetCrossEntropy()
    return torch.nn.CrossEntropyLoss(label_smoothing=cfg.train.label_smoothing)


def backward_in_chunks(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, chunk: int,
                       criterion: Callable, scale: Callable[[torch.Tensor], torch.Tensor],
                       autocast: Callable[[], contextlib.AbstractContextManager],
                       no_sync: Callable[[], contextlib.AbstractContextManager] | None = None,
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward of the batch in chunks of at most ``chunk`` images, gradients summed as the
    whole batch's mean loss would give them. ``no_sync`` (DDP's) skips the gradient all-reduce of every
    chunk but the last. Returns the batch's mean loss and its logits, both detached."""
    n = x.shape[0]
    if n <= chunk:
        with autocast():
            logits = model(x)
            loss = criterion(logits, target)
        scale(loss).backward()
        return loss.detach(), logits.detach()
    pieces = list(zip(x.split(chunk), target.split(chunk)))
    losses, outputs = [], []
    for i, (xc, tc) in enumerate(pieces):
        quiet = no_sync() if no_sync is not None and i + 1 < len(pieces) else contextlib.nullcontext()
        with quiet:
            with autocast():
                logits = model(xc)
                loss = criterion(logits, tc) * (xc.shape[0] / n)  # this chunk's share of the batch mean
            scale(loss).backward()
        losses.append(loss.detach())
        outputs.append(logits.detach())
    return torch.stack(losses).sum(), torch.cat(outputs)
