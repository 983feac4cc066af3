"""``cifartui export RUN --tensorboard DIR``: a run as TensorBoard event files in ``DIR/<run id>/``.

Written with ``torch.utils.tensorboard.SummaryWriter`` (TensorBoard's own format; needs the ``tensorboard``
package: ``pip install 'cifartui[tensorboard]'``). One x axis for every scalar, the global training step,
so TensorBoard and ``wandb sync`` line them up:

- per epoch, at the epoch's last step: ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``,
  ``val/top5``, ``lr``, ``epoch_seconds``, ``images_per_second``;
- per logged step: ``step/loss``, ``step/acc``, ``step/lr``, ``step/images_per_second``;
- the test evaluation: ``test/acc``, ``test/top5``, ``test/loss``; the per-class accuracy of the evaluation
  ``show`` analyses (the latest test, else the latest val): ``per_class_acc/<split>/<class>``;
- the resolved config as hparams (flattened keys) with ``hparam/best_val_acc`` and ``hparam/test_acc``.

Each scalar carries the wall time of its event. Exporting again replaces the event files in ``DIR/<run id>``
(derived data); nothing else there is touched. ``tensorboard --logdir DIR`` compares every run exported there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cifartui.errors import UserError
from cifartui.record.read_model import RunRecord


def _hparams(config: dict[str, Any]) -> dict[str, Any]:
    """Config values as hparams: nested keys dotted; None, lists and the like as text (all TensorBoard takes)."""
    from cifartui.record.config_index import flatten

    return {key: value if isinstance(value, (bool, int, float, str)) else str(value)
            for key, value in flatten(config).items()}


def _writer_class():
    from cifartui.extras import require

    # torch.utils.tensorboard raises ImportError ("TensorBoard logging requires TensorBoard ...") without it
    return require("torch.utils.tensorboard", "tensorboard", "export --tensorboard", extra="tensorboard").SummaryWriter


def export_tensorboard(run_dir: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[Path, dict[str, int]]:
    """Write the event files; returns their folder and how many scalars of each kind went in."""
    from cifartui.record import metrics
    from cifartui.record.store import StoreError, load_classes, load_evaluation, read_config_data

    SummaryWriter = _writer_class()
    run_dir = Path(run_dir)
    record = RunRecord.read(run_dir)
    target = Path(out_dir) / run_dir.name
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--tensorboard: cannot create {target} ({exc.strerror or exc}); choose a folder you can write to.") from None
    for old in target.glob("events.out.tfevents.*"):
        old.unlink()
    per_epoch = (record.last_step.steps if record.last_step else 0) or (record.started.steps_per_epoch if record.started else 0)
    at_epoch = (lambda epoch: epoch * per_epoch) if per_epoch else (lambda epoch: epoch)  # noqa: E731
    counts = {"epochs": len(record.epochs), "steps": len(record.steps), "classes": 0}
    scalars: list[tuple[int, float, str, float]] = []  # (global step, wall time, tag, value)
    for e in record.epochs:
        for tag, value in (("train/loss", e.train_loss), ("train/acc", e.train_acc), ("val/loss", e.val_loss),
                           ("val/acc", e.val_acc), ("val/top5", e.val_top5), ("lr", e.lr),
                           ("epoch_seconds", e.epoch_seconds), ("images_per_second", e.images_per_second)):
            if value is not None:  # train_acc: None under Mixup/CutMix (no accuracy against mixed targets)
                scalars.append((at_epoch(e.epoch), e.time, tag, value))
    for s in record.steps:
        steps = s.steps or per_epoch
        for tag, value in (("step/loss", s.loss), ("step/acc", s.acc), ("step/lr", s.lr),
                           ("step/images_per_second", s.images_per_second)):
            if value is not None:  # acc: None under Mixup/CutMix
                scalars.append(((s.epoch - 1) * steps + s.step if steps else s.epoch, s.time, tag, value))
    test = record.test
    if test is not None:
        for tag, value in (("test/acc", test.top1), ("test/top5", test.top5), ("test/loss", test.loss)):
            scalars.append((at_epoch(test.epoch), test.time, tag, value))
    chosen = record.evaluation()
    if chosen is not None and chosen.file:
        try:
            confusion = load_evaluation(run_dir, chosen.file, keys=("confusion",))["confusion"]
        except StoreError:
            confusion = None  # `show` names the damaged file; the other scalars still go in
        if confusion is not None:
            names = load_classes(run_dir) or record.class_names
            for i, acc in enumerate(metrics.per_class_accuracy(confusion)):
                if acc == acc:  # a class without samples in the split has no accuracy
                    name = names[i] if i < len(names) else str(i)
                    scalars.append((at_epoch(chosen.epoch), chosen.time, f"per_class_acc/{chosen.split}/{name}", float(acc)))
                    counts["classes"] += 1
    best = record.best
    hp_metrics = {"hparam/best_val_acc": best.best_acc if best is not None else float("nan"),
                  "hparam/test_acc": test.top1 if test is not None else float("nan")}
    config = read_config_data(run_dir)
    with SummaryWriter(log_dir=str(target)) as w:
        # in the order they happened: readers that replay a file (wandb sync) see the steps grow
        for step, when, tag, value in sorted(scalars, key=lambda x: (x[0], x[1])):
            w.add_scalar(tag, value, step, walltime=when)
        if config:
            w.add_hparams(_hparams(config), hp_metrics, run_name=".")  # ".": the same folder, one run in TensorBoard
    return target, counts
