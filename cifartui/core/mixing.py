"""Mixup / CutMix on a device batch with timm's ``Mixup``, keyed by (seed, epoch, step) for exact resumes.

``timm.data.Mixup`` mixes each image with its mirror in the batch (``x.flip(0)``) and returns soft targets
with label smoothing folded in; the loss is then ``timm.loss.SoftTargetCrossEntropy``. Two things around it:

- it draws lambda and the CutMix box from numpy's global RNG: the draws here run on a state seeded from
  the batch's key and the caller's state is put back, so mixing is a pure function of (seed, epoch, step,
  rank), like the loader's augmentation, and a resume mixes exactly as the uninterrupted run did;
- it needs an even batch: an odd one mixes its first B-1 images and keeps the last one unmixed, with the
  same smoothed one-hot target an unmixed batch gets.
"""

from __future__ import annotations

import numpy as np
import torch
from timm.data.mixup import Mixup, mixup_target


class BatchMixer:
    def __init__(self, mixup: float, cutmix: float, prob: float, label_smoothing: float, num_classes: int):
        self.num_classes, self.label_smoothing = num_classes, label_smoothing
        self.mixup = Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, prob=prob, label_smoothing=label_smoothing,
                           num_classes=num_classes)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, key: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix ``x`` in place; return it with soft targets [B, num_classes] (each row sums to one). ``key``:
        (seed, epoch, step, rank), whose numbers seed the draws (numpy's init_by_array: no collisions)."""
        even = x.shape[0] - x.shape[0] % 2
        saved = np.random.get_state()
        np.random.seed([int(k) % 2**32 for k in key])
        try:
            if even:
                _, target = self.mixup(x[:even], y[:even])  # mixes the view, so x itself, in place
            else:
                target = x.new_zeros((0, self.num_classes))
        finally:
            np.random.set_state(saved)
        if even < x.shape[0]:
            rest = mixup_target(y[even:], self.num_classes, 1.0, self.label_smoothing)
            target = torch.cat([target, rest.to(target.dtype)])
        return x, target

