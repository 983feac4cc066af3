"""Drilldown: the images of true class A predicted as B, most confident mistakes first, each with its
predicted probability; the B-as-A count beside (``s`` swaps to those images). Other screens may hand it lists
of images instead (:class:`~cifartui.tui.image_sets.ImageSet`, the Diff screen's flips): ``s`` steps through them."""

from __future__ import annotations

from pathlib import Path
import numpy as np
from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.widgets import Static

from cifartui.record.events import Evaluation
from cifartui.record.store import load_samples
from cifartui.tui.cam_view import CamMixin
from cifartui.tui.formatting import pct
from cifartui.tui.image_sets import ImageSet
from cifartui.tui.thumbnail_screen import ThumbnailScreen
from cifartui.tui.widgets.thumbnails import ThumbGrid

MAX_ITEMS = 2000


def pair_indices(arrays: dict[str, np.ndarray], true: int, pred: int) -> np.ndarray:
    """Sample indices of true ``true`` predicted ``pred``, the most confident first."""
    targets, preds = arrays["targets"], arrays["preds"]
    idx = np.flatnonzero((targets == true) & (preds == pred))
    if "pred_prob" in arrays and idx.size:
        prob = arrays["pred_prob"][idx].astype(np.float32)
        idx = idx[np.lexsort((idx, -prob))]
    return idx


class DrilldownScreen(ThumbnailScreen):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        Binding("s", "swap", "Swap A/B"),
        *CamMixin.CAM_BINDINGS,
    ]

    def __init__(self, run_dir: Path, evaluation: Evaluation, arrays: dict[str, np.ndarray], names: list[str],
                 true: int, pred: int, sets: list[ImageSet] | None = None) -> None:
        super().__init__(run_dir)
        self.sets = list(sets or [])  # lists of images to show instead of the (true, pred) cell
        self.set_index = 0
        self.evaluation = evaluation
        self.arrays = arrays
        self.names = names
        self.true, self.pred = true, pred
        self.indices = np.zeros(0, dtype=np.int64)
        self.samples_loaded = False

    def on_mount(self) -> None:
        self._show_pair()
        self.query_one(ThumbGrid).focus()
        self._load_samples()

    @work(thread=True, exclusive=True, group="samples")
    def _load_samples(self) -> None:
        split = str(self.evaluation.split)
        try:
            images = self.cifar.samples_cache(self.run_dir, split, load_samples)
        except Exception as exc:  # noqa: BLE001 - a damaged samples file: the grid says so, the app stays
            self.app.call_from_thread(self.notify, f"no thumbnails: {exc}", severity="warning")
            images = None
        self.app.call_from_thread(self._samples_ready, images)

    def _samples_ready(self, images: np.ndarray | None) -> None:
        self.images = images
        self.samples_loaded = True
        self._show_pair()

    # -- drawing ----------------------------------------------------------------------------------------
    def _show_pair(self) -> None:
        self.indices, t = self._set_title() if self.sets else self._pair_title()
        if len(self.indices) > MAX_ITEMS:
            t.append(f"   (showing the {MAX_ITEMS} most confident)", style="dim")
        self.query_one("#dd-title", Static).update(t)
        shown = self.indices[:MAX_ITEMS]
        probs = self.arrays.get("pred_prob")
        images = [self._image(int(i)) for i in shown]
        captions = [f"{round(100 * float(probs[i])) if probs is not None else 0:d}% #{int(i)}" for i in shown]
        grid = self.query_one(ThumbGrid)
        grid.set_items(images, captions)
        if len(shown):
            grid.select(0)
        else:
            self._detail(None)

    def _pair_title(self) -> tuple[np.ndarray, Text]:
        a, b = self.true, self.pred
        conf = self.arrays["confusion"]
        ev = self.evaluation
        t = Text()
        t.append(f"{ev.split} epoch {ev.epoch}: ", style="dim")
        t.append(f"true {self.names[a]}", style="bold cyan")
        t.append(" predicted as " if a != b else " predicted correctly as ")
        t.append(self.names[b], style="bold magenta")
        t.append(f": {int(conf[a, b])} image{'s' if int(conf[a, b]) != 1 else ''}")
        if a != b:
            t.append(f"   ·   {self.names[b]} as {self.names[a]}: {int(conf[b, a])}", style="yellow")
        return pair_indices(self.arrays, a, b), t

    def _set_title(self) -> tuple[np.ndarray, Text]:
        chosen = self.sets[self.set_index]
        t = Text(chosen.title, style="bold")
        if len(self.sets) > 1:
            t.append(f"   ·   s: next list ({self.set_index + 1} of {len(self.sets)})", style="dim")
        return np.asarray(chosen.indices, dtype=np.int64), t

    def sample_at(self, position: int) -> int | None:
        return int(self.indices[position]) if position < min(len(self.indices), MAX_ITEMS) else None

    def _detail(self, i: int | None) -> None:
        info = self.query_one("#dd-info", Static)
        if i is None:
            self.query_one("#dd-big", Static).update("")
            info.update(Text("no image in this cell", style="dim"))
            return
        self.show_image(i, Text("this run saved no thumbnails\n(output.save_samples: false)" if self.samples_loaded
                                else "loading thumbnails ...", style="dim"))
        t = Text()
        t.append(f"sample #{i}\n", style="bold")
        tgt, prd = int(self.arrays["targets"][i]), int(self.arrays["preds"][i])
        t.append("true  ", style="dim")
        t.append(self.names[tgt], style="cyan")
        if "true_prob" in self.arrays:
            t.append(f"  p={float(self.arrays['true_prob'][i]):.3f}")
        chosen = self.sets[self.set_index] if self.sets else None
        label = ""
        if chosen is not None and chosen.other is not None:  # the prediction it is compared with, first
            other, label = chosen.other, f"{chosen.label} "
            t.append(f"\n{chosen.other_label} pred  ", style="dim")
            t.append(self.names[int(other["preds"][i])], style="magenta")
            if "pred_prob" in other:
                t.append(f"  p={float(other['pred_prob'][i]):.3f}")
        t.append(f"\n{label}pred  ", style="dim")
        t.append(self.names[prd], style="magenta")
        if "pred_prob" in self.arrays:
            t.append(f"  p={float(self.arrays['pred_prob'][i]):.3f}")
        t.append(f"\n{pct(float(self.arrays['pred_prob'][i]) if 'pred_prob' in self.arrays else None, 1)} sure", style="dim")
        t.append_text(self.cam_note(i))
        info.update(t)

    # -- class activation maps (cam_view.py) --------------------------------------------------------------
    @property
    def cam_split(self) -> str:
        return str(self.evaluation.split)

    # -- actions ----------------------------------------------------------------------------------------
    def action_swap(self) -> None:
        if self.sets:
            self.set_index = (self.set_index + 1) % len(self.sets)
        else:
            self.true, self.pred = self.pred, self.true
        self._show_pair()


__all__ = ["DrilldownScreen", "pair_indices"]
