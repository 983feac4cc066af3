"""Lists of images one screen hands the drilldown grid instead of a confusion cell (the Diff screen's flipped
images). A module of its own: screens never import each other, so neither owns the type they exchange."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ImageSet:
    """Sample indices into an evaluation's split with a title; ``other`` holds the arrays of the evaluation it is
    compared with, whose prediction the detail pane shows beside this one's (``label`` / ``other_label``)."""

    title: str
    indices: np.ndarray
    other: dict[str, np.ndarray] | None = None
    label: str = "B"
    other_label: str = "A"
