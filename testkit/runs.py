"""Run folders as training writes them (events.jsonl, eval/*.npz, samples_*.npz, config.yaml), written through the
real RunStore without torch: ``RunWriter`` event by event, and on top of it whole runs: ``write_run`` (the app's
fixture runs: thumbnails, forced confusions, checkpoints, any end status), ``write_known_run`` (figures given
by hand, for findings, reports and exports checked against them) with its two uses ``write_reference_run`` (six
classes, every figure known) and ``write_cifar100_run`` (the size of a real CIFAR-100 run).

Times: every writing method takes ``at``, the time of its event. Fixture runs pass fixed times (from ``T0``) so
snapshots and listings stay the same from one test session to the next; ``at=None`` stamps the time of writing,
as a live run does.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np

from cifartui.config import Config
from cifartui.diff import confusion_of
from cifartui.record.events import Checkpoint, EpochEnd, Event, Evaluation, Log, RunEnded, RunStarted, Samples, Step
from cifartui.record.metrics import accuracy
from cifartui.record.store import RunStore

T0 = 1_750_000_000.0  # the fixed clock of the fixture runs (2025-06-15)


class RunWriter:
    """One run folder written event by event. It keeps the best validation accuracy so far, as the trainer
    does: ``end_epoch`` marks the best epoch (the first with the highest accuracy) and writes its checkpoint."""

    def __init__(self, store: RunStore, config: Config | str | None = None):
        self.store = store
        self.path = store.path
        self.best_val_acc: float | None = None
        self.best_epoch: int | None = None
        if config is not None:  # a Config, or the YAML text of one
            store.write_config(config if isinstance(config, str) else config.to_yaml())

    @classmethod
    def new(cls, root: str | os.PathLike, run_id: str, config: Config | str | None = None) -> RunWriter:
        """A folder ``<root>/<run_id>`` with a fixed id (made if missing)."""
        path = Path(root) / run_id
        (path / "eval").mkdir(parents=True, exist_ok=True)
        return cls(RunStore(path), config)

    @classmethod
    def create(cls, root: str | os.PathLike, name: str, config: Config | str | None = None) -> RunWriter:
        """A folder named as training names it: ``<root>/<YYYYmmdd-HHMMSS>-<name>`` at the time of the call."""
        return cls(RunStore.create(root, name), config)

    @classmethod
    def reopen(cls, path: str | os.PathLike) -> RunWriter:
        """An existing run, to append to (its events folded first, as a resume does)."""
        return cls(RunStore.open(path))

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, event: Event, at: float | None) -> None:
        if at is not None:
            event.time = at
        self.store(event)

    def log(self, message: str, level: str = "info", *, at: float | None = None) -> None:
        self._write(Log(message=message, level=level), at)

    def start(self, class_names: list[str], *, name: str, epochs: int, steps_per_epoch: int, train_size: int,
              val_size: int, test_size: int, model: str = "", dataset: str = "", device: str = "cpu",
              pid: int | None = None, host: str | None = None, at: float | None = None, **more) -> None:
        """run_started; ``host`` defaults to this machine's (with ``pid``: a run this machine may still train);
        ``more``: RunStarted's other fields (device_name, environment, ...)."""
        self._write(RunStarted(run_id=self.store.id, name=name, device=device, num_classes=len(class_names),
                               class_names=class_names, epochs=epochs, steps_per_epoch=steps_per_epoch,
                               train_size=train_size, val_size=val_size, test_size=test_size, model=model,
                               dataset=dataset, pid=pid, host=socket.gethostname() if host is None else host,
                               **more), at)

    def samples(self, split: str, images: np.ndarray, *, at: float | None = None) -> None:
        """Thumbnails of a split (uint8 N,H,W,3 in dataset order): what the drilldown shows."""
        self._write(Samples(split=split, num_samples=len(images), arrays={"images": images}), at)

    def step(self, epoch: int, step: int, steps: int, *, loss: float, acc: float | None, lr: float,
             images_per_second: float, at: float | None = None) -> None:
        self._write(Step(epoch=epoch, step=step, steps=steps, loss=loss, acc=acc, lr=lr,
                         images_per_second=images_per_second), at)

    def evaluation(self, split: str, epoch: int, *, loss: float, top1: float, top5: float, arrays: dict | None = None,
                   num_samples: int | None = None, fingerprint: str | None = None, at: float | None = None) -> None:
        """A scored split; ``num_samples`` defaults to the count in ``arrays["confusion"]``."""
        if num_samples is None:
            num_samples = int(arrays["confusion"].sum())
        self._write(Evaluation(split=split, epoch=epoch, loss=loss, top1=top1, top5=top5, num_samples=num_samples,
                               arrays=arrays, fingerprint=fingerprint), at)

    def end_epoch(self, epoch: int, *, val_acc: float, val: dict | None = None, checkpoints: bool = False,
                  at: float | None = None, **figures) -> bool:
        """The epoch event (``figures``: EpochEnd's train_loss, train_acc, val_loss, val_top5, lr, epoch_seconds,
        images_per_second) with best_val_acc and is_best filled in; returns is_best. Before it, a second apart: the
        best checkpoint (``checkpoints`` and a new best) and the val evaluation (``val``: ``evaluation``'s
        figures); after it, the last checkpoint (``checkpoints``), as the trainer orders them."""
        is_best = self.best_val_acc is None or val_acc > self.best_val_acc
        if is_best:
            self.best_val_acc, self.best_epoch = val_acc, epoch

        def shifted(seconds: float) -> float | None:
            return None if at is None else at + seconds

        if checkpoints and is_best:
            self._write(Checkpoint(kind="best", path="best.pt", epoch=epoch, metric=val_acc), shifted(-2))
        if val is not None:
            self.evaluation("val", epoch, **val, at=shifted(-1))
        self._write(EpochEnd(epoch=epoch, val_acc=val_acc, best_val_acc=self.best_val_acc, is_best=is_best,
                             **figures), at)
        if checkpoints:
            self._write(Checkpoint(kind="last", path="last.pt", epoch=epoch + 1), shifted(1))
        return is_best

    def end(self, status: str, reason: str = "", *, epochs_done: int, at: float | None = None, **figures) -> None:
        """run_ended; ``figures``: RunEnded's best_val_acc, best_epoch, test_acc, gpu_peak, ... (none implied)."""
        self._write(RunEnded(status=status, reason=reason, epochs_done=epochs_done, **figures), at)

    def close(self) -> None:
        self.store.close()


# -- arrays ------------------------------------------------------------------------------------------
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


def grey_thumbnails(n: int, size: int = 8) -> np.ndarray:
    """uint8 N,size,size,3: image k filled with grey level k (so a strip's pixels name its samples)."""
    return np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None], size * size * 3, 1).reshape(n, size, size, 3)


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


def evaluation_arrays(num_classes: int, per_class: int, accuracy: float, seed: int, forced: dict | None = None) -> dict:
    """An evaluation's arrays (confusion and per-sample figures) from :func:`predictions`."""
    targets, preds, pred_prob, true_prob = predictions(num_classes, per_class, accuracy, seed, forced)
    return {"confusion": confusion_of(targets, preds, num_classes).astype(np.int32), "targets": targets,
            "preds": preds, "pred_prob": pred_prob, "true_prob": true_prob}


def per_sample(confusion: np.ndarray) -> dict:
    """targets/preds/pred_prob in dataset order that add up to ``confusion``; each sample's
    probability is 0.5 + its index / 1000 (so the most confident mistakes are the last ones)."""
    targets, preds = [], []
    for i, row in enumerate(confusion):
        for j, n in enumerate(row):
            targets += [i] * int(n)
            preds += [j] * int(n)
    n = len(targets)
    return {"targets": np.array(targets, np.int32), "preds": np.array(preds, np.int32),
            "pred_prob": (0.5 + np.arange(n) / 1000).astype(np.float16),
            "true_prob": np.full(n, 0.5, np.float16)}


# -- whole runs --------------------------------------------------------------------------------------
def write_run(root: Path, run_id: str, *, names: list[str], epochs: int = 5, done: int | None = None,
              status: str = "completed", per_class_val: int = 4, per_class_test: int = 10, seed: int = 0,
              model: str = "resnet18", dataset: str = "cifar100", cfg: Config | None = None,
              pid: int | None = None, steps: int = 20, lr: float = 1e-3, samples: bool = True,
              forced: dict | None = None, fingerprints: bool = False) -> Path:
    """A fixture run on the fixed clock (``T0`` + 10,000 s per ``seed``): started, samples, steps, ``done`` of
    ``epochs`` epochs with val evaluations and checkpoints, then by ``status``: the test evaluation and the end
    (completed, early_stopped), an end without test (stopped, failed), or nothing more (running: with ``pid``,
    a live writer). ``forced``: exact confusion cells (see :func:`predictions`). ``fingerprints``: the
    evaluations record one per split (runs written with the same sizes then compare as the same images)."""
    n = len(names)
    done = epochs if done is None else done
    cfg = cfg or Config().with_overrides(**{"name": run_id.split("-", 2)[-1], "data.source": dataset,
                                            "model.name": model, "train.epochs": epochs, "train.lr": lr,
                                            "output.root": str(root)})
    writer = RunWriter.new(root, run_id, cfg)
    t = T0 + seed * 10_000
    writer.log(f"Data {dataset}: {n * 40} train, {n * per_class_val} val, {n * per_class_test} test, {n} classes, 32px",
               at=t)
    writer.start(names, name=cfg.name, epochs=epochs, steps_per_epoch=steps, train_size=n * 40,
                 val_size=n * per_class_val, test_size=n * per_class_test, model=model, dataset=dataset, pid=pid,
                 at=t + 1)
    if samples:
        for split, per_class in (("val", per_class_val), ("test", per_class_test)):
            writer.samples(split, thumbnails(np.repeat(np.arange(n), per_class).astype(np.int32), n), at=t + 2)
    t += 5
    for epoch in range(1, done + 1):
        acc_train = min(0.99, 0.3 + 0.15 * epoch)
        for s in range(5, steps + 1, 5):
            t += 3
            writer.step(epoch, s, steps, loss=2.5 / (epoch + s / steps), acc=acc_train * (0.8 + 0.2 * s / steps),
                        lr=lr * (1 - (epoch - 1 + s / steps) / epochs), images_per_second=410.0 + epoch, at=t)
        arrays = evaluation_arrays(n, per_class_val, min(0.95, 0.25 + 0.12 * epoch), seed * 100 + epoch, forced)
        val_acc = accuracy(arrays["confusion"])
        val_top5 = min(1.0, val_acc + 0.2)
        val = {"loss": 2.0 / epoch, "top1": val_acc, "top5": val_top5, "arrays": arrays,
               "fingerprint": f"fixture-val-{len(arrays['targets'])}" if fingerprints else None}
        writer.end_epoch(epoch, val_acc=val_acc, val=val, checkpoints=True, at=t + 3, train_loss=2.4 / (epoch + 1),
                         train_acc=acc_train, val_loss=2.0 / epoch, val_top5=val_top5, lr=lr * (1 - epoch / epochs),
                         epoch_seconds=14.0, images_per_second=412.5)
        t += 5
    best = {"best_val_acc": writer.best_val_acc, "best_epoch": writer.best_epoch}
    if status in ("completed", "early_stopped"):
        best_epoch = writer.best_epoch or 0
        arrays = evaluation_arrays(n, per_class_test, min(0.95, 0.25 + 0.12 * best_epoch), seed * 100 + 99, forced)
        test_acc = accuracy(arrays["confusion"])
        writer.evaluation("test", best_epoch, loss=1.1, top1=test_acc, top5=min(1.0, test_acc + 0.2), arrays=arrays,
                          fingerprint=f"fixture-test-{len(arrays['targets'])}" if fingerprints else None, at=t + 1)
        writer.log(f"Test top-1 {test_acc:.4f} with the best weights (epoch {best_epoch})", at=t + 2)
        writer.end(status, f"finished {epochs} epochs", epochs_done=done, test_acc=test_acc, **best, at=t + 3)
    elif status in ("stopped", "failed"):
        if status == "failed":
            writer.log("training failed: RuntimeError: CUDA out of memory", level="error", at=t + 1)
        reason = ("stopped by request; resume with --resume" if status == "stopped"
                  else "RuntimeError: CUDA out of memory")
        writer.end(status, reason, epochs_done=done, **best, at=t + 3)
    writer.close()
    return writer.path


def write_known_run(root: Path, name: str = "ref", *, classes: list[str], epochs: list[tuple], confusion: np.ndarray,
                    status: str | None = "early_stopped", val_size: int = 120, planned: int = 10,
                    extra_cfg: dict | None = None, test: bool = True, steps: int = 0) -> Path:
    """A run whose figures are given by hand, named and timed as training names it (``<now>-<name>``, this
    process's pid): ``epochs`` as (epoch, train_acc, val_acc, train_loss, val_loss) of ``planned`` epochs, ``steps``
    step events per epoch, a val evaluation per epoch (all right but one boy taken for a girl, so it is never the
    analysed split), then (``test``) a test evaluation of ``confusion`` with per-sample figures and thumbnails,
    and (``status``, None for none) the end."""
    cfg = Config().with_overrides(**{"name": name, "data.source": "cifar100", "model.name": "resnet18",
                                     "train.epochs": planned, "train.early_stop_patience": 2, "train.lr": 1e-3,
                                     **(extra_cfg or {})})
    writer = RunWriter.create(root, name, cfg)
    writer.start(classes, name=name, epochs=planned, steps_per_epoch=10, train_size=1000, val_size=val_size,
                 test_size=120, model="resnet18", dataset="cifar100", pid=os.getpid())
    n = int(confusion.sum())
    writer.samples("test", grey_thumbnails(n))
    for epoch, train_acc, val_acc, train_loss, val_loss in epochs:
        for s in range(steps):
            writer.step(epoch, s + 1, steps, loss=train_loss, acc=train_acc, lr=1e-3, images_per_second=100.0)
        val_confusion = np.diag([20] * len(classes)).astype(np.int32)
        val_confusion[0, 1] = 1
        writer.end_epoch(epoch, val_acc=val_acc, val={"loss": val_loss, "top1": val_acc, "top5": 1.0,
                                                      "arrays": {"confusion": val_confusion}},
                         train_loss=train_loss, train_acc=train_acc, val_loss=val_loss, val_top5=0.99,
                         lr=1e-3 * (planned - epoch) / planned, epoch_seconds=10.0, images_per_second=100.0)
    if test:
        writer.evaluation("test", writer.best_epoch or 0, loss=0.7, top1=float(np.trace(confusion)) / n, top5=0.99,
                          arrays={"confusion": confusion, **per_sample(confusion)})
    writer.log("done")
    if status:
        writer.end(status, "early stopping: no better validation accuracy for 2 epochs", epochs_done=len(epochs),
                   best_val_acc=writer.best_val_acc, best_epoch=writer.best_epoch)
    writer.close()
    return writer.path


# -- the reference run: the findings, report, notify and export tests check their figures by hand against it --
REFERENCE_CLASSES = ["boy", "girl", "maple_tree", "oak_tree", "orange", "motorcycle"]
# rows = true class, 20 test images each; 98 of 120 right
REFERENCE_CONFUSION = np.array([
    [12, 6, 0, 0, 1, 1],    # boy: 6 taken for girl
    [4, 15, 0, 0, 0, 1],    # girl
    [0, 0, 14, 5, 1, 0],    # maple_tree: 5 taken for oak_tree
    [0, 0, 2, 17, 0, 1],    # oak_tree
    [0, 0, 0, 0, 20, 0],    # orange: perfect
    [0, 0, 0, 0, 0, 20],    # motorcycle: perfect
], dtype=np.int32)
# epoch, train_acc, val_acc, train_loss, val_loss
REFERENCE_EPOCHS = [(1, 0.50, 0.55, 1.6, 1.4), (2, 0.75, 0.72, 0.9, 1.0), (3, 0.90, 0.80, 0.4, 0.8),
                    (4, 0.96, 0.79, 0.2, 0.85), (5, 0.99, 0.78, 0.1, 0.95)]


def write_reference_run(root: Path, name: str = "ref", **options) -> Path:
    """The reference run (REFERENCE_CLASSES, REFERENCE_CONFUSION, REFERENCE_EPOCHS; early-stopped after 5 of 10
    epochs), or a variant of it: ``options`` are write_known_run's."""
    return write_known_run(root, name, **{"classes": REFERENCE_CLASSES, "epochs": REFERENCE_EPOCHS,
                                          "confusion": REFERENCE_CONFUSION, **options})


# -- a run the size of a real CIFAR-100 one: what the findings cost (bench `findings`) and count -------------
def cifar100_confusion() -> np.ndarray:
    """A seeded 100-class test confusion matrix: 50 to 99 right of each class, 0 to 2 taken for each other."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 3, (100, 100)).astype(np.int32) + np.diag(rng.integers(50, 100, 100)).astype(np.int32)


def write_cifar100_run(root: Path) -> Path:
    """CIFAR-100's classes (in superclass order), 20 epochs of 78 steps each with train accuracy pulling away
    from validation, then :func:`cifar100_confusion` as the test evaluation."""
    from cifartui.classes import CIFAR100_SUPERCLASSES

    names = [n for fines in CIFAR100_SUPERCLASSES.values() for n in fines]
    epochs = [(e, min(0.99, 0.3 + 0.04 * e), 0.3 + 0.025 * e, 2.0 / e, 2.0 / e + 0.1) for e in range(1, 21)]
    return write_known_run(root, "cifar100", classes=names, epochs=epochs, confusion=cifar100_confusion(),
                           status="completed", planned=20, steps=78)
