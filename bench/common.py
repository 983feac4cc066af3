"""What every benchmark returns, and the timing helpers they share."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Result:
    """One benchmark's figures. ``ratio`` > 1 means cifartui is better, whatever the unit.

    ``goal`` is the ratio to reach. Benchmarks with an absolute budget (runs_list: 1 s) report the
    budget as ``baseline`` and ``ratio = budget / value``, so their goal is 1.
    A benchmark that cannot run here (no app, no GPU) has ``value`` None and says why in ``note``.
    """

    value: float | None
    baseline: float | None
    unit: str
    goal: float
    higher_is_better: bool = True
    note: str = ""
    paired_ratio: float | None = None  # set by benchmarks that compare run by run (see :func:`pairs`)
    extra: dict = field(default_factory=dict)  # more figures for the JSON entry, e.g. {"runs": 10000}

    @property
    def ratio(self) -> float | None:
        if self.paired_ratio is not None:
            return self.paired_ratio
        if self.value is None or self.baseline is None:
            return None
        if self.higher_is_better:
            return self.value / self.baseline if self.baseline else float("inf")
        return self.baseline / self.value if self.value else float("inf")

    @property
    def verdict(self) -> str:
        r = self.ratio
        if r is None:
            return "N/A"
        return "PASS" if r >= self.goal else "MISS"

    def to_json(self) -> dict:
        out = {"value": _round(self.value), "baseline": _round(self.baseline), "ratio": _round(self.ratio),
               "unit": self.unit, "goal": self.goal}
        if self.note:
            out["note"] = self.note
        out.update(self.extra)
        return out


def not_available(unit: str, goal: float, why: str, higher_is_better: bool = True) -> Result:
    return Result(None, None, unit, goal, higher_is_better, note=f"not available: {why}")


def _round(v: float | None) -> float | None:
    if v is None:
        return None
    return float(f"{v:.4g}")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def interleave(ours: Callable[[], float], base: Callable[[], float], repeats: int) -> tuple[float, float]:
    """Run ``ours`` and ``base`` alternately (ABBA...) ``repeats`` times each; medians of their figures.

    Alternating the order cancels slow drifts (another process on the machine, thermal state)."""
    a, b = pairs(ours, base, repeats)
    return median(a), median(b)


def rate(fn: Callable[[], int]) -> float:
    """Items per second of one call of ``fn`` (which returns how many items it did)."""
    t0 = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - t0)


def pairs(ours: Callable[[], float], base: Callable[[], float], repeats: int) -> tuple[list[float], list[float]]:
    """``repeats`` adjacent (ours, base) measurements, alternately ordered (AB, BA, AB ...).

    For long measurements on a machine whose speed drifts between them (a shared VM: the same headless
    run here gives 234 to 410 img/s within minutes), the median of the per-pair ratios compares each
    run with its neighbour in time, where a ratio of medians would mix different minutes."""
    a, b = [], []
    for i in range(repeats):
        if i % 2 == 0:
            a.append(ours())
            b.append(base())
        else:
            b.append(base())
            a.append(ours())
    return a, b
