"""The Trainer: fit / evaluate / test, AMP, optimizer and schedule, early stopping, a stop flag, events out.

It knows nothing about who listens: it calls ``sinks`` with events (record/events.py). It writes its
checkpoints into ``run_dir``; everything else (events, arrays) is written by the store sink.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import socket
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2

from cifartui.config import Config
from cifartui.core import checkpoint as ckpt
from cifartui.core import distributed as ddp
from cifartui.core.data import load_data, split_fingerprint
from cifartui.core.environment import torch_environment
from cifartui.record.events import Checkpoint, EpochEnd, Evaluation, Event, Log, RunEnded, RunStarted, Samples, Step
from cifartui.core.loader import BatchLoader
from cifartui.core.mixing import BatchMixer
from cifartui.core.recipe import backward_in_chunks, make_criterion, make_ema
from cifartui.core.model import build_model, load_exact_weights
from cifartui.errors import ResumeRefused, UserError
from cifartui.record.control import STOP_FILE, StopRequest

Sink = Callable[[Event], None]
# Fine-tuning from trained weights wants a learning rate 10-100x below training from scratch.
FINE_TUNE_LR_WARN = 1e-5


class TrainingError(Exception):
    """Training cannot go on (a non-finite loss); the message says why. Exit code 1."""


class SetupError(UserError):
    """The run cannot start as configured (device, resume); exit code 2."""


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SetupError(f"device: {spec!r} but no CUDA GPU is visible here. Use device: auto or cpu.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise SetupError(f"device: {spec!r} but only {torch.cuda.device_count()} GPU(s) are visible.")
    return dev


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if mode == "bf16" else torch.float16


def lr_factor(step: int, total: int, warmup: int, kind: str, steps_per_epoch: int) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (per-step schedules, linear warmup)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    if kind == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    if kind == "step":  # x0.1 at 1/3 and 2/3 of training
        return 0.1 ** int(min(2, 3 * t))
    if kind == "onecycle":  # torch OneCycleLR's shape: lr/25 -> lr over 30%, then down to lr/1e4 (cosine)
        if t < 0.3:
            return 1 / 25 + (1 - 1 / 25) * 0.5 * (1 - math.cos(math.pi * t / 0.3))
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * (t - 0.3) / 0.7))
    return 1.0


class StepSchedule:
    """The lr as a pure function of the global optimizer step: ``base x factor(step)``. No state to save:
    a resume sets the step from its (epoch, step) position. Same values as torch's ``LambdaLR`` over
    ``factor``, whose lr after k ``step()`` calls (the lr optimizer step k uses) is ``base x factor(k)``."""

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, factor: Callable[[int], float]):
        self.optimizer, self.factor = optimizer, factor
        self.base_lr = base_lr  # timm's param groups (decay / no decay) share one lr
        self.at(0)

    def at(self, step: int) -> None:
        """Set every param group's lr for global optimizer step ``step`` (0-based)."""
        self.step = step
        lr = self.base_lr * self.factor(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr


@dataclass
class EvalResult:
    loss: float
    top1: float
    top5: float
    confusion: np.ndarray
    targets: np.ndarray
    preds: np.ndarray
    pred_prob: np.ndarray
    true_prob: np.ndarray
    probs: np.ndarray | None = None  # float16 [N, C], every class's probability (``keep_probs``): for cleanlab

    def arrays(self) -> dict[str, np.ndarray]:
        return {"confusion": self.confusion, "targets": self.targets, "preds": self.preds,
                "pred_prob": self.pred_prob, "true_prob": self.true_prob,
                **({"probs": self.probs} if self.probs is not None else {})}


def thumbnails(x: torch.Tensor, max_side: int = 64) -> np.ndarray:
    """uint8 N,H,W,3 thumbnails for the drilldown (large images downscaled with antialiasing)."""
    if x.shape[-1] > max_side:
        out = []
        for chunk in x.split(512):
            out.append(F.interpolate(chunk.float(), size=(max_side, max_side), mode="bilinear", antialias=True).round().clamp(0, 255).to(torch.uint8))
        x = torch.cat(out)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision on CUDA when asked (``amp_dtype``), nothing otherwise."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: BatchLoader, num_classes: int, device: torch.device,
             amp: torch.dtype | None = None, tta: str = "none", keep_probs: bool = False) -> EvalResult:
    """Score ``model`` on every batch of ``loader``: loss, top-1/top-5, the confusion matrix and per-sample
    predictions. Under torchrun each rank scores its shard and the figures are summed over all ranks.
    The trainer (each epoch's validation, the final test) and ``cifartui eval`` both call it.
    ``tta="flip"``: the logits are the mean of the image's and its horizontal mirror's.
    ``keep_probs``: also every class's probability per sample, float16 (N x C x 2 bytes: 50,000 x 100 is 10 MB)."""
    was_training = model.training
    model.eval()
    c, dev = num_classes, device
    loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
    confusion = torch.zeros(c * c, device=dev, dtype=torch.int64)
    top5 = torch.zeros((), device=dev, dtype=torch.int64)
    preds, pred_prob, true_prob, targets, probs = [], [], [], [], []
    k = min(5, c)
    for _step, x, y, _idx in loader.batches():
        with autocast(dev, amp):
            logits = model(x)
            if tta == "flip":
                logits = (logits.float() + model(x.flip(3)).float()) / 2
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        prob = logits.softmax(1)
        p, pred = prob.max(1)
        confusion += torch.bincount(y * c + pred, minlength=c * c)
        top5 += (logits.topk(k, 1).indices == y[:, None]).any(1).sum()
        preds.append(pred)
        pred_prob.append(p)
        true_prob.append(prob.gather(1, y[:, None]).squeeze(1))
        targets.append(y)
        if keep_probs:
            probs.append(prob.half().flatten())  # flat: gather_cat joins 1-D shards
    model.train(was_training)
    ddp.all_sum(loss_sum), ddp.all_sum(confusion), ddp.all_sum(top5)
    cat = lambda parts, dtype: ddp.gather_cat(torch.cat(parts).to(dtype)) if parts else torch.zeros(0, dtype=dtype, device=dev)  # noqa: E731
    preds_t, targets_t = cat(preds, torch.int64), cat(targets, torch.int64)
    pp, tp = cat(pred_prob, torch.float32), cat(true_prob, torch.float32)
    n = max(1, int(targets_t.numel()))
    conf = confusion.view(c, c).cpu().numpy()
    return EvalResult(
        loss=float(loss_sum.item()) / n, top1=float(np.trace(conf)) / n, top5=float(top5.item()) / n,
        confusion=conf.astype(np.int32), targets=targets_t.cpu().numpy().astype(np.int32),
        preds=preds_t.cpu().numpy().astype(np.int32), pred_prob=pp.cpu().numpy().astype(np.float16),
        true_prob=tp.cpu().numpy().astype(np.float16),
        probs=cat(probs, torch.float16).view(-1, c).cpu().numpy() if keep_probs else None,
    )


class Trainer:
    def __init__(self, cfg: Config, run_dir: str | os.PathLike | None, sinks: Iterable[Sink] = (),
                 stop: threading.Event | None = None, run_id: str = "", resume: bool = False,
                 environment: dict | None = None):
        self.cfg = cfg
        self.environment = dict(environment or {})  # cifartui.environment's; run_started adds CUDA and the GPUs
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.sinks = list(sinks)
        self.stop = stop or StopRequest()
        self.run_id = run_id or (self.run_dir.name if self.run_dir else cfg.name)
        self.resume = resume
        self.dist = ddp.from_env()

        self.stop_file = self.run_dir / STOP_FILE if self.run_dir is not None and self.dist.is_main else None
        self._fingerprints: dict[str, str] = {}  # split -> split_fingerprint of its images

    # -- events -----------------------------------------------------------------------------------
    _held: list[Event] | None = None  # a resume's set-up events, written only once no check refused it

    def _release_held(self) -> None:
        held, self._held = self._held or [], None
        for event in held:
            self.emit(event)

    def emit(self, event: Event) -> None:
        if not self.dist.is_main:
            return
        if self._held is not None:
            self._held.append(event)
            return
        for sink in self.sinks:
            sink(event)

    def log(self, level: str, message: str, progress: float | None = None) -> None:
        self.emit(Log(message=message, level=level, progress=progress))

    # -- setup ------------------------------------------------------------------------------------
    def _seed(self) -> None:
        seed = self.cfg.seed + self.dist.rank
        random.seed(seed)
        np.random.seed(seed % (2**32))
        torch.manual_seed(seed)

    def setup(self) -> None:
        cfg, t = self.cfg, self.cfg.train
        if self.dist.enabled and self.cfg.device in ("auto", "cuda") and torch.cuda.is_available():
            if self.dist.local_rank >= torch.cuda.device_count():
                raise SetupError(f"torchrun: local rank {self.dist.local_rank} but {torch.cuda.device_count()} GPU(s) are "
                                 "visible on this node; give --nproc_per_node at most the number of GPUs.")
            self.device = torch.device("cuda", self.dist.local_rank)  # one GPU per process
        else:
            self.device = resolve_device(cfg.device)
            if self.device.type == "cuda" and int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1:
                raise SetupError(f"device: {cfg.device!r} would put every process of this node on one GPU; "
                                 "use device: auto (or cuda) under torchrun: each process takes cuda:LOCAL_RANK.")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        ddp.init(self.dist, self.device)
        self._seed()
        # under torchrun one process downloads first, the others then find the files (no racing writers)
        with ddp.main_first(self.dist, active=cfg.data.source in ("cifar10", "cifar100") and cfg.data.download):
            data = load_data(cfg.data, cfg.seed, notify=self.log)
        with ddp.main_first(self.dist, active=bool(cfg.model.pretrained)):
            model, data_cfg = build_model(cfg.model, data.num_classes, notify=self.log)
        if cfg.model.pretrained:
            data.mean, data.std = tuple(data_cfg["mean"]), tuple(data_cfg["std"])
            if cfg.data.image_size is None and data.image_size < 64:
                self.log("warning", f"Pretrained {cfg.model.name} expects {data_cfg['input_size'][-1]}px input; "
                                    f"training at {data.image_size}px. Set data.image_size={data_cfg['input_size'][-1]} for full accuracy.")
        if cfg.model.checkpoint and t.lr > FINE_TUNE_LR_WARN:
            self.log("warning", f"train.lr={t.lr:g} while starting from trained weights ({cfg.model.checkpoint}): "
                                "fine-tuning usually wants a 10-100x lower lr (e.g. 1e-5) to keep what was learned.")
        self.data = data
        self.image_size = cfg.data.image_size or data.image_size
        self.channels_last = t.channels_last and self.device.type == "cuda"
        self.amp_dtype = amp_dtype(t.amp, self.device)
        self.model = model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        self.train_model = self.model
        # before any wrapper (DDP, compile): a plain copy. Its first update copies the weights (timm's decay
        # is 0 at update 1), so under DDP it starts from the broadcast weights like the model does.
        self.ema = make_ema(self.model, cfg)
        lr = t.lr
        if self.dist.enabled:
            ws = self.dist.world_size
            if len(data.train_y) < ws:
                raise SetupError(f"torchrun: {len(data.train_y)} training images cannot be shared by {ws} processes.")
            if t.sync_bn and self.device.type == "cuda":
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            elif t.sync_bn:
                self.log("warning", "train.sync_bn needs CUDA (torch's SyncBatchNorm); on the CPU every process "
                                    "keeps its own batch statistics.")
            if self.device.type == "cpu":  # 1x1-conv grads come back in an equivalent layout with other strides
                warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
            self.train_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            lr = t.lr * ws if t.scale_lr else t.lr
            per_rank = t.batch_size * t.accum_steps  # images per rank per optimizer step
            self.log("info", f"DDP: {ws} processes ({'nccl' if self.device.type == 'cuda' else 'gloo'}), global batch "
                             f"{per_rank} x {ws} = {per_rank * ws}, lr {lr:g}"
                             + (f" (train.lr {t.lr:g} x {ws}, scale_lr)" if t.scale_lr else ""))
        if t.compile:
            self.train_model = torch.compile(self.train_model)

        on = lambda x: x.to(self.device, non_blocking=True)  # noqa: E731
        common = dict(mean=data.mean, std=data.std, image_size=self.image_size, channels_last=self.channels_last,
                      rank=self.dist.rank, world_size=self.dist.world_size)
        # with train.accum_steps the loader yields the whole optimizer batch; train_epoch cuts it (core/recipe.py)
        self.train_loader = BatchLoader(on(data.train_x), on(data.train_y), t.batch_size * t.accum_steps,
                                        augment=cfg.data.augment, padding=cfg.data.crop_padding, shuffle=True,
                                        drop_last=True, seed=cfg.seed, policy_magnitude=cfg.data.randaug_magnitude,
                                        **common)
        if t.accum_steps > 1:
            self.log("info", f"gradient accumulation: {t.accum_steps} x {t.batch_size} = {t.batch_size * t.accum_steps} "
                             "images per optimizer step")
        eval_bs = t.eval_batch_size or max(t.batch_size, 256 if self.device.type == "cuda" else t.batch_size)
        self.val_loader = BatchLoader(on(data.val_x), on(data.val_y), eval_bs, **common)
        self.test_loader = BatchLoader(on(data.test_x), on(data.test_y), eval_bs, **common)

        # timm's factory on the unwrapped model: without decay_norm_and_bias, biases, norm weights (all 1-d
        # params) and the model's no_weight_decay() names go to a param group with weight_decay 0.
        # timm's "sgd" is Nesterov SGD (which needs momentum > 0), "momentum" plain SGD; extra kwargs reach torch.
        opt = "momentum" if t.optimizer == "sgd" and t.momentum == 0 else t.optimizer
        self.optimizer = create_optimizer_v2(
            self.model, opt=opt, lr=lr, weight_decay=t.weight_decay, momentum=t.momentum,
            filter_bias_and_bn=not t.decay_norm_and_bias, **({"fused": True} if self.device.type == "cuda" else {}))
        self.base_lr = lr
        steps = len(self.train_loader)
        total, warmup = t.epochs * steps, int(t.warmup_epochs * steps)
        self.scheduler = StepSchedule(self.optimizer, lr, lambda s: lr_factor(s, total, warmup, t.scheduler, steps))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.criterion = make_criterion(cfg)  # soft targets under Mixup/CutMix
        self.mixer = (BatchMixer(cfg.data.mixup, cfg.data.cutmix, cfg.data.mix_prob, t.label_smoothing, data.num_classes)
                      if cfg.data.mixup > 0 or cfg.data.cutmix > 0 else None)

        # position and bookkeeping (restored by resume)
        self.epoch, self.step = 1, 0
        self.best_val_acc, self.best_epoch, self.bad_epochs = -1.0, 0, 0
        self.best_weights = "raw"  # which weights best.pt holds: "ema" when the EMA scored better
        self.accum = {"loss": 0.0, "correct": 0.0, "seen": 0, "seconds": 0.0}
        self.resumed_from = None
        if self.resume:
            self._load_resume_state()

    def autocast(self):
        return autocast(self.device, self.amp_dtype)

    # -- checkpoints ------------------------------------------------------------------------------
    def _resume_state(self, epoch: int, step: int) -> dict:
        rng = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]) + [random.getstate()[2] or -1]}
        np_state = np.random.get_state()
        rng["numpy"] = torch.from_numpy(np_state[1].astype(np.int64))
        rng["numpy_pos"] = int(np_state[2])
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
            "epoch": epoch, "step": step, "accum": dict(self.accum),
            "best_val_acc": self.best_val_acc, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
            "best_weights": self.best_weights, "rng": rng, "config": self.cfg.to_yaml(), "class_names": self.data.class_names,
            "arch": self.cfg.model.name, "num_classes": self.data.num_classes, "world_size": self.dist.world_size,
            **({"ema": self.ema.module.state_dict()} if self.ema is not None else {}),
        }

    def save_last(self, epoch: int, step: int) -> None:
        """Full resume state: ``epoch``/``step`` is where training continues."""
        if self.run_dir is None or not self.dist.is_main:
            return
        path = self.run_dir / "last.pt"
        ckpt.save(self._resume_state(epoch, step), path)
        self.emit(Checkpoint(kind="last", path="last.pt", epoch=epoch, step=step))

    def save_best(self, epoch: int, val_acc: float, weights: str = "raw") -> None:
        """best.pt: the raw weights, or under train.ema the EMA's when they scored better (``weights``)."""
        if self.run_dir is None or not self.dist.is_main:
            return
        model = self.ema.module if weights == "ema" else self.model
        ckpt.save({"state_dict": model.state_dict(), "arch": self.cfg.model.name,
                   "num_classes": self.data.num_classes, "class_names": self.data.class_names,
                   "epoch": epoch, "val_acc": val_acc, "mean": list(self.data.mean), "std": list(self.data.std),
                   "image_size": self.image_size, "weights": weights}, self.run_dir / "best.pt")
        self.emit(Checkpoint(kind="best", path="best.pt", epoch=epoch, metric=val_acc, weights=weights))

    def _load_resume_state(self) -> None:
        from cifartui.config import check_resume, load_text

        path = self.run_dir / "last.pt"
        state = ckpt.load(path, field="--resume")
        check_resume(load_text(state["config"], "last.pt config"), self.cfg)  # session.prepare checked config.yaml
        saved_names = list(state.get("class_names") or [])
        if saved_names and saved_names != list(self.data.class_names):
            changed = [f"{i}: {a!r} -> {b!r}" for i, (a, b) in enumerate(zip(saved_names, self.data.class_names)) if a != b]
            raise SetupError(
                f"--resume: the data's classes are not the run's ({len(saved_names)} saved, {len(self.data.class_names)} "
                f"now; {'; '.join(changed[:3]) or 'a different count'}): its history would be relabelled.\n"
                "  Resume with the data the run trained on (data.root), or start a new run with model.checkpoint."
            )
        load_exact_weights(self.model, state["model"], str(path), "--resume", {"arch": state.get("arch")})
        if self.ema is not None:
            if "ema" not in state:  # train.ema cannot change on resume (check_resume), so a damaged file
                raise SetupError(f"--resume: {path} holds no EMA weights but train.ema is on; start a new run "
                                 "from its weights with model.checkpoint.")
            load_exact_weights(self.ema.module, state["ema"], str(path), "--resume (EMA)", {"arch": state.get("arch")})
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as exc:  # e.g. one param group from before weight decay skipped norm layers and biases
            raise SetupError(f"--resume: the optimizer state in {path} does not fit this optimizer ({exc}); it was "
                             "probably written by an older cifartui. Start a new run from its weights with "
                             "model.checkpoint.") from exc
        self.scaler.load_state_dict(state["scaler"])  # an old last.pt's "scheduler" entry is not needed: see StepSchedule
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.scheduler.at((self.epoch - 1) * len(self.train_loader) + self.step)
        self.accum = dict(state["accum"])
        self.best_val_acc, self.best_epoch = float(state["best_val_acc"]), int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])
        self.best_weights = str(state.get("best_weights", "raw"))
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        py = rng["python"]
        random.setstate((3, tuple(int(v) for v in py[:-1]), None if py[-1] == -1 else py[-1]))
        np.random.set_state(("MT19937", rng["numpy"].numpy().astype(np.uint32), rng["numpy_pos"], 0, 0.0))
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.dist.world_size:
            self._adapt_to_world_size(saved_world)
        if self.dist.rank > 0:  # last.pt holds rank 0's RNG state: give the other ranks their own streams again
            torch.manual_seed(((self.cfg.seed + self.dist.rank) * 1_000_003 + self.epoch * 10_007 + self.step) % 2**63)
        self.resumed_from = self.epoch
        self.log("info", f"Resumed from {path} at epoch {self.epoch}, step {self.step}")

    def _adapt_to_world_size(self, saved_world: int) -> None:
        """last.pt was written by another number of processes: keep the epoch, map the position and the lr.

        Shards are dealt round-robin from one order per epoch, so after k steps the ranks together have
        used the first k x batch x world_size samples of it; the same prefix at the new world size is
        k x old / new steps (rounded down: a few samples may be seen twice, none skipped).
        """
        world, steps = self.dist.world_size, len(self.train_loader)
        per_rank = self.cfg.train.batch_size * self.cfg.train.accum_steps
        old_step = self.step
        self.step = min(steps, self.step * saved_world // world)
        # the base lr is already this world size's (setup: train.lr, x world_size with scale_lr), not the
        # saved run's; the schedule counts steps of this world size
        self.scheduler.at((self.epoch - 1) * steps + self.step)
        self.log("warning", f"--resume: last.pt was written by {saved_world} process(es), this run has {world}: "
                            f"global batch {per_rank * saved_world} -> {per_rank * world}"
                            + (f", epoch {self.epoch} step {old_step} -> step {self.step}" if old_step else ""))

    # -- evaluation -------------------------------------------------------------------------------
    def evaluate(self, loader: BatchLoader, model: torch.nn.Module | None = None, keep_probs: bool = False) -> EvalResult:
        """``model`` (default: the raw weights; the EMA's under train.ema) scored with eval.tta."""
        return evaluate(self.model if model is None else model, loader, self.data.num_classes, self.device,
                        self.amp_dtype, self.cfg.eval.tta, keep_probs=keep_probs)

    def arrays(self, result: EvalResult, split: str) -> dict[str, np.ndarray]:
        """An evaluation's arrays with each image's stable reference (``refs``, core/data.py), so readers can
        name an image (`suspects`) or load it alone (`cam`)."""
        refs = self.data.refs.get(split)
        return {**result.arrays(), **({"refs": refs} if refs is not None else {})}

    def fingerprint(self, split: str) -> str | None:
        """The split's image fingerprint for its evaluation events, hashed once per run (on rank 0: it emits)."""
        if not self.dist.is_main:
            return None
        if split not in self._fingerprints:
            x, y = {"val": (self.data.val_x, self.data.val_y), "test": (self.data.test_x, self.data.test_y)}[split]
            self._fingerprints[split] = split_fingerprint(x, y)
        return self._fingerprints[split]

    # -- training ---------------------------------------------------------------------------------
    def _stop_requested(self, check_file: bool = True) -> bool:
        """The stop flag (signals, the app) or a stop request file in the run folder (anyone, any host).
        Under torchrun rank 0 reads the file and the collective tells the others."""
        if check_file and not self.stop.is_set() and self.stop_file is not None and self.stop_file.exists():
            from cifartui.record.control import read_stop_request

            by = read_stop_request(self.run_dir).get("by") or "another process"
            self.log("warning", f"stop requested by {by}: stopping after this step, saving last.pt")
            self.stop.reason = f"stopped by request from {by}; resume with --resume"
            self.stop.set()
            self.stop_file.unlink(missing_ok=True)
        return ddp.any_true(self.stop.is_set(), self.device) if self.dist.enabled else self.stop.is_set()

    def train_epoch(self, epoch: int, start_step: int) -> bool:
        """One epoch from ``start_step``; returns False when a stop request cut it short."""
        t, loader, dev = self.cfg.train, self.train_loader, self.device
        loader.set_epoch(epoch)
        self.train_model.train()
        steps = len(loader)
        first = (epoch - 1) * steps  # global optimizer step of this epoch's step 0: the lr schedule's argument
        loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
        correct = torch.zeros((), device=dev, dtype=torch.int64)
        first_bad = torch.full((), -1, device=dev, dtype=torch.int64)
        seen = 0
        mark_time, mark_seen = time.perf_counter(), 0
        epoch_start = time.perf_counter()
        save_every = getattr(t, "save_every_steps", 0)
        no_sync = getattr(self.train_model, "no_sync", None) if self.dist.enabled else None  # DDP: accumulate quietly

        def flush_accum() -> None:
            loss_v, correct_v, seen_v = float(loss_sum.item()), float(correct.item()), seen
            if self.dist.enabled:  # train figures over all ranks; every rank flushes at the same step
                sums = ddp.all_sum(torch.tensor([loss_v, correct_v, float(seen)], dtype=torch.float64, device=dev))
                loss_v, correct_v, seen_v = float(sums[0]), float(sums[1]), int(sums[2])
            self.accum["loss"] += loss_v
            self.accum["correct"] += correct_v
            self.accum["seen"] += seen_v
            self.accum["seconds"] += time.perf_counter() - epoch_start

        for step, x, y, _idx in loader.batches(start_step):
            # every step alone; every log interval under DDP, where asking costs a collective
            # the flag every step; the file (a stat, slow on NFS) and, under DDP, the collective every log interval
            at_interval = step % t.log_interval == 0
            if (not self.dist.enabled or at_interval) and self._stop_requested(check_file=at_interval):
                if not self.stop.is_set():  # under torchrun: the signal reached another process
                    self.log("info", f"stop requested in another process; all {self.dist.world_size} stop at epoch {epoch}, step {step}")
                flush_accum()
                self.save_last(epoch, step)
                return False
            target = y
            if self.mixer is not None:  # Mixup/CutMix in place, soft targets; its draws keyed like the loader's
                x, target = self.mixer(x, y, (self.cfg.seed, epoch, step, self.dist.rank))
            self.optimizer.zero_grad(set_to_none=True)
            # forward + backward, in train.batch_size chunks under train.accum_steps (core/recipe.py)
            loss_d, logits = backward_in_chunks(self.train_model, x, target, t.batch_size, self.criterion,
                                                self.scaler.scale, self.autocast, no_sync)
            if t.grad_clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
            self.scheduler.at(first + step)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.ema is not None:  # update k of the EMA (1-based: timm's decay warmup counts updates)
                self.ema.update(self.model, step=first + step + 1)
            b = y.shape[0]
            loss_sum += loss_d.double() * b
            if self.mixer is None:  # against mixed targets an accuracy means nothing: not counted
                correct += (logits.argmax(1) == y).sum()
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss_d), step, first_bad)  # no host sync
            seen += b
            last = step + 1 == steps
            if (step + 1) % t.log_interval == 0 or last:
                # the only host sync of the loop: once per log interval
                bad = ddp.first_flagged(first_bad) if self.dist.enabled else int(first_bad.item())  # all ranks raise together
                if bad >= 0:
                    raise TrainingError(f"non-finite loss at epoch {epoch}, step {bad + 1}: the last good checkpoint is kept. "
                                        "Lower train.lr, set train.grad_clip, or use train.amp=bf16.")
                now = time.perf_counter()
                ws = self.dist.world_size  # running figures: rank 0's batches stand for all ranks (exact at epoch end)
                total_seen = self.accum["seen"] + seen * ws
                self.emit(Step(epoch=epoch, step=step + 1, steps=steps,
                               loss=(self.accum["loss"] + float(loss_sum.item()) * ws) / max(1, total_seen),
                               acc=None if self.mixer is not None else
                               (self.accum["correct"] + float(correct.item()) * ws) / max(1, total_seen),
                               lr=self.optimizer.param_groups[0]["lr"],
                               images_per_second=(seen - mark_seen) * self.dist.world_size / max(1e-9, now - mark_time)))
                mark_time, mark_seen = now, seen
            if save_every and (step + 1) % save_every == 0 and not last:
                flush_accum()
                loss_sum.zero_(), correct.zero_()
                seen, epoch_start = 0, time.perf_counter()
                mark_seen = 0
                self.save_last(epoch, step + 1)
        flush_accum()
        return True

    def fit(self) -> RunEnded:
        cfg, t = self.cfg, self.cfg.train
        data = self.data
        gpu = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else ""
        self.emit(RunStarted(
            run_id=self.run_id, name=cfg.name, device=str(self.device), device_name=gpu,
            num_classes=data.num_classes, class_names=data.class_names, epochs=t.epochs,
            steps_per_epoch=len(self.train_loader), train_size=len(data.train_y), val_size=len(data.val_y),
            test_size=len(data.test_y), world_size=self.dist.world_size, model=cfg.model.name,
            dataset=cfg.data.source, resumed_from_epoch=self.resumed_from, pid=os.getpid(), host=socket.gethostname(),
            environment={**self.environment, **torch_environment(
                self.device, int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if self.dist.enabled else 1)}))
        if cfg.output.save_samples and self.resumed_from is None and self.dist.is_main:
            self.emit(Samples(split="val", num_samples=len(data.val_y), arrays={"images": thumbnails(data.val_x)}))
            self.emit(Samples(split="test", num_samples=len(data.test_y), arrays={"images": thumbnails(data.test_x)}))
        status, reason = "completed", f"finished {t.epochs} epochs"
        epoch, start_step = self.epoch, self.step
        while epoch <= t.epochs:
            if start_step == 0:
                self.accum = {"loss": 0.0, "correct": 0.0, "seen": 0, "seconds": 0.0}
            if not self.train_epoch(epoch, start_step):
                reason = getattr(self.stop, "reason", "") or "stopped by request; resume with --resume"
                return self._end("stopped", reason, epoch - 1)
            start_step = 0
            train_seconds = self.accum["seconds"]
            t0 = time.perf_counter()
            if self.dist.enabled:  # one set of BatchNorm statistics: the one rank 0 saves and every shard uses
                ddp.average_buffers(self.model)
            val = self.evaluate(self.val_loader)
            val_ema = None
            if self.ema is not None:  # the moving average, scored on the same split
                if self.dist.enabled:
                    ddp.average_buffers(self.ema.module)
                val_ema = self.evaluate(self.val_loader, self.ema.module)
            epoch_seconds = train_seconds + time.perf_counter() - t0
            score, weights = val.top1, "raw"
            if val_ema is not None and val_ema.top1 > val.top1:
                score, weights = val_ema.top1, "ema"
            is_best = score > self.best_val_acc
            if is_best:
                self.best_val_acc, self.best_epoch, self.bad_epochs = score, epoch, 0
                self.best_weights = weights
                self.save_best(epoch, score, weights)
            else:
                self.bad_epochs += 1
            self.emit(Evaluation(split="val", epoch=epoch, loss=val.loss, top1=val.top1, top5=val.top5,
                                 num_samples=int(val.targets.size), arrays=self.arrays(val, "val"), fingerprint=self.fingerprint("val"),
                                 tta=cfg.eval.tta, weights="raw"))
            seen = max(1, self.accum["seen"])
            self.emit(EpochEnd(
                epoch=epoch, train_loss=self.accum["loss"] / seen,
                train_acc=None if self.mixer is not None else self.accum["correct"] / seen,
                val_loss=val.loss, val_acc=val.top1, val_top5=val.top5, lr=self.optimizer.param_groups[0]["lr"],
                epoch_seconds=epoch_seconds, images_per_second=self.accum["seen"] / max(1e-9, train_seconds),
                best_val_acc=self.best_val_acc, is_best=is_best,
                gpu_memory_mb=torch.cuda.max_memory_allocated(self.device) / 2**20 if self.device.type == "cuda" else None,
                val_acc_ema=val_ema.top1 if val_ema else None, val_loss_ema=val_ema.loss if val_ema else None))
            self.save_last(epoch + 1, 0)
            early = bool(t.early_stop_patience and self.bad_epochs >= t.early_stop_patience and epoch < t.epochs)
            if self.dist.enabled:  # already equal on all ranks (val.top1 comes from all-reduced counts); made certain
                early = ddp.any_true(early, self.device)
            if early:
                status = "early_stopped"
                reason = (f"early stopping: no better validation accuracy for {self.bad_epochs} epochs "
                          f"(best {self.best_val_acc:.4f} at epoch {self.best_epoch})")
                break
            epoch += 1
        return self._test_and_end(status, reason, min(epoch, t.epochs))

    def _test_and_end(self, status: str, reason: str, epochs_done: int) -> RunEnded:
        best_path = self.run_dir / "best.pt" if self.run_dir else None
        if best_path is not None and self.dist.is_main and best_path.exists():
            load_exact_weights(self.model, ckpt.state_dict_of(ckpt.load(best_path, "best.pt")), str(best_path), "best.pt")
        if self.dist.enabled:  # every rank scores with rank 0's best weights
            ddp.broadcast_state(self.model, src=0)
        test = self.evaluate(self.test_loader, keep_probs=True)  # the best weights' probabilities: for `suspects`
        weights = self.best_weights if best_path is not None and best_path.exists() else "raw"
        self.emit(Evaluation(split="test", epoch=self.best_epoch, loss=test.loss, top1=test.top1, top5=test.top5,
                             num_samples=int(test.targets.size), arrays=self.arrays(test, "test"), fingerprint=self.fingerprint("test"),
                             tta=self.cfg.eval.tta, weights=weights))
        self.log("info", f"Test top-1 {test.top1:.4f}, top-5 {test.top5:.4f} with the best weights (epoch {self.best_epoch}"
                         + (", EMA" if weights == "ema" else "") + (", flip TTA" if self.cfg.eval.tta == "flip" else "") + ")")
        return self._end(status, reason, epochs_done, test)

    def _end(self, status: str, reason: str, epochs_done: int, test: EvalResult | None = None) -> RunEnded:
        ended = RunEnded(status=status, reason=reason, epochs_done=max(0, epochs_done),
                         best_val_acc=self.best_val_acc if self.best_val_acc >= 0 else None,
                         best_epoch=self.best_epoch or None,
                         test_acc=test.top1 if test else None, test_top5=test.top5 if test else None)
        self.emit(ended)
        return ended

    def run(self) -> RunEnded:
        """Set up and fit; any failure becomes a ``run_ended`` event with status failed, then re-raises.
        Except a resume refused at set-up (another config, other classes): the run it would have continued
        keeps its history and its status untouched."""
        fitting = False
        self._held = [] if self.resume else None
        try:
            self.setup()
            fitting = True
            self._release_held()
            ended = self.fit()
            ddp.barrier()  # no rank exits (torchrun would take that as a failure) before rank 0 has written all
            return ended
        except BaseException as exc:
            if self.resume and not fitting and isinstance(exc, UserError):
                if isinstance(exc, ResumeRefused):
                    raise
                raise ResumeRefused(str(exc)) from exc  # what set-up said is dropped with it
            self._release_held()  # a resume that failed in set-up otherwise: what it said belongs to the record
            ended = (RunEnded(status="stopped", reason="interrupted") if isinstance(exc, KeyboardInterrupt)
                     else RunEnded(status="failed", reason=f"{type(exc).__name__}: {exc}"))
            try:
                self.emit(ended)
            except Exception:  # noqa: BLE001 - a sink that cannot record the end must not hide why it ended
                pass
            raise
        finally:
            ddp.shutdown()
