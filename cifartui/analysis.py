"""What a run taught, in plain words, computed from its data: :func:`findings`.

Numpy (and yaml for the saved config) only: never torch, textual or rich, so the app's findings panel and
``cifartui report`` stay fast (a 100-class run with a 20-epoch log takes a few milliseconds).

Every finding carries the figures it was computed from. The rules, with their thresholds:

``status``
    the run failed, crashed, was stopped, or is still running (findings are then provisional).
``overfitting`` (warning)
    at the last epoch, train accuracy minus validation accuracy >= ``OVERFIT_GAP`` (10 points). Train
    accuracy is the running mean over the epoch's augmented batches, so the true gap is, if anything,
    larger. When the validation loss rose from its minimum, the text says where it bottomed.
``generalisation_gap`` (info)
    the figures behind it: train and validation accuracy at the last epoch, test accuracy (best weights).
``lr_too_high_for_fine_tuning`` (warning)
    the run started from trained weights (``model.checkpoint`` or ``model.pretrained``) and lost
    validation accuracy at the start. "Lost" is measured against a reference:

    * ``model.checkpoint`` is the ``best.pt`` of a run folder with the same classes: the reference is that
      run's recorded best validation accuracy, and the finding fires when the first epoch's validation
      accuracy lies more than the tolerance below it (the reference experiment's lesson: fine-tuning a
      trained ResNet34 again at lr 1e-4 cost accuracy; 10-100x lower keeps what was learned);
    * otherwise (ImageNet weights with a new head, a foreign checkpoint) there is no accuracy on this
      data before training, so the reference is epoch 1 itself: the finding fires when epoch 2's
      validation accuracy lies more than the tolerance below epoch 1's.

    Tolerance: ``max(FINE_TUNE_MIN_DROP, 2 x the standard error of the reference accuracy on the
    validation set)`` = ``max(0.01, 2 * sqrt(p (1 - p) / n_val))``, so a 200-image validation set's noise
    does not raise it.
``early_stopping`` (info)
    where early stopping fired: the epoch, the patience, the best epoch, the epochs left undone.
``best_epoch`` (info)
    the best validation epoch lies before the last: by how much the last is worse, and that best.pt and the
    test score use the best epoch's weights. ``still_improving`` (info) when the last epoch was the best
    of a run that completed all its epochs and gained >= ``STILL_IMPROVING_GAIN`` over the epoch before.
``near_perfect_classes`` (good)
    classes with accuracy >= ``NEAR_PERFECT`` (98%) on the analysed split.
``weak_classes`` (info), ``confused_pairs`` (info)
    the 3 worst classes; the 3 most confused class pairs (a pair and its reverse count once).
``superclass_confusions`` (info)
    CIFAR-100 only: the share of errors that stay within the true class's superclass.

The analysed split is the latest ``test`` evaluation, else the latest ``val`` one (or the one asked for).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cifartui.classes import CIFAR100_SUPERCLASSES, SUPERCLASS_OF
from cifartui.record import metrics
from cifartui.record.events import Evaluation
from cifartui.record.read_model import RunRecord
from cifartui.record import store
from cifartui.record.store import RunSummary, is_run_dir, load_classes, read_config_data, read_run, run_problems

SEVERITIES = ("warning", "info", "good")  # the order findings are listed in
OVERFIT_GAP = 0.10  # train - val accuracy at the last epoch
FINE_TUNE_MIN_DROP = 0.01  # smallest first-epoch drop taken as a loss (see module doc for the noise allowance)
NEAR_PERFECT = 0.98
STILL_IMPROVING_GAIN = 0.005
MAX_LISTED = 10

TITLES = {  # a short label per kind (report bullets, panel headings)
    "status": "Status", "overfitting": "Overfitting", "generalisation_gap": "Generalisation gap",
    "lr_too_high_for_fine_tuning": "Fine-tuning learning rate", "early_stopping": "Early stopping",
    "best_epoch": "Best epoch", "still_improving": "Still improving", "near_perfect_classes": "Near-perfect classes",
    "weak_classes": "Weak classes", "confused_pairs": "Confused pairs", "superclass_confusions": "Superclasses",
}


@dataclass
class Finding:
    kind: str
    severity: str  # one of SEVERITIES
    text: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunData:
    """A run read once: what findings and the report are computed from. The events are folded by the one read
    model (:class:`RunRecord`): epochs, evaluations, starts and the end are its typed views."""

    path: Path
    summary: RunSummary
    record: RunRecord
    config: dict[str, Any]
    class_names: list[str]
    problems: list[str] = field(default_factory=list)  # files of the run that could not be read, and why

    def cfg(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def name(self, i: int) -> str:
        return self.class_names[i] if 0 <= i < len(self.class_names) else str(i)


def load_run(run_dir: str | os.PathLike, check_files: bool = False) -> RunData:
    """The run read once; never raises for a damaged run. ``check_files``: also name the files that cannot be
    read (opens every evaluation array: for the report, not for the app's findings panel)."""
    path = Path(run_dir)
    record = RunRecord.read(path)
    return RunData(path=path, summary=read_run(path), record=record, config=read_config_data(path),
                   class_names=load_classes(path) or record.class_names,
                   problems=run_problems(path) if check_files else [])


def choose_evaluation(data: RunData, split: str | None = None) -> Evaluation | None:
    """The evaluation to analyse: the latest of ``split``; by default the latest test, else the latest val."""
    return data.record.evaluation(split)


def load_confusion(run_dir: str | os.PathLike, file: str) -> np.ndarray | None:
    """Only the confusion matrix of an evaluation .npz (the per-sample arrays stay on disk); None when the file
    is missing, damaged or holds none (the findings then go without per-class figures)."""
    try:
        return store.load_evaluation(run_dir, file, keys=("confusion",))["confusion"]
    except store.StoreError:
        return None


def superclass_groups(class_names: list[str]) -> tuple[np.ndarray, list[str]] | None:
    """CIFAR-100 superclass id of each class (-1: not a CIFAR-100 name) and the superclass names, or None
    when fewer than half the names are CIFAR-100's."""
    known = [n in SUPERCLASS_OF for n in class_names]
    if not class_names or sum(known) * 2 < len(class_names):
        return None
    coarse = list(CIFAR100_SUPERCLASSES)
    groups = np.array([coarse.index(SUPERCLASS_OF[n]) if n in SUPERCLASS_OF else -1 for n in class_names])
    return groups, coarse


# -- formatting --------------------------------------------------------------------------------------
def pct(v: float | None, digits: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.{digits}f}%"


def points(v: float) -> str:
    return f"{100 * v:.1f} points"


def _truthy_pretrained(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "none", "0")
    return bool(value)


def tolerance(p: float, n: int) -> float:
    """The smallest accuracy drop taken as real: max(1 point, 2 standard errors of p on n images)."""
    p = min(max(p, 0.0), 1.0)
    se = math.sqrt(p * (1 - p) / n) if n > 0 else 0.0
    return max(FINE_TUNE_MIN_DROP, 2 * se)


# -- the rules ---------------------------------------------------------------------------------------
def _status(data: RunData) -> list[Finding]:
    s = data.summary
    done = len(data.record.epochs)
    started = data.record.started
    planned = started.epochs if started is not None else (data.cfg("train.epochs") or s.epochs)
    figures = {"status": s.status, "reason": s.reason, "epochs_done": done, "epochs": planned}
    if s.status == "failed":
        return [Finding("status", "warning", f"The run failed after {done} epoch(s): {s.reason or 'no reason recorded'}.", figures)]
    if s.status == "crashed":
        return [Finding("status", "warning", f"The run crashed after {done} epoch(s) (its writer died without "
                        "recording an end); `cifartui --headless train --resume RUN` continues it from last.pt.", figures)]
    if s.status == "stopped":
        return [Finding("status", "info", f"The run was stopped after {done} of {planned} epochs"
                        f"{': ' + s.reason if s.reason else ''}.", figures)]
    if s.status == "running":
        return [Finding("status", "info", f"The run is still running ({done} of {planned} epochs); these findings "
                        "are provisional.", figures)]
    return []


def _overfitting_and_gap(data: RunData) -> list[Finding]:
    epochs = data.record.epochs
    if not epochs:
        return []
    last = epochs[-1]
    if last.train_acc is None:  # Mixup/CutMix: no train accuracy is measured, so there is no gap to report
        return []
    train, val = float(last.train_acc), float(last.val_acc)
    gap = train - val
    out = []
    min_loss, min_epoch = min((float(e.val_loss), e.epoch) for e in epochs)
    figures = {"epoch": last.epoch, "train_acc": train, "val_acc": val, "gap": gap, "threshold": OVERFIT_GAP,
               "min_val_loss": min_loss, "min_val_loss_epoch": min_epoch, "last_val_loss": float(last.val_loss)}
    if gap >= OVERFIT_GAP:
        text = (f"Overfitting: train accuracy {pct(train)} against validation {pct(val)} at the last epoch "
                f"({last.epoch}), a gap of {points(gap)} (threshold {100 * OVERFIT_GAP:.0f}).")
        if min_epoch < last.epoch and float(last.val_loss) > min_loss:
            text += (f" Validation loss bottomed at {min_loss:.3f} in epoch {min_epoch} and rose to "
                     f"{float(last.val_loss):.3f}.")
        text += " More augmentation, weight decay or label smoothing, or fewer epochs, would narrow it."
        out.append(Finding("overfitting", "warning", text, figures))
    test = data.record.test
    gap_fig = {"epoch": last.epoch, "train_acc": train, "val_acc": val, "train_val_gap": gap,
               "test_acc": float(test.top1) if test else None, "test_epoch": test.epoch if test else None}
    text = f"Generalisation gap at epoch {last.epoch}: train {pct(train)}, validation {pct(val)} ({points(gap)})"
    if test is not None:
        text += f"; test {pct(float(test.top1))} with the weights of epoch {test.epoch}"
    out.append(Finding("generalisation_gap", "info", text + ".", gap_fig))
    return out


def _source_run_accuracy(data: RunData, checkpoint: str) -> tuple[float, str, int | None] | None:
    """(best val accuracy, run id, epoch) of the run whose best.pt/last.pt ``checkpoint`` is, when that run
    has the same classes as this one; else None."""
    candidates = [Path(checkpoint).expanduser()]
    if not candidates[0].is_absolute():  # relative to where training started: try the usual places
        candidates += [data.path.parent.parent / checkpoint, data.path.parent / checkpoint]
    for ck in candidates:
        src = ck.parent
        if src.resolve() == data.path.resolve() or not is_run_dir(src):
            continue
        if load_classes(src) != data.class_names:
            return None
        s = read_run(src)
        if s.best_val_acc is None:
            return None
        return float(s.best_val_acc), s.id, s.best_epoch
    return None


def _fine_tune_lr(data: RunData) -> list[Finding]:
    checkpoint = data.cfg("model.checkpoint")
    pretrained = data.cfg("model.pretrained")
    epochs = data.record.epochs
    if not (checkpoint or _truthy_pretrained(pretrained)) or not epochs or epochs[0].epoch != 1:
        return []
    lr = data.cfg("train.lr")
    started = data.record.started
    n_val = int((started.val_size if started is not None else 0) or 0)
    first = float(epochs[0].val_acc)
    source = f"model.checkpoint {checkpoint}" if checkpoint else f"pretrained weights ({pretrained})"
    advice = ""
    if isinstance(lr, (int, float)):
        advice = f" at lr {lr:g}. Lower it 10-100x (train.lr={lr / 10:g} to {lr / 100:g}) to keep what the weights learned."
    else:
        advice = ". Lower train.lr 10-100x to keep what the weights learned."
    ref = _source_run_accuracy(data, checkpoint) if checkpoint else None
    if ref is not None:
        ref_acc, ref_id, ref_epoch = ref
        tol = tolerance(ref_acc, n_val)
        drop = ref_acc - first
        if drop <= tol:
            return []
        figures = {"reference": "checkpoint_run", "reference_acc": ref_acc, "reference_run": ref_id,
                   "reference_epoch": ref_epoch, "first_val_acc": first, "drop": drop, "tolerance": tol, "lr": lr}
        text = (f"Learning rate too high for fine-tuning: starting from {ref_id}'s weights (validation {pct(ref_acc)}"
                f"{f', epoch {ref_epoch}' if ref_epoch else ''}), validation accuracy fell to {pct(first)} after the "
                f"first epoch, a loss of {points(drop)} (more than the {points(tol)} noise allowance){advice}")
        return [Finding("lr_too_high_for_fine_tuning", "warning", text, figures)]
    if len(epochs) < 2 or epochs[1].epoch != 2:
        return []
    second = float(epochs[1].val_acc)
    tol = tolerance(first, n_val)
    drop = first - second
    if drop <= tol:
        return []
    figures = {"reference": "epoch_1", "reference_acc": first, "first_val_acc": first, "second_val_acc": second,
               "drop": drop, "tolerance": tol, "lr": lr}
    text = (f"Learning rate likely too high for fine-tuning: starting from {source}, validation accuracy fell from "
            f"{pct(first)} after epoch 1 to {pct(second)} after epoch 2, a loss of {points(drop)} (more than the "
            f"{points(tol)} noise allowance){advice}")
    return [Finding("lr_too_high_for_fine_tuning", "warning", text, figures)]


def _best_epoch(data: RunData) -> tuple[int, float] | None:
    best = data.record.best  # the first of equals, like the trainer; scored as it ranks (EMA's when better)
    return None if best is None else (best.epoch, float(best.best_acc))


def _early_stop_and_best(data: RunData) -> list[Finding]:
    out = []
    best = _best_epoch(data)
    if best is None:
        return out
    best_epoch, best_acc = best
    epochs = data.record.epochs
    last = epochs[-1]
    last_epoch, last_acc = last.epoch, float(last.best_acc)
    started = data.record.started
    planned = int((started.epochs if started is not None else 0) or data.cfg("train.epochs") or data.summary.epochs
                  or last_epoch)
    if data.summary.status == "early_stopped":
        patience = data.cfg("train.early_stop_patience")
        figures = {"stopped_after_epoch": last_epoch, "epochs": planned, "patience": patience,
                   "best_epoch": best_epoch, "best_val_acc": best_acc, "epochs_skipped": max(0, planned - last_epoch)}
        out.append(Finding("early_stopping", "info",
                           f"Early stopping fired after epoch {last_epoch} of {planned}"
                           f"{f' (patience {patience})' if patience else ''}: no better validation accuracy than "
                           f"{pct(best_acc)} (epoch {best_epoch}) for {last_epoch - best_epoch} epochs; "
                           f"{max(0, planned - last_epoch)} planned epochs were skipped.", figures))
    if best_epoch < last_epoch:
        figures = {"best_epoch": best_epoch, "best_val_acc": best_acc, "last_epoch": last_epoch, "last_val_acc": last_acc,
                   "drop": best_acc - last_acc}
        out.append(Finding("best_epoch", "info",
                           f"Best validation accuracy {pct(best_acc)} at epoch {best_epoch}; the last epoch ({last_epoch}) "
                           f"reached {pct(last_acc)} ({points(best_acc - last_acc)} lower). best.pt holds epoch "
                           f"{best_epoch}'s weights and the test score uses them.", figures))
    elif len(epochs) >= 2 and data.summary.status == "completed":
        prev = float(epochs[-2].best_acc)
        if last_acc - prev >= STILL_IMPROVING_GAIN:
            figures = {"last_epoch": last_epoch, "last_val_acc": last_acc, "previous_val_acc": prev, "gain": last_acc - prev}
            out.append(Finding("still_improving", "info",
                               f"Validation accuracy was still rising at the last epoch ({pct(prev)} -> {pct(last_acc)}, "
                               f"+{points(last_acc - prev)}): more epochs would likely help.", figures))
    return out


def _classes(data: RunData, confusion: np.ndarray, evaluation: Evaluation) -> list[Finding]:
    out = []
    split = evaluation.split or "?"
    support = confusion.sum(1)
    diag = np.diag(confusion)
    ranked = metrics.ranked_classes(confusion)
    perfect = [(i, a) for i, a in ranked if a >= NEAR_PERFECT]
    if perfect:
        listed = ", ".join(f"{data.name(i)} {pct(a)} ({int(diag[i])}/{int(support[i])})" for i, a in perfect[:MAX_LISTED])
        more = f" and {len(perfect) - MAX_LISTED} more" if len(perfect) > MAX_LISTED else ""
        out.append(Finding("near_perfect_classes", "good",
                           f"Near-perfect classes on {split} (>= {100 * NEAR_PERFECT:.0f}%): {listed}{more}.",
                           {"split": split, "threshold": NEAR_PERFECT,
                            "classes": {data.name(i): a for i, a in perfect}}))
    if len(ranked) > 3 and ranked[-1][1] < NEAR_PERFECT:
        worst = ranked[-3:][::-1]
        out.append(Finding("weak_classes", "info",
                           f"Weakest classes on {split}: " + ", ".join(
                               f"{data.name(i)} {pct(a)} ({int(diag[i])}/{int(support[i])})" for i, a in worst) + ".",
                           {"split": split, "classes": {data.name(i): a for i, a in worst}}))
    pairs = []
    seen: set[frozenset[int]] = set()
    for p in metrics.most_confused(confusion, 3 * 2 + 2):
        key = frozenset((p.true, p.pred))
        if key in seen:
            continue
        seen.add(key)
        pairs.append(p)
        if len(pairs) == 3:
            break
    if pairs:
        parts = [f"{data.name(p.true)} -> {data.name(p.pred)} {p.count} ({pct(p.share)} of {data.name(p.true)}; "
                 f"{p.reverse} the other way)" for p in pairs]
        out.append(Finding("confused_pairs", "info", f"Most confused on {split}: " + ", ".join(parts) + ".",
                           {"split": split, "pairs": [{"true": data.name(p.true), "pred": data.name(p.pred),
                                                       "count": p.count, "share": p.share, "reverse": p.reverse}
                                                      for p in pairs]}))
    groups = superclass_groups(data.class_names)
    if groups is not None and len(data.class_names) == confusion.shape[0]:
        gids, coarse = groups
        within, across = metrics.errors_within_groups(confusion, gids)
        errors = within + across
        if errors:
            # the superclasses holding most within-group errors, as examples
            off = confusion.astype(np.int64).copy()
            np.fill_diagonal(off, 0)
            per_group = {}
            for g in sorted(set(int(v) for v in gids if v >= 0)):
                m = np.flatnonzero(gids == g)
                per_group[coarse[g]] = int(off[np.ix_(m, m)].sum())
            top = [k for k, v in sorted(per_group.items(), key=lambda kv: -kv[1]) if v > 0][:3]
            out.append(Finding("superclass_confusions", "info",
                               f"Of {errors} errors on {split}, {within} ({pct(within / errors)}) stay within the true "
                               f"class's superclass" + (f" (most in {', '.join(top)})" if top else "") +
                               (": the model mostly gets the kind of thing right and misses the fine label."
                                if within / errors >= 0.5 else "."),
                               {"split": split, "errors": errors, "within": within, "across": across,
                                "within_share": within / errors, "top_superclasses": top}))
    return out


def findings_of(data: RunData, split: str | None = None) -> list[Finding]:
    out: list[Finding] = []
    out += _status(data)
    out += _overfitting_and_gap(data)
    out += _fine_tune_lr(data)
    out += _early_stop_and_best(data)
    evaluation = data.record.evaluation(split)
    if evaluation is not None and evaluation.file:
        confusion = load_confusion(data.path, evaluation.file)
        if confusion is not None and confusion.ndim == 2 and confusion.shape[0] == confusion.shape[1]:
            out += _classes(data, confusion, evaluation)
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    out.sort(key=lambda f: rank.get(f.severity, len(SEVERITIES)))
    return out


def findings(run_dir: str | os.PathLike, split: str | None = None) -> list[Finding]:
    """The findings of a run folder, warnings first. Never raises on a partial or growing run."""
    return findings_of(load_run(run_dir), split)
