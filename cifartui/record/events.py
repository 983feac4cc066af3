"""The one event schema every producer and consumer shares.

The trainer emits these; the run store writes them as JSON lines; the headless reporter and the TUI
render them. Large arrays (confusion matrices, per-sample predictions) travel in memory as numpy arrays
in ``arrays``; the store moves them to an ``.npz`` beside the events and records the file name instead.

Pure Python + numpy: no torch, so that readers (``cifartui runs``, the TUI) stay fast to import.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

RUN_STATUSES = ("running", "completed", "stopped", "early_stopped", "failed", "crashed")
END_STATUSES = ("completed", "stopped", "early_stopped", "failed")
SUCCESS_STATUSES = ("completed", "early_stopped")  # the run did what it was asked


@dataclass
class Event:
    type: ClassVar[str] = "event"
    time: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        data = {"type": self.type}
        data.update({k: v for k, v in asdict(self).items() if k != "arrays"})
        return data


@dataclass
class RunStarted(Event):
    type: ClassVar[str] = "run_started"
    run_id: str
    name: str
    device: str
    num_classes: int
    class_names: list[str]
    epochs: int
    steps_per_epoch: int
    train_size: int
    val_size: int
    test_size: int
    world_size: int = 1
    device_name: str = ""
    model: str = ""
    dataset: str = ""
    resumed_from_epoch: int | None = None
    pid: int | None = None
    host: str = ""
    # what made the run (cifartui.environment + the trainer's CUDA/GPU part): versions, host, argv, git.
    # None in runs written before it existed.
    environment: dict[str, Any] | None = None


@dataclass
class Step(Event):
    """Running train figures within an epoch, emitted every ``log_interval`` steps (never every step)."""

    type: ClassVar[str] = "step"
    epoch: int
    step: int
    steps: int
    loss: float
    acc: float | None  # None while Mixup/CutMix mix the targets: accuracy against them means nothing
    lr: float
    images_per_second: float


@dataclass
class EpochEnd(Event):
    type: ClassVar[str] = "epoch"
    epoch: int
    train_loss: float
    train_acc: float | None  # None while Mixup/CutMix mix the targets (train.loss is the soft-target loss)
    val_loss: float
    val_acc: float
    val_top5: float
    lr: float
    epoch_seconds: float
    images_per_second: float
    best_val_acc: float = 0.0
    is_best: bool = False
    gpu_memory_mb: float | None = None
    # train.ema: the moving average of the weights scored on the same validation split (None without EMA)
    val_acc_ema: float | None = None
    val_loss_ema: float | None = None

    @property
    def best_acc(self) -> float:
        """What the trainer ranks epochs by: the better of the raw and the EMA weights' validation accuracy."""
        return self.val_acc if self.val_acc_ema is None else max(self.val_acc, self.val_acc_ema)


@dataclass
class Evaluation(Event):
    """A scored split. ``arrays`` holds ``confusion`` [C, C] (rows = true class), and per sample
    ``targets``, ``preds``, ``pred_prob`` (probability of the predicted class) and ``true_prob``; in runs
    written since issue 13 also ``refs`` (each image's stable reference, core/data.py) and, for the test
    split and ``cifartui eval``, ``probs`` (float16 [N, C], every class's probability: what cleanlab ranks)."""

    type: ClassVar[str] = "evaluation"
    split: str  # "val" | "test" | any name given by `cifartui eval`
    epoch: int
    loss: float
    top1: float
    top5: float
    num_samples: int
    file: str | None = None  # set by the store: the .npz holding the arrays
    arrays: dict[str, Any] | None = field(default=None, repr=False)
    # what was scored: a hash of the split's images and labels, in order (core.data.split_fingerprint);
    # `cifartui diff` compares two evaluations only when theirs match. None in runs written before it existed.
    fingerprint: str | None = None
    tta: str = "none"  # eval.tta: "flip" averaged each image's logits with its mirror's
    weights: str = ""  # "ema" when the EMA weights were scored (a test of an EMA best.pt), else "raw" or unknown


@dataclass
class Samples(Event):
    """Thumbnails of an evaluation split (``arrays["images"]``: uint8 N,H,W,3, in dataset order), so the
    confusion drilldown can show the very images that were confused."""

    type: ClassVar[str] = "samples"
    split: str
    num_samples: int
    file: str | None = None
    arrays: dict[str, Any] | None = field(default=None, repr=False)


@dataclass
class Checkpoint(Event):
    type: ClassVar[str] = "checkpoint"
    kind: str  # "last" | "best"
    path: str
    epoch: int
    step: int = 0
    metric: float | None = None
    weights: str = ""  # best.pt under train.ema: "raw" or "ema", whichever scored better


@dataclass
class Log(Event):
    type: ClassVar[str] = "log"
    message: str
    level: str = "info"  # info | warning | error
    progress: float | None = None  # a task before training (a download): its fraction done, 0..1


@dataclass
class RunEnded(Event):
    type: ClassVar[str] = "run_ended"
    status: str  # one of END_STATUSES
    reason: str = ""
    epochs_done: int = 0
    best_val_acc: float | None = None
    best_epoch: int | None = None
    test_acc: float | None = None
    test_top5: float | None = None
    # peak NVML figures of the run's GPUs while it trained (cifartui.gpustats); None without NVML or a GPU
    gpu_peak: dict[str, Any] | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls for cls in (RunStarted, Step, EpochEnd, Evaluation, Samples, Checkpoint, Log, RunEnded)
}


# What JSON may hold for each annotated field (the annotations are strings here: ``from __future__``).
_JSON_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
               "list[str]": (list,), "dict[str, Any] | None": (dict, type(None))}


def _accepts(annotation: str) -> tuple[type, ...] | None:
    """The JSON types a field accepts, or None when anything goes (arrays, unknown annotations)."""
    if annotation.endswith(" | None") and annotation[:-7] in _JSON_TYPES:
        return _JSON_TYPES[annotation[:-7]] + (type(None),)
    return _JSON_TYPES.get(annotation)


# field names and accepted types per type, computed once: a followed run folds every line it reads
_FIELDS: dict[str, tuple[type[Event], dict[str, tuple[type, ...] | None]]] = {
    name: (cls, {f.name: _accepts(str(f.type)) for f in fields(cls)}) for name, cls in EVENT_TYPES.items()}


def event_from_dict(data: dict[str, Any]) -> Event | None:
    """Rebuild a typed event from a JSON object; unknown types or fields are ignored (forward compatible).
    A line whose fields have the wrong JSON types (a damaged or hand-edited file) is None: readers skip it."""
    found = _FIELDS.get(data.get("type", ""))
    if found is None:
        return None
    cls, accepted = found
    values = {}
    for k, v in data.items():
        if k in accepted:
            ok = accepted[k]
            if ok is not None and not isinstance(v, ok):
                return None
            values[k] = v
    try:
        return cls(**values)
    except TypeError:
        return None
