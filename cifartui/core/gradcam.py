"""Where a trained model looks: Grad-CAM maps with pytorch-grad-cam (the ``analysis`` extra).

The target layer is the model's deepest feature stage as timm records them (``model.feature_info``) whose
map still has a few cells a side at the run's input size: the most semantic activations with a spatial
grid (at 224 px a ResNet's last stage, 7x7; at 32 px its 4x4 second stage). Layouts other than N,C,H,W are reshaped
for the package (``reshape_transform``): N,H,W,C stages (Swin) are permuted, and token stages (ViT) drop
their prefix tokens and fold the rest into their square grid; there the map is taken at the last block's
first norm, since with a class-token head the patch tokens leaving the last block get no gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from cifartui.core.loader import BatchLoader
from cifartui.errors import UserError
from cifartui.extras import require


class CamError(UserError):
    """No map for this model or input; the message says why."""


@dataclass
class CamResult:
    heat: np.ndarray  # float32 [S, S] in 0..1 at the model's input size
    probs: np.ndarray  # float32 [C]: the model's class probabilities for the image
    target: int  # the class the map explains

    @property
    def pred(self) -> int:
        return int(self.probs.argmax())


MIN_CELLS = 4  # a map coarser than 4x4 cells says little: a ResNet's last stage on a 32 px image is 1x1


def _grid_of(tokens: int, prefix: int) -> int | None:
    side = math.isqrt(max(0, tokens - prefix))
    return side if side * side == tokens - prefix and side > 0 else None


def _layout(shape: tuple, chs: int | None, prefix: int) -> tuple[int, Callable | None] | None:
    """(cells per side, reshape transform) for a stage's output shape, or None when it has no grid."""
    if len(shape) == 4 and shape[1] == chs:
        return shape[2], None
    if len(shape) == 4 and shape[-1] == chs:  # N,H,W,C stages (Swin and other window models)
        return shape[1], lambda t: t.permute(0, 3, 1, 2)
    side = _grid_of(shape[1], prefix) if len(shape) == 3 else None
    if side:
        def tokens_to_grid(t: torch.Tensor) -> torch.Tensor:
            t = t[:, prefix:, :]
            return t.reshape(t.shape[0], side, side, t.shape[2]).permute(0, 3, 1, 2)

        return side, tokens_to_grid
    return None


def cam_layer(model: torch.nn.Module, arch: str, image_size: int) -> tuple[torch.nn.Module, str, Callable | None]:
    """(layer, its name, reshape transform or None) for a timm model: the deepest feature stage whose map has
    at least MIN_CELLS cells a side at ``image_size`` (one probe forward pass measures them all)."""
    info = [f for f in (getattr(model, "feature_info", None) or []) if isinstance(f, dict) and f.get("module")]
    if not info:
        raise CamError(f"cam: {arch} records no feature stages (timm's feature_info), so there is no last stage "
                       "to take a class activation map from.")
    shapes: dict[str, tuple] = {}
    hooks = [model.get_submodule(f["module"]).register_forward_hook(
        lambda _m, _i, out, name=f["module"]: shapes.__setitem__(name, tuple(out.shape) if torch.is_tensor(out) else ()))
        for f in info]
    was_training = model.training
    model.eval()  # one image: BatchNorm must use its running statistics
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)
    stages = [(f["module"], _layout(shapes.get(f["module"], ()), f.get("num_chs"), prefix)) for f in info]
    stages = [(name, layout) for name, layout in stages if layout is not None]
    if not stages:
        last = info[-1]["module"]
        raise CamError(f"cam: {arch}'s feature stages ({last}: activations of shape {shapes.get(last)}) have no spatial "
                       "grid to map; class activation maps need a CNN or a ViT-style model.")
    name, (side, reshape) = next(((n, l) for n, l in reversed(stages) if l[0] >= MIN_CELLS), max(stages, key=lambda s: s[1][0]))
    layer = model.get_submodule(name)
    if len(shapes[name]) == 3 and hasattr(layer, "norm1"):
        # a ViT block: with a class-token head the patch tokens leaving the last block get no gradient; the
        # norm feeding its attention still does
        layer, name = layer.norm1, f"{name}.norm1"
    return layer, f"{name} ({side}x{side})", reshape


class Explainer:
    """A trained model ready to explain images: the target layer found once, hooks kept between maps."""

    def __init__(self, model: torch.nn.Module, arch: str, mean, std, image_size: int):
        cam_mod = require("pytorch_grad_cam", "grad-cam", "class activation maps")
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.layer, self.layer_name, reshape = cam_layer(self.model, arch, image_size)
        self.cam = cam_mod.GradCAM(model=self.model, target_layers=[self.layer], reshape_transform=reshape)
        # the evaluation transform of training (resize, normalise), from the loader the trainer scores with
        one = torch.zeros(1, 3, 8, 8, dtype=torch.uint8, device=self.device)
        self._prep = BatchLoader(one, torch.zeros(1, dtype=torch.int64, device=self.device), 1, mean=mean, std=std,
                                 image_size=image_size)

    def __call__(self, image: torch.Tensor, target: int | None = None) -> CamResult:
        """The map of ``image`` (uint8 [3, H, W]) for class ``target`` (default: the predicted one)."""
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        x = self._prep.transform(image.to(self.device)[None], None)
        with torch.no_grad():
            probs = self.model(x).float().softmax(1)[0].cpu().numpy()
        target = int(probs.argmax()) if target is None else int(target)
        if not 0 <= target < len(probs):
            raise CamError(f"cam: class {target} is not one of the model's {len(probs)} classes.")
        heat = self.cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]
        return CamResult(heat=np.asarray(heat, dtype=np.float32), probs=probs, target=target)

    def close(self) -> None:
        self.cam.activations_and_grads.release()


def overlay(image: np.ndarray, heat: np.ndarray, side: int) -> np.ndarray:
    """uint8 [side, side, 3]: ``image`` (uint8 H,W,3) upscaled with the heat map (jet colours) over it."""
    from PIL import Image
    from pytorch_grad_cam.utils.image import show_cam_on_image

    small = image.shape[0] < side
    base = np.asarray(Image.fromarray(image).resize((side, side), Image.NEAREST if small else Image.BILINEAR))
    mask = np.asarray(Image.fromarray(np.uint8(np.clip(heat, 0, 1) * 255)).resize((side, side), Image.BILINEAR))
    return show_cam_on_image(base.astype(np.float32) / 255, mask.astype(np.float32) / 255, use_rgb=True, image_weight=0.5)


def render_png(image: np.ndarray, heat: np.ndarray, caption: str, side: int = 256):
    """A PIL image: the image upscaled beside the same with the map over it, ``caption`` (lines) underneath."""
    from PIL import Image, ImageDraw, ImageFont

    plain = Image.fromarray(image).resize((side, side), Image.NEAREST if image.shape[0] < side else Image.BILINEAR)
    lines = caption.count("\n") + 1
    canvas = Image.new("RGB", (2 * side, side + 8 + 20 * lines), "black")
    canvas.paste(plain, (0, 0))
    canvas.paste(Image.fromarray(overlay(image, heat, side)), (side, 0))
    try:
        font = ImageFont.load_default(size=16)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    ImageDraw.Draw(canvas).multiline_text((6, side + 4), caption, fill="white", font=font, spacing=4)
    return canvas
