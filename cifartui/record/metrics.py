"""Confusion-matrix analysis (numpy only, so readers and the TUI never import torch).

Convention: ``confusion[i, j]`` counts samples of true class i predicted as class j.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ConfusedPair:
    true: int
    pred: int
    count: int
    share: float  # count / samples of the true class
    reverse: int  # pred-as-true count


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class; NaN for a class with no samples."""
    support = confusion.sum(1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)


def precision(confusion: np.ndarray) -> np.ndarray:
    predicted = confusion.sum(0).astype(np.float64)
    return np.where(predicted > 0, np.diag(confusion) / np.maximum(predicted, 1), np.nan)


def accuracy(confusion: np.ndarray) -> float:
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else float("nan")


def row_normalised(confusion: np.ndarray) -> np.ndarray:
    support = confusion.sum(1, keepdims=True).astype(np.float64)
    return confusion / np.maximum(support, 1)


def most_confused(confusion: np.ndarray, k: int = 10) -> list[ConfusedPair]:
    """The k largest off-diagonal cells, largest first (ties: by true then predicted index)."""
    c = np.asarray(confusion)
    off = c.copy()
    np.fill_diagonal(off, 0)
    flat = np.flatnonzero(off)
    if flat.size == 0:
        return []
    counts = off.ravel()[flat]
    order = np.lexsort((flat, -counts))[:k]
    support = c.sum(1)
    pairs = []
    for idx in flat[order]:
        i, j = divmod(int(idx), c.shape[1])
        pairs.append(ConfusedPair(i, j, int(c[i, j]), float(c[i, j] / max(1, support[i])), int(c[j, i])))
    return pairs


def ranked_classes(confusion: np.ndarray) -> list[tuple[int, float]]:
    """(class, accuracy) from best to worst; classes without samples are left out."""
    acc = per_class_accuracy(confusion)
    idx = [i for i in np.argsort(-np.nan_to_num(acc, nan=-1.0), kind="stable") if not np.isnan(acc[i])]
    return [(int(i), float(acc[i])) for i in idx]


@dataclass
class GroupSummary:
    """Accuracy of one group of classes (e.g. a CIFAR-100 superclass)."""

    group: int
    classes: list[int]
    support: int  # samples whose true class is in the group
    accuracy: float  # fine-label accuracy over those samples
    group_accuracy: float  # share predicted as some class of the same group (coarse accuracy)


def grouped(confusion: np.ndarray, groups: np.ndarray) -> list[GroupSummary]:
    """Per-group accuracy; ``groups[i]`` is the group id of class i (negative: in no group, left out)."""
    c = np.asarray(confusion, dtype=np.int64)
    groups = np.asarray(groups)
    out = []
    for g in sorted(int(v) for v in np.unique(groups) if v >= 0):
        members = np.flatnonzero(groups == g)
        rows = c[members]
        support = int(rows.sum())
        correct = int(np.trace(c[np.ix_(members, members)]))
        in_group = int(rows[:, members].sum())
        out.append(GroupSummary(g, [int(i) for i in members], support,
                                correct / support if support else float("nan"),
                                in_group / support if support else float("nan")))
    return out


def errors_within_groups(confusion: np.ndarray, groups: np.ndarray) -> tuple[int, int]:
    """(errors whose prediction lies in the true class's group, errors that cross groups).

    Classes in no group (negative id) count as their own group of one."""
    c = np.asarray(confusion, dtype=np.int64)
    g = np.asarray(groups).copy()
    solo = g < 0
    g[solo] = -1 - np.flatnonzero(solo)  # distinct negative ids: never equal to another class's
    same = g[:, None] == g[None, :]
    np.fill_diagonal(same, False)
    off = c.copy()
    np.fill_diagonal(off, 0)
    within = int(off[same].sum())
    return within, int(off.sum()) - within
