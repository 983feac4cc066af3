"""Fixture runs on disk, written with the RunStore API: fixed ids, fixed times, known confusions and
thumbnails, no torch. Used by the Pilot tests, the snapshots and for looking at the app by hand:

    .venv/bin/python tests/tui/tui_fixtures.py /tmp/tuiruns-fixture
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np

from cifartui.classes import CIFAR100_SUPERCLASSES
from cifartui.config import Config
from cifartui.record.events import Checkpoint, EpochEnd, Evaluation, Log, RunEnded, RunStarted, Samples, Step
from cifartui.record.store import RunStore

T0 = 1_750_000_000.0
CIFAR100_NAMES = sorted(n for group in CIFAR100_SUPERCLASSES.values() for n in group)  # official order = alphabetical
BOY, GIRL = CIFAR100_NAMES.index("boy"), CIFAR100_NAMES.index("girl")
BOY_AS_GIRL, GIRL_AS_BOY = 7, 4


def _store(root: Path, run_id: str) -> RunStore:
    path = Path(root) / run_id
    (path / "eval").mkdir(parents=True, exist_ok=True)
    return RunStore(path)


def thumbnails(targets: np.ndarray, num_classes: int, side: int = 32) -> np.ndarray:
    """Deterministic pictures: a hue per class, a stripe pattern per sample."""
    n = len(targets)
    hue = targets.astype(np.float32) / max(1, num_classes)
    base = np.stack([np.sin(2 * np.pi * (hue + k / 3)) * 0.5 + 0.5 for k in range(3)], axis=1)  # n,3
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    phase = (np.arange(n) % 7).astype(np.float32)[:, None, None]
    stripes = 0.5 + 0.5 * np.sin((xx[None] + yy[None] + phase * 3) / 3.0)
    circle = ((xx - side / 2) ** 2 + (yy - side / 2) ** 2 < (side / 3) ** 2).astype(np.float32)
    img = base[:, None, None, :] * (0.55 + 0.45 * stripes[..., None]) * (0.6 + 0.4 * circle[None, ..., None])
    return (img * 255).clip(0, 255).astype(np.uint8)


def predictions(num_classes: int, per_class: int, accuracy: float, seed: int, forced: dict | None = None):
    """targets, preds, pred_prob, true_prob with a given accuracy; ``forced[(a, b)] = k`` sets exact cells."""
    rng = np.random.default_rng(seed)
    targets = np.repeat(np.arange(num_classes), per_class).astype(np.int32)
    preds = targets.copy()
    wrong = rng.random(len(targets)) > accuracy
    shift = rng.integers(1, 4, size=len(targets))
    preds[wrong] = (targets[wrong] + shift[wrong]) % num_classes
    for (a, b), _k in (forced or {}).items():  # clear the rows first, then set exactly k of a as b
        rows = np.flatnonzero(targets == a)
        preds[rows] = np.where(preds[rows] == b, a, preds[rows])
    for (a, b), k in (forced or {}).items():
        rows = np.flatnonzero((targets == a) & (preds == a))
        preds[rows[:k]] = b
    pred_prob = np.where(preds == targets, rng.uniform(0.5, 1.0, len(targets)), rng.uniform(0.3, 0.95, len(targets)))
    true_prob = np.where(preds == targets, pred_prob, rng.uniform(0.01, 0.3, len(targets)))
    return targets, preds, pred_prob.astype(np.float16), true_prob.astype(np.float16)


def _arrays(targets, preds, pred_prob, true_prob, num_classes):
    conf = np.bincount(targets * num_classes + preds, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    return {"confusion": conf.astype(np.int32), "targets": targets, "preds": preds, "pred_prob": pred_prob, "true_prob": true_prob}


def write_run(root: Path, run_id: str, *, names: list[str], epochs: int = 5, done: int | None = None,
              status: str = "completed", per_class_val: int = 4, per_class_test: int = 10, seed: int = 0,
              model: str = "resnet18", dataset: str = "cifar100", cfg: Config | None = None,
              pid: int | None = None, steps: int = 20, lr: float = 1e-3, samples: bool = True,
              forced: dict | None = None, fingerprints: bool = False) -> Path:
    """A whole run: started, samples, steps, epochs with val evaluations, test, ended. ``fingerprints``: the
    evaluations record one per split (runs written with the same sizes then compare as the same images)."""
    store = _store(root, run_id)
    n = len(names)
    done = epochs if done is None else done
    cfg = cfg or Config().with_overrides(**{"name": run_id.split("-", 2)[-1], "data.source": dataset if dataset != "cifar100" else "cifar100",
                                            "model.name": model, "train.epochs": epochs, "train.lr": lr, "output.root": str(root)})
    store.write_config(cfg.to_yaml())
    t = T0 + seed * 10_000
    store(Log(message=f"Data {dataset}: {n * 40} train, {n * per_class_val} val, {n * per_class_test} test, {n} classes, 32px", time=t))
    store(RunStarted(run_id=run_id, name=cfg.name, device="cpu", num_classes=n, class_names=names, epochs=epochs,
                     steps_per_epoch=steps, train_size=n * 40, val_size=n * per_class_val, test_size=n * per_class_test,
                     model=model, dataset=dataset, pid=pid, host=socket.gethostname(), time=t + 1))
    val_targets = np.repeat(np.arange(n), per_class_val).astype(np.int32)
    test_targets = np.repeat(np.arange(n), per_class_test).astype(np.int32)
    if samples:
        store(Samples(split="val", num_samples=len(val_targets), arrays={"images": thumbnails(val_targets, n)}, time=t + 2))
        store(Samples(split="test", num_samples=len(test_targets), arrays={"images": thumbnails(test_targets, n)}, time=t + 2))
    best, best_epoch = -1.0, 0
    t += 5
    for epoch in range(1, done + 1):
        acc_train = min(0.99, 0.3 + 0.15 * epoch)
        for s in range(5, steps + 1, 5):
            t += 3
            store(Step(epoch=epoch, step=s, steps=steps, loss=2.5 / (epoch + s / steps), acc=acc_train * (0.8 + 0.2 * s / steps),
                       lr=lr * (1 - (epoch - 1 + s / steps) / epochs), images_per_second=410.0 + epoch, time=t))
        acc = min(0.95, 0.25 + 0.12 * epoch)
        tg, pr, pp, tp = predictions(n, per_class_val, acc, seed * 100 + epoch, forced)
        arrays = _arrays(tg, pr, pp, tp, n)
        val_acc = float(np.trace(arrays["confusion"]) / len(tg))
        is_best = val_acc > best
        if is_best:
            best, best_epoch = val_acc, epoch
            store(Checkpoint(kind="best", path="best.pt", epoch=epoch, metric=val_acc, time=t + 1))
        store(Evaluation(split="val", epoch=epoch, loss=2.0 / epoch, top1=val_acc, top5=min(1.0, val_acc + 0.2),
                         num_samples=len(tg), arrays=arrays, time=t + 2,
                         fingerprint=f"fixture-val-{len(tg)}" if fingerprints else None))
        store(EpochEnd(epoch=epoch, train_loss=2.4 / (epoch + 1), train_acc=acc_train, val_loss=2.0 / epoch, val_acc=val_acc,
                       val_top5=min(1.0, val_acc + 0.2), lr=lr * (1 - epoch / epochs), epoch_seconds=14.0, images_per_second=412.5,
                       best_val_acc=best, is_best=is_best, time=t + 3))
        store(Checkpoint(kind="last", path="last.pt", epoch=epoch + 1, time=t + 4))
        t += 5
    if status in ("completed", "early_stopped"):
        tg, pr, pp, tp = predictions(n, per_class_test, min(0.95, 0.25 + 0.12 * best_epoch), seed * 100 + 99, forced)
        arrays = _arrays(tg, pr, pp, tp, n)
        test_acc = float(np.trace(arrays["confusion"]) / len(tg))
        store(Evaluation(split="test", epoch=best_epoch, loss=1.1, top1=test_acc, top5=min(1.0, test_acc + 0.2),
                         num_samples=len(tg), arrays=arrays, time=t + 1,
                         fingerprint=f"fixture-test-{len(tg)}" if fingerprints else None))
        store(Log(message=f"Test top-1 {test_acc:.4f} with the best weights (epoch {best_epoch})", time=t + 2))
        store(RunEnded(status=status, reason=f"finished {epochs} epochs", epochs_done=done, best_val_acc=best,
                       best_epoch=best_epoch, test_acc=test_acc, time=t + 3))
    elif status in ("stopped", "failed"):
        reason = "stopped by request; resume with --resume" if status == "stopped" else "RuntimeError: CUDA out of memory"
        if status == "failed":
            store(Log(message="training failed: RuntimeError: CUDA out of memory", level="error", time=t + 1))
        store(RunEnded(status=status, reason=reason, epochs_done=done, best_val_acc=best if best >= 0 else None,
                       best_epoch=best_epoch or None, time=t + 3))
    store.close()
    return store.path


def build_fixture_root(root: Path) -> dict[str, Path]:
    """Four runs: a CIFAR-100 one with a known boy/girl confusion, a 10-class one, a failed one and a stopped one."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    forced = {(BOY, GIRL): BOY_AS_GIRL, (GIRL, BOY): GIRL_AS_BOY}
    runs = {
        "c100": write_run(root, "20250601-101500-cifar100-resnet34", names=CIFAR100_NAMES, epochs=5, seed=1,
                          model="resnet34", dataset="cifar100", per_class_val=4, per_class_test=12, forced=forced, lr=1e-4),
        "c10": write_run(root, "20250602-093000-cifar10-resnet18", names=[f"class_{i}" for i in range(10)], epochs=6, seed=2,
                         model="resnet18", dataset="synthetic", per_class_val=20, per_class_test=40, lr=2e-3),
        "failed": write_run(root, "20250603-080000-broken", names=[f"class_{i}" for i in range(10)], epochs=6, done=1,
                            status="failed", seed=3, model="resnet50", dataset="synthetic", samples=False),
        "stopped": write_run(root, "20250604-170000-halfway", names=[f"class_{i}" for i in range(10)], epochs=8, done=3,
                             status="stopped", seed=4, model="resnet10t", dataset="synthetic", per_class_val=10),
    }
    return runs


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tuiruns-fixture")
    for key, path in build_fixture_root(out).items():
        print(key, path)
    del os
