"""``cifartui cam RUN INDEX``: where the run's best weights look when they classify one image of an evaluation.

The image is the evaluation's sample INDEX (the numbering of ``eval/*.npz``, of the drilldown and of
``suspects``), read alone by its stored reference (``refs``), or for evaluations written before references
by loading the run's data. The weights are best.pt on the CPU, loaded like ``predict`` loads them
(:class:`~cifartui.commands.evaluate.Trained`); the map is Grad-CAM (core/gradcam.py, the analysis extra).
The app's drilldown keeps one :class:`CamMaker` per run, so only its first map pays for torch and best.pt.
"""

from __future__ import annotations

import difflib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cifartui.errors import UserError


class CamInputError(UserError):
    """A bad split, index or target; the message names it and the choices."""


@dataclass
class CamOutput:
    image: np.ndarray  # uint8 H,W,3: the image as stored in the data (before the model's resize)
    heat: np.ndarray  # float32 S,S in 0..1
    split: str
    index: int
    true: str
    pred: str
    pred_prob: float
    target: str
    target_prob: float
    target_kind: str  # pred | true | class
    layer: str = ""  # the layer mapped, with its grid, e.g. "layer4 (7x7)"

    def caption(self) -> str:
        why = {"pred": "predicted", "true": "true class", "class": "asked"}[self.target_kind]
        return (f"map of {self.target} ({why}, p={self.target_prob:.2f}) at {self.layer}\n"
                f"{self.split} #{self.index}  true: {self.true}  predicted: {self.pred} ({self.pred_prob:.2f})")

    def overlay(self, side: int) -> np.ndarray:
        """uint8 [side, side, 3]: the image upscaled with the map over it."""
        from cifartui.core.gradcam import overlay

        return overlay(self.image, self.heat, side)

    def to_json(self, png: str | None) -> dict[str, Any]:
        return {"png": png, "index": self.index, "split": self.split, "true": self.true, "pred": self.pred,
                "target": self.target, "target_prob": self.target_prob, "pred_prob": self.pred_prob, "layer": self.layer}


class CamMaker:
    """One run's best.pt, ready to map any image of the run's evaluations."""

    def __init__(self, run: str | Path, root: str | Path = "runs"):
        from cifartui.extras import require

        require("pytorch_grad_cam", "grad-cam", "cam")  # before torch and the weights load: say it at once
        from cifartui.commands.evaluate import Trained
        from cifartui.core.gradcam import Explainer

        self.trained = Trained(str(run), str(root), "cam", "cpu")
        if self.trained.run_dir is None:
            raise CamInputError(f"cam: {run} is a weights file outside a run; give a run (its evaluations hold the images).")
        self.run_dir = self.trained.run_dir
        self.names = self.trained.names
        t = self.trained
        self.explainer = Explainer(t.model, t.arch, t.mean, t.std, t.image_size)
        self._splits: dict[str, tuple[dict[str, np.ndarray], Any]] = {}
        self._lock = threading.Lock()  # one map at a time: the Grad-CAM hooks hold one image's activations

    # -- the image ----------------------------------------------------------------------------------
    def _split(self, split: str):
        """(the evaluation's arrays, the data config it was scored on), read once per split."""
        if split not in self._splits:
            from cifartui import config as config_mod
            from cifartui.record.read_model import RunRecord
            from cifartui.record.store import load_evaluation

            record = RunRecord.read(self.run_dir)
            ev = record.evaluation(split)
            if ev is None:
                have = sorted({e.split for e in record.evaluations}) or ["none yet"]
                raise CamInputError(f"cam --split: {self.run_dir.name} has no {split!r} evaluation; it has: "
                                    f"{', '.join(have)}.")
            arrays = load_evaluation(self.run_dir, ev.file, required=("targets",), keys=("targets", "refs"))
            own = self.run_dir / "eval" / f"{split}.yaml"  # `cifartui eval` keeps the config it scored with
            cfg = config_mod.load(own if own.exists() else self.run_dir / "config.yaml")
            self._splits[split] = (arrays, cfg.with_overrides(**{"data.exclude": None}))
        return self._splits[split]

    def image(self, split: str, index: int):
        """(uint8 [3, H, W] tensor, true class index) of sample ``index`` of the evaluation ``split``."""
        arrays, cfg = self._split(split)
        n = len(arrays["targets"])
        if not 0 <= index < n:
            raise CamInputError(f"cam INDEX: {index} is out of range: the {split} evaluation has {n} images (0-{n - 1}).")
        true = int(arrays["targets"][index])
        if "refs" in arrays:
            from cifartui.core.data import load_ref_image

            return load_ref_image(cfg.data, str(arrays["refs"][index])), true
        if split not in ("val", "test"):
            raise CamInputError(f"cam: the {split!r} evaluation predates stored image references; evaluate again "
                                f"(cifartui eval {self.run_dir}) and map the new one.")
        from cifartui.core.data import load_data

        data = load_data(cfg.data, cfg.seed)
        return (data.val_x if split == "val" else data.test_x)[index], true

    # -- the map ------------------------------------------------------------------------------------
    def _target(self, target: str, true: int) -> tuple[int | None, str]:
        if target == "pred":
            return None, "pred"
        if target == "true":
            return true, "true"
        if target in self.names:
            return self.names.index(target), "class"
        close = difflib.get_close_matches(target, self.names, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise CamInputError(f"cam --target: {target!r} is not pred, true or a class of this run.{hint}")

    def explain(self, split: str, index: int, target: str = "pred") -> CamOutput:
        with self._lock:
            image, true = self.image(split, index)
            wanted, kind = self._target(target, true)
            result = self.explainer(image, wanted)
        name = lambda i: self.names[i] if i < len(self.names) else str(i)  # noqa: E731
        return CamOutput(image=image.permute(1, 2, 0).cpu().numpy(), heat=result.heat, split=split, index=index,
                         true=name(true), pred=name(result.pred), pred_prob=float(result.probs[result.pred]),
                         target=name(result.target), target_prob=float(result.probs[result.target]), target_kind=kind,
                         layer=self.explainer.layer_name)

    def close(self) -> None:
        self.explainer.close()


def save_png(out: CamOutput, path: Path) -> Path:
    from cifartui.core.gradcam import render_png
    from cifartui.record.atomic import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    picture = render_png(out.image, out.heat, out.caption())
    atomic_write(path, lambda f: picture.save(f, format="PNG"))
    return path


def cmd_cam(args) -> int:
    from cifartui.commands import root_of

    if args.index < 0:
        raise CamInputError(f"cam INDEX: {args.index} is negative; give a sample number from the evaluation (0 or more).")
    maker = CamMaker(args.run, root_of(args))
    try:
        out = maker.explain(args.split, args.index, args.target)
    finally:
        maker.close()
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in out.target)
    path = Path(args.output) if args.output else maker.run_dir / "cam" / f"{out.split}-{out.index}-{safe}.png"
    save_png(out, path)
    if args.json:
        print(json.dumps(out.to_json(str(path)), indent=1))
    else:
        print(out.caption())
        print(f"wrote {path}")
    return 0

