"""``cifartui eval`` and ``cifartui predict``: trained weights applied to data and to image files.

``eval RUN [--set data...]``: the run's best.pt on a dataset (by default the run's own data; change it with
``--set data.*``), scored by ``core.engine.evaluate``, the function the trainer scores with (the same loss, top-1/top-5, confusion
matrix and per-sample arrays as a training run), normalised with the mean/std/image size stored in best.pt.
The result is appended to the run as an ``evaluation`` event named ``eval-<source>-<split>-<time>`` (never
``test`` or ``val``, so the run's own scores stay as they were), with thumbnails of the images for the
confusion drilldown and the report, and the config used in ``eval/<name>.yaml``.

``eval CHECKPOINT --set model.name=ARCH [--set data...]``: a weights file (ours, timm's train.py output, a
bare state_dict, .safetensors); a new run folder ``<root>/<time>-eval-<name>`` holds the result. A file
inside a run folder starts from that run's config.

A classifier head that does not fit the data (a 100-class checkpoint on 10-class data) is refused with
``load_exact_weights``'s message, which names both class counts and the fix.

``predict RUN IMAGE...``: top-k classes with probabilities. Each image is centre-cropped to a square,
brought to the training data's native size when the run trained on fixed-size data (32 px for CIFAR, the
synthetic size for synthetic), since the model never saw sharper images, then takes the evaluation path of
training: resize to best.pt's ``image_size``, normalise with its ``mean``/``std``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

from cifartui.errors import UserError

# What `eval RUN --set` may change: the data and how it is scored, never the model or training.
RUN_OVERRIDES = ("data.", "device", "seed", "train.eval_batch_size", "train.amp", "train.channels_last",
                 "output.save_samples", "eval.")
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,79}$")
# weights file names that say nothing: name the eval run after the config instead
_GENERIC_STEMS = ("best", "last", "model", "checkpoint", "weights", "pytorch_model", "model_best")


class EvalError(UserError):
    """A problem with what `eval`/`predict` were given; the message says the fix."""


def _quiet(level: str, message: str) -> None:
    if level != "info":
        print(f"{level}: {message}", file=sys.stderr)


# -- weights -------------------------------------------------------------------------------------------
def _load_checkpoint(path: Path, field: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the checkpoint object, its state_dict)."""
    from cifartui.core import checkpoint as ckpt

    obj = ckpt.load(path, field=field)
    return obj, ckpt.state_dict_of(obj)


def _build(model_name: str, num_classes: int):
    """A timm model with random weights (the checkpoint's are loaded next) and its data config."""
    from cifartui.config import ModelConfig
    from cifartui.core.model import build_model

    return build_model(ModelConfig(name=model_name, pretrained=False, checkpoint=None), num_classes, notify=_quiet)


def _run_config_near(path: Path):
    """The config of the run folder holding ``path`` (a checkpoint file), or None."""
    from cifartui import config as config_mod
    from cifartui.record.store import is_run_dir

    folder = path.parent
    if is_run_dir(folder) and (folder / "config.yaml").exists():
        return config_mod.load(folder / "config.yaml")
    return None


# -- eval ----------------------------------------------------------------------------------------------
def _check_run_overrides(overrides: list[str]) -> None:
    from cifartui.config import parse_override

    for item in overrides:
        key, _ = parse_override(item)
        if not any(key == p or (p.endswith(".") and key.startswith(p)) for p in RUN_OVERRIDES):
            raise EvalError(
                f"eval: --set {key} cannot change for a run's best.pt (its weights fix the model).\n"
                f"  Change the data (--set data.*), device or train.eval_batch_size; to evaluate other weights give "
                "the checkpoint file and --set model.name=ARCH."
            )


def evaluate(source: str, overrides: list[str] = (), root: str = "runs", split: str = "test",
             name: str | None = None, root_given: bool = False) -> dict[str, Any]:
    """Evaluate and store; returns what was stored (run folder, evaluation name, figures)."""
    from cifartui import config as config_mod
    from cifartui.record.store import RunStore, check_run_name, read_run, resolve_run

    overrides = list(overrides)
    src = Path(source).expanduser()
    if src.is_file():
        mode = "checkpoint"
        ckpt_path = src
        base = _run_config_near(src)
        cfg = config_mod.load(None, []) if base is None else base
        if overrides:
            cfg = _apply(cfg, overrides)
        run_dir = None
    else:
        mode = "run"
        if src.suffix in (".pt", ".pth", ".bin", ".safetensors", ".ckpt") and not src.is_dir():
            raise EvalError(f"eval: checkpoint {str(src)!r} does not exist. Give a .pt/.pth/.safetensors file or a run.")
        run_dir = resolve_run(source, root)
        summary = read_run(run_dir)
        if summary.status == "running":
            raise EvalError(f"eval: {run_dir.name} is still running (another process writes it).\n"
                            f"  Wait for it to end, or evaluate its weights as a file: cifartui eval {run_dir / 'best.pt'} "
                            "(the result then goes to a new run folder).")
        ckpt_path = run_dir / "best.pt"
        if not ckpt_path.exists():
            raise EvalError(f"eval: {run_dir.name} has no best.pt (it ended before its first epoch); nothing to evaluate.")
        _check_run_overrides(overrides)
        cfg = config_mod.load(run_dir / "config.yaml", overrides)

    obj, sd = _load_checkpoint(ckpt_path, "eval")
    given_name = any(o.split("=", 1)[0].strip() == "model.name" for o in overrides)
    arch = obj.get("arch") if isinstance(obj.get("arch"), str) else None
    if mode == "checkpoint" and not given_name:
        if arch:
            cfg = cfg.with_overrides(**{"model.name": arch})
        elif base is None:
            raise EvalError(f"eval: {str(ckpt_path)!r} does not say which architecture it holds.\n"
                            "  Give it: --set model.name=ARCH (the timm name, e.g. resnet34).")
    if mode == "run" and arch and arch != cfg.model.name:
        cfg = cfg.with_overrides(**{"model.name": arch})
    if mode == "checkpoint" and root_given:
        cfg = cfg.with_overrides(**{"output.root": root})

    from cifartui.core.data import load_data, split_fingerprint
    from cifartui.core.engine import amp_dtype, resolve_device, thumbnails
    from cifartui.core.engine import evaluate as evaluate_model  # the trainer's own: same figures and arrays
    from cifartui.record.events import Evaluation, Log, RunEnded, RunStarted, Samples
    from cifartui.core.loader import BatchLoader
    from cifartui.core.model import load_exact_weights
    from cifartui.preflight import preflight

    if split != "train" and cfg.data.exclude:  # data.exclude thins the train split only: no need to read it
        cfg = cfg.with_overrides(**{"data.exclude": None})
    preflight(cfg.with_overrides(**{"model.checkpoint": None, "model.pretrained": False}))
    device = resolve_device(cfg.device)
    data = load_data(cfg.data, cfg.seed, notify=_quiet)
    model, data_cfg = _build(cfg.model.name, data.num_classes)
    load_exact_weights(model, sd, str(ckpt_path), "eval", {"arch": arch})
    names = obj.get("class_names")
    if isinstance(names, list) and len(names) == data.num_classes and list(names) != data.class_names:
        _quiet("warning", f"the weights were trained on classes {', '.join(map(str, names[:3]))}, ... but the data has "
                          f"{', '.join(data.class_names[:3])}, ...: classes are matched by index.")
    mean = tuple(obj.get("mean") or (data_cfg["mean"] if cfg.model.pretrained else data.mean))
    std = tuple(obj.get("std") or (data_cfg["std"] if cfg.model.pretrained else data.std))
    image_size = int(obj.get("image_size") or cfg.data.image_size or data.image_size)
    xs, ys = {"test": (data.test_x, data.test_y), "val": (data.val_x, data.val_y), "train": (data.train_x, data.train_y)}[split]

    eval_bs = cfg.train.eval_batch_size or max(cfg.train.batch_size, 256 if device.type == "cuda" else cfg.train.batch_size)
    loader = BatchLoader(xs.to(device), ys.to(device), eval_bs, mean=mean, std=std, image_size=image_size)
    t0 = time.perf_counter()
    result = evaluate_model(model.to(device), loader, data.num_classes, device, amp_dtype(cfg.train.amp, device),
                            tta=cfg.eval.tta, keep_probs=True)  # every class's probability: what `cifartui suspects` ranks
    seconds = time.perf_counter() - t0

    stamp = time.strftime("%Y%m%d-%H%M%S")
    split_name = name or f"eval-{cfg.data.source}-{split}-{stamp}"
    if not _SPLIT_NAME.match(split_name) or ".." in split_name:
        raise EvalError(f"eval --name: {split_name!r} is not a valid name (letters, digits, '.', '_', '+', '-').")
    epoch = int(obj.get("epoch") or 0)
    if mode == "run":
        from cifartui.record.read_model import RunRecord

        if any(e.split == split_name for e in RunRecord.read(run_dir).evaluations):
            raise EvalError(f"eval --name: the run already has an evaluation named {split_name!r}; pick another name.")
        from cifartui.record.control import WriterLock

        lock = WriterLock.acquire(run_dir, "eval")  # one writer per run: never beside a training that resumed meanwhile
        store = RunStore.open(run_dir)
        store.lock = lock
    else:
        stem = re.sub(r"[^A-Za-z0-9._+-]", "-", ckpt_path.stem).strip("-.") or "checkpoint"
        label = cfg.name if (stem in _GENERIC_STEMS and base is not None) else stem
        store = RunStore.create(cfg.output.root, check_run_name(f"eval-{label}"[:80]))
        store.write_config(cfg.to_yaml())
        store(RunStarted(run_id=store.id, name=store.id.split("-", 2)[-1], device=str(device),
                         num_classes=data.num_classes, class_names=data.class_names, epochs=0, steps_per_epoch=0,
                         train_size=len(data.train_y), val_size=len(data.val_y), test_size=len(data.test_y),
                         model=cfg.model.name, dataset=cfg.data.source, pid=os.getpid(), host=socket.gethostname()))
    from cifartui.record.atomic import atomic_write_text

    (store.path / "eval").mkdir(exist_ok=True)
    atomic_write_text(store.path / "eval" / f"{split_name}.yaml", cfg.to_yaml())
    try:
        if cfg.output.save_samples:
            store(Samples(split=split_name, num_samples=len(ys), arrays={"images": thumbnails(xs)}))
        store(Log(message=f"eval: {ckpt_path} (epoch {epoch}) on {cfg.data.source} {split} ({len(ys)} images"
                          f"{', overrides ' + ' '.join(overrides) if overrides else ''}): top-1 {result.top1:.4f}, "
                          f"top-5 {result.top5:.4f}, loss {result.loss:.4f} -> evaluation {split_name}"))
        store(Evaluation(split=split_name, epoch=epoch, loss=result.loss, top1=result.top1, top5=result.top5,
                         num_samples=int(result.targets.size), arrays={**result.arrays(), "refs": data.refs[split]},
                         fingerprint=split_fingerprint(xs, ys), tta=cfg.eval.tta,
                         weights=obj.get("weights") if obj.get("weights") in ("raw", "ema") else ""))
        if mode == "checkpoint":
            store(RunEnded(status="completed", reason=f"evaluation of {ckpt_path}", epochs_done=0))
    finally:
        store.close()
    return {"run": str(store.path), "evaluation": split_name, "new_run": mode == "checkpoint", "checkpoint": str(ckpt_path),
            "epoch": epoch, "data": cfg.data.source, "split": split, "num_samples": int(result.targets.size),
            "top1": result.top1, "top5": result.top5, "loss": result.loss, "seconds": seconds}


def _apply(cfg, overrides: list[str]):
    from cifartui.config import parse_override

    return cfg.with_overrides(**dict(parse_override(o) for o in overrides))


def cmd_eval(args) -> int:
    from cifartui.commands import root_of

    out = evaluate(args.source, args.overrides, root_of(args), args.split, args.name,
                   root_given=bool(getattr(args, "sub_root", None) or args.root))
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    where = f"new run {out['run']}" if out["new_run"] else out["run"]
    epoch = f" (epoch {out['epoch']})" if out["epoch"] else ""
    print(f"{Path(out['checkpoint']).name}{epoch} on {out['data']} {out['split']}, {out['num_samples']} "
          f"images: top-1 {100 * out['top1']:.2f}%, top-5 {100 * out['top5']:.2f}%, loss {out['loss']:.4f} "
          f"({out['seconds']:.1f}s)")
    print(f"stored as evaluation {out['evaluation']} in {where}")
    print(f"  cifartui report {out['run']} --split {out['evaluation']}")
    return 0


# -- predict -------------------------------------------------------------------------------------------
def _native_size(run_dir: Path | None) -> int | None:
    """The side of the images the run trained on before resizing, when its data has one fixed size."""
    if run_dir is None:
        return None
    from cifartui.record.store import read_config_data

    cfg = read_config_data(run_dir)
    data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    source = data.get("source")
    if source in ("cifar10", "cifar100"):
        return 32
    if source == "synthetic":
        return int(data.get("synthetic_size") or 32)
    return None


def _read_image(path: str, native: int | None, image_size: int):
    """uint8 H,W,3: centre-cropped to a square, at the native size (else at ``image_size``)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h)
            if w != h:
                left, top = (w - side) // 2, (h - side) // 2
                im = im.crop((left, top, left + side, top + side))
            target = native or image_size
            if side != target:
                im = im.resize((target, target), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise EvalError(f"predict: {path!r} does not exist.") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise EvalError(f"predict: {path!r} is not a readable image ({exc}).") from None


class Trained:
    """A run's best.pt as a model on the CPU (or ``device``), with what its evaluation transform needs."""

    def __init__(self, source: str, root: str = "runs", command: str = "predict", device: str = "cpu"):
        from cifartui.core.engine import resolve_device
        from cifartui.core.model import load_exact_weights
        from cifartui.record.store import is_run_dir, load_classes, resolve_run

        src = Path(source).expanduser()
        if src.is_file():
            ckpt_path, run_dir = src, (src.parent if is_run_dir(src.parent) else None)
        else:
            run_dir = resolve_run(source, root)
            ckpt_path = run_dir / "best.pt"
            if not ckpt_path.exists():
                raise EvalError(f"{command}: {run_dir.name} has no best.pt (it ended before its first epoch).")
        obj, sd = _load_checkpoint(ckpt_path, command)
        arch = obj.get("arch")
        if not isinstance(arch, str):
            raise EvalError(f"{command}: {str(ckpt_path)!r} does not record its architecture, classes and normalisation; "
                            "give a run (its best.pt holds them).")
        self.names = list(obj.get("class_names") or (load_classes(run_dir) if run_dir else []))
        self.num_classes = int(obj.get("num_classes") or len(self.names))
        model, data_cfg = _build(arch, self.num_classes)
        load_exact_weights(model, sd, str(ckpt_path), command, {"arch": arch})
        self.image_size = int(obj.get("image_size") or data_cfg["input_size"][-1])
        self.mean = tuple(obj.get("mean") or data_cfg["mean"])
        self.std = tuple(obj.get("std") or data_cfg["std"])
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.arch, self.run_dir = arch, run_dir


def predict(source: str, images: list[str], root: str = "runs", top: int = 5, device: str = "cpu") -> list[dict[str, Any]]:
    """For each image: its top-``top`` classes with probabilities, most likely first."""
    import numpy as np
    import torch

    from cifartui.core.loader import BatchLoader

    trained = Trained(source, root, "predict", device)
    model, names, num_classes, run_dir = trained.model, trained.names, trained.num_classes, trained.run_dir
    image_size, mean, std, dev = trained.image_size, trained.mean, trained.std, trained.device
    native = _native_size(run_dir)
    arrays = [_read_image(p, native, image_size) for p in images]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous().to(dev)
    loader = BatchLoader(x, torch.zeros(len(arrays), dtype=torch.int64, device=dev), 64, mean=mean, std=std,
                         image_size=image_size)  # the evaluation transform of training: resize, normalise
    k = max(1, min(top, num_classes))
    probs = []
    with torch.no_grad():
        for _step, batch, _y, _idx in loader.batches():
            probs.append(model(batch).float().softmax(1).cpu())
    p = torch.cat(probs)
    values, indices = p.topk(k, 1)
    out = []
    for path, vals, idxs in zip(images, values.tolist(), indices.tolist()):
        out.append({"image": path, "top": [{"class": names[i] if i < len(names) else str(i), "index": i, "prob": v}
                                           for v, i in zip(vals, idxs)]})
    return out


def cmd_predict(args) -> int:
    from cifartui.commands import root_of

    if args.top < 1:
        raise EvalError("predict -k: give 1 or more")
    results = predict(args.run, args.images, root_of(args), args.top, args.device)
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    width = max((len(t["class"]) for r in results for t in r["top"]), default=5)
    for r in results:
        print(r["image"])
        for n, t in enumerate(r["top"], 1):
            print(f"  {n}. {t['class']:<{width}}  {100 * t['prob']:6.2f}%")
    return 0
