"""What changed between two evaluations of the same images: per class, per confusion cell, per image.

``cifartui diff RUN_A RUN_B [--split test|val]`` compares the same split of two runs; ``cifartui diff RUN
--epochs E1 E2`` two validation epochs of one run. ``report RUN --against OTHER`` and the app's Diff screen
show the same figures, computed here once: :func:`compare` returns an :class:`EvalDiff`.

A is the baseline, B the newcomer: every change is B minus A. Per-sample predictions come from each
evaluation's ``eval/*.npz`` (``targets``, ``preds``), so a flip is one image right in one and wrong in the other.

Two evaluations are compared only when they scored the same images: both record a ``fingerprint`` of
the split (a hash of its images and labels, in order) and the two must match. Runs written before
fingerprints existed are compared on what they do record (sizes, class names and the label of every
image) and the result says so (``check.weaker``).

Which evaluation of a run: ``test`` is the run's test evaluation (the best validation epoch's weights);
``val`` the validation evaluation of the best epoch (the same weights), else the latest one.

Numpy only (no torch, Textual or Rich): the app imports it on its UI thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cifartui.errors import UserError
from cifartui.record.events import Evaluation
from cifartui.record.read_model import RunRecord
from cifartui.record.store import StoreError, load_classes, load_evaluation

SPLITS = ("test", "val")
NEEDED = ("targets", "preds")


class DiffError(UserError):
    """Two evaluations that cannot be compared (other images, a missing evaluation): exit 2, the message says why."""


class MissingEvaluation(DiffError):
    """A run has no evaluation of the split asked for (the app then tries the other split)."""


@dataclass
class Side:
    """One evaluation being compared: where it comes from and its per-sample arrays."""

    run: Path
    evaluation: Evaluation
    arrays: dict[str, np.ndarray]
    names: list[str]

    @property
    def label(self) -> str:
        ev = self.evaluation
        return f"{self.run.name} {ev.split} (epoch {ev.epoch})"

    @property
    def targets(self) -> np.ndarray:
        return np.asarray(self.arrays["targets"], dtype=np.int64)

    @property
    def preds(self) -> np.ndarray:
        return np.asarray(self.arrays["preds"], dtype=np.int64)


@dataclass
class ClassChange:
    index: int
    name: str
    images: int
    acc_a: float
    acc_b: float
    delta: float  # (right in B - right in A) / images: equal changes sort as equal


@dataclass
class CellChange:
    true: int
    pred: int
    count_a: int
    count_b: int

    @property
    def change(self) -> int:
        return self.count_b - self.count_a


@dataclass
class SameImages:
    """How sure we are that A and B scored the same images."""

    weaker: bool  # True: no fingerprint on one side; sizes, class names and labels were compared instead
    note: str


@dataclass
class EvalDiff:
    a: Side
    b: Side
    check: SameImages
    names: list[str]
    confusion_a: np.ndarray
    confusion_b: np.ndarray
    per_class: list[ClassChange]  # regressions first (most negative delta), then by class index
    cells: list[CellChange]  # off-diagonal cells whose count changed, largest |change| first
    right_to_wrong: np.ndarray  # sample indices right in A, wrong in B (ascending)
    wrong_to_right: np.ndarray
    top1_a: float = 0.0
    top1_b: float = 0.0

    @property
    def change(self) -> np.ndarray:
        """The confusion matrix of B minus A's: on the diagonal gains are good, off it they are new mistakes."""
        return self.confusion_b.astype(np.int64) - self.confusion_a.astype(np.int64)

    @property
    def support(self) -> np.ndarray:
        return self.confusion_a.sum(1)

    def name(self, i: int) -> str:
        return self.names[i] if 0 <= i < len(self.names) else str(i)

    def entered(self, true: int, pred: int) -> np.ndarray:
        """Images of class ``true`` that B predicts as ``pred`` and A did not (for true == pred: wrong to right)."""
        t, pa, pb = self.a.targets, self.a.preds, self.b.preds
        return np.flatnonzero((t == true) & (pb == pred) & (pa != pred))

    def left(self, true: int, pred: int) -> np.ndarray:
        """Images of class ``true`` that A predicted as ``pred`` and B does not (for true == pred: right to wrong)."""
        t, pa, pb = self.a.targets, self.a.preds, self.b.preds
        return np.flatnonzero((t == true) & (pa == pred) & (pb != pred))

    def examples(self, kind: str, k: int) -> np.ndarray:
        """``k`` of the ``right_to_wrong`` (or ``wrong_to_right``) images, the most confident mistake first (B's for
        right to wrong, A's for wrong to right): the flips most worth a look."""
        idx = self.right_to_wrong if kind == "right_to_wrong" else self.wrong_to_right
        return confident_first(idx, self.b if kind == "right_to_wrong" else self.a)[:k]

    def lost(self, k: int) -> list[ClassChange]:
        """The ``k`` classes that lost most, the biggest loss first."""
        return [c for c in self.per_class if c.delta < 0][:k]

    def gained(self, k: int) -> list[ClassChange]:
        """The ``k`` classes that gained most, the biggest gain first."""
        return [c for c in reversed(self.per_class) if c.delta > 0][:k]

    def flips(self, k: int) -> list[tuple[str, int]]:
        """(kind, index) of ``k`` right-to-wrong, then ``k`` wrong-to-right images (:meth:`examples`)."""
        return [(kind, int(i)) for kind in ("right_to_wrong", "wrong_to_right") for i in self.examples(kind, k)]

    def flip(self, index: int) -> dict[str, Any]:
        i = int(index)
        t, pa, pb = int(self.a.targets[i]), int(self.a.preds[i]), int(self.b.preds[i])
        return {"index": i, "true": self.name(t), "pred_a": self.name(pa), "pred_b": self.name(pb)}

    def to_json(self) -> dict[str, Any]:
        def side(s: Side, top1: float) -> dict[str, Any]:
            ev = s.evaluation
            return {"run": str(s.run), "split": ev.split, "epoch": ev.epoch, "file": ev.file, "top1": top1,
                    "num_samples": int(len(s.targets)), "fingerprint": ev.fingerprint}

        return {
            "a": side(self.a, self.top1_a), "b": side(self.b, self.top1_b),
            "check": {"weaker": self.check.weaker, "note": self.check.note},
            "num_samples": int(len(self.a.targets)),
            "top1_a": self.top1_a, "top1_b": self.top1_b, "top1_delta": self.top1_b - self.top1_a,
            "per_class": [{"class": c.name, "index": c.index, "images": c.images, "acc_a": c.acc_a, "acc_b": c.acc_b,
                           "delta": c.delta} for c in self.per_class],
            "pairs": [{"true": self.name(c.true), "pred": self.name(c.pred), "count_a": c.count_a, "count_b": c.count_b,
                       "change": c.change} for c in self.cells],
            "right_to_wrong": [int(i) for i in self.right_to_wrong],
            "wrong_to_right": [int(i) for i in self.wrong_to_right],
            "flipped": {"right_to_wrong": [self.flip(i) for i in self.right_to_wrong],
                        "wrong_to_right": [self.flip(i) for i in self.wrong_to_right]},
        }


def confident_first(indices: np.ndarray, side: Side) -> np.ndarray:
    """``indices`` ordered by ``side``'s probability of its prediction, highest first (ties: by index)."""
    prob = side.arrays.get("pred_prob")
    idx = np.asarray(indices, dtype=np.int64)
    if prob is None or len(prob) != len(side.targets) or not idx.size:
        return idx
    return idx[np.lexsort((idx, -np.asarray(prob, dtype=np.float32)[idx]))]


# -- choosing and loading the two evaluations ------------------------------------------------------------
def _record(run: Path) -> RunRecord:
    record = RunRecord.read(run)
    if record.events_applied == 0:
        raise DiffError(f"diff: {run.name} has no readable events (events.jsonl missing or damaged): nothing to compare.")
    return record


def _names(run: Path, record: RunRecord) -> list[str]:
    return load_classes(run) or record.class_names


def run_evaluation(record: RunRecord, split: str) -> Evaluation | None:
    """The evaluation of ``split`` that stands for a run: test as recorded (best weights); val at the best epoch."""
    if split == "val" and record.best is not None:
        best = record.best.epoch
        found = next((e for e in reversed(record.evaluations) if e.split == "val" and e.epoch == best), None)
        if found is not None:
            return found
    return record.evaluation(split)


def _load(run: Path, record: RunRecord, evaluation: Evaluation) -> Side:
    try:
        arrays = load_evaluation(run, evaluation.file, required=NEEDED)  # all: the drilldown shows them
    except StoreError as exc:
        raise DiffError(f"diff: {run.name}: {exc}") from None
    return Side(run, evaluation, arrays, _names(run, record))


def runs_sides(run_a: str | os.PathLike, run_b: str | os.PathLike, split: str = "test") -> tuple[Side, Side]:
    """The ``split`` evaluation of two runs."""
    if split not in SPLITS:
        raise DiffError(f"--split: {split!r}: a diff of two runs compares their {' or '.join(SPLITS)} evaluations.")
    sides = []
    for run in (Path(run_a), Path(run_b)):
        record = _record(run)
        evaluation = run_evaluation(record, split)
        if evaluation is None:
            have = sorted({e.split for e in record.evaluations})
            hint = (f"it has {', '.join(have)}; compare another split with --split {'val' if split == 'test' else 'test'}"
                    if have else "it has no evaluation yet (no epoch finished)")
            raise MissingEvaluation(f"diff: {run.name} has no {split} evaluation (status {record.status}): {hint}.")
        sides.append(_load(run, record, evaluation))
    return sides[0], sides[1]


def epochs_sides(run: str | os.PathLike, epoch_a: int, epoch_b: int) -> tuple[Side, Side]:
    """The validation evaluations of two epochs of one run."""
    run = Path(run)
    record = _record(run)
    vals, kept = _val_epochs(run, record)
    sides = []
    for epoch in (epoch_a, epoch_b):
        evaluation = vals.get(epoch)
        if evaluation is None or epoch not in kept:
            why = "has no validation evaluation of epoch" if evaluation is None else \
                f"lost the predictions ({evaluation.file} is missing) of epoch"
            have = _ranges(kept) if kept else "none"
            raise DiffError(f"diff --epochs: {run.name} {why} {epoch}.\n"
                            f"  Epochs with validation predictions kept: {have}.")
        sides.append(_load(run, record, evaluation))
    return sides[0], sides[1]


def _val_epochs(run: Path, record: RunRecord) -> tuple[dict[int, Evaluation], list[int]]:
    """The validation evaluation of each epoch (the last of an epoch wins: resumes), and the epochs whose
    predictions are still on disk."""
    vals = {e.epoch: e for e in record.evaluations if e.split == "val"}
    return vals, sorted(e for e, ev in vals.items() if ev.file and (run / ev.file).is_file())


def kept_epochs(run: str | os.PathLike) -> list[int]:
    """The epochs of a run whose validation predictions can be compared."""
    return _val_epochs(Path(run), _record(Path(run)))[1]


def default_epochs(run: str | os.PathLike) -> tuple[int, int]:
    """Two epochs worth comparing first: the best against the last (what the epochs after the best changed), or
    the last two when the last is the best."""
    run = Path(run)
    record = _record(run)
    kept = _val_epochs(run, record)[1]
    if len(kept) < 2:
        raise DiffError(f"diff --epochs: {run.name} keeps validation predictions for {len(kept)} epoch"
                        f"{'' if len(kept) == 1 else 's'}; comparing epochs needs two.")
    best = record.best.epoch if record.best is not None else None
    if best in kept and best != kept[-1]:
        return best, kept[-1]
    return kept[-2], kept[-1]


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    out, start = [], None
    for k, n in enumerate(numbers):
        if start is None:
            start = n
        if k + 1 == len(numbers) or numbers[k + 1] != n + 1:
            out.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(out)


# -- the same images? ----------------------------------------------------------------------------------------
def same_images(a: Side, b: Side) -> SameImages:
    """Refuse (DiffError) evaluations that did not score the same images; say how strong the check was."""
    fa, fb = a.evaluation.fingerprint, b.evaluation.fingerprint
    ta, tb = a.targets, b.targets
    differences = []
    if len(ta) != len(tb):
        differences.append(f"{len(ta)} vs {len(tb)} images")
    if a.names != b.names:
        only_a = [n for n in a.names if n not in b.names][:3]
        only_b = [n for n in b.names if n not in a.names][:3]
        what = (f"{len(a.names)} vs {len(b.names)} classes" if len(a.names) != len(b.names)
                else "the same classes in another order" if sorted(a.names) == sorted(b.names) else "other classes")
        if only_a or only_b:
            what += f" (only in A: {', '.join(only_a) or '-'}; only in B: {', '.join(only_b) or '-'})"
        differences.append(what)
    if len(ta) == len(tb) and not np.array_equal(ta, tb):
        differences.append(f"the labels differ for {int((ta != tb).sum())} of {len(ta)} images")
    if fa and fb and fa != fb:
        differences.insert(0, f"image fingerprints {fa[:12]} vs {fb[:12]}")
    if differences:
        raise DiffError(
            f"diff: {a.label} and {b.label} were not scored on the same images: {'; '.join(differences)}.\n"
            "  Compare evaluations of the same data: the same data.* settings (and, for the validation split carved "
            "from train, the same seed); --split test compares the test sets.")
    if fa and fb:
        return SameImages(False, f"same images: fingerprint {fa[:12]} on both sides")
    who = "neither evaluation recorded an" if not (fa or fb) else f"{b.label if fa else a.label} recorded no"
    return SameImages(True, f"weaker check: {who} image fingerprint (written before cifartui recorded them): only "
                            f"the sizes ({len(ta)} images), class names and labels were compared")


# -- the diff ---------------------------------------------------------------------------------------------------
def confusion_of(targets: np.ndarray, preds: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(targets * n + preds, minlength=n * n).reshape(n, n)


def compare(a: Side, b: Side) -> EvalDiff:
    """B against A, after checking they scored the same images (DiffError otherwise)."""
    check = same_images(a, b)
    t, pa, pb = a.targets, a.preds, b.preds
    n = max(len(a.names), int(max(t.max(initial=-1), pa.max(initial=-1), pb.max(initial=-1))) + 1)
    ca, cb = confusion_of(t, pa, n), confusion_of(t, pb, n)
    support = ca.sum(1)
    names = [a.names[i] if i < len(a.names) else str(i) for i in range(n)]
    per_class = [ClassChange(i, names[i], int(support[i]), float(ca[i, i] / support[i]), float(cb[i, i] / support[i]),
                             float((int(cb[i, i]) - int(ca[i, i])) / support[i])) for i in range(n) if support[i] > 0]
    per_class.sort(key=lambda c: (c.delta, c.index))
    off = ~np.eye(n, dtype=bool)
    rows, cols = np.nonzero(off & (ca != cb))
    change = np.abs(cb[rows, cols] - ca[rows, cols])
    order = np.lexsort((cols, rows, -change))
    cells = [CellChange(int(rows[k]), int(cols[k]), int(ca[rows[k], cols[k]]), int(cb[rows[k], cols[k]])) for k in order]
    right_a, right_b = pa == t, pb == t
    total = max(1, len(t))
    return EvalDiff(a=a, b=b, check=check, names=names, confusion_a=ca, confusion_b=cb, per_class=per_class, cells=cells,
                    right_to_wrong=np.flatnonzero(right_a & ~right_b), wrong_to_right=np.flatnonzero(~right_a & right_b),
                    top1_a=float(right_a.sum() / total), top1_b=float(right_b.sum() / total))


def diff_runs(run_a: str | os.PathLike, run_b: str | os.PathLike, split: str = "test") -> EvalDiff:
    return compare(*runs_sides(run_a, run_b, split))


def diff_epochs(run: str | os.PathLike, epoch_a: int, epoch_b: int) -> EvalDiff:
    return compare(*epochs_sides(run, epoch_a, epoch_b))


# -- words ----------------------------------------------------------------------------------------------------
def points(v: float) -> str:
    return f"{100 * v:+.1f}"


def summary_lines(d: EvalDiff) -> list[str]:
    """The headline in plain words (the CLI, the report and the app share it)."""
    n = len(d.a.targets)
    worse = sum(c.delta < 0 for c in d.per_class)
    better = sum(c.delta > 0 for c in d.per_class)
    return [
        f"top-1 {100 * d.top1_a:.2f}% -> {100 * d.top1_b:.2f}% ({points(d.top1_b - d.top1_a)} points) on {n} images",
        f"{len(d.wrong_to_right)} images wrong -> right, {len(d.right_to_wrong)} right -> wrong "
        f"(net {len(d.wrong_to_right) - len(d.right_to_wrong):+d}); {better} classes better, {worse} worse, "
        f"{len(d.per_class) - better - worse} unchanged",
    ]
