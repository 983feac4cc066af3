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
