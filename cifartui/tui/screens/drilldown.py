"""Drilldown: the images of true class A predicted as B, most confident mistakes first, each with its
predicted probability; the B-as-A count beside (``s`` swaps to those images)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from cifartui.record.events import Evaluation
from cifartui.record.store import load_samples
from cifartui.tui.formatting import pct
from cifartui.tui.widgets.thumbnails import HalfBlockImage, ThumbGrid

if TYPE_CHECKING:
    from cifartui.tui.app import CifarApp

MAX_ITEMS = 2000


def pair_indices(arrays: dict[str, np.ndarray], true: int, pred: int) -> np.ndarray:
    """Sample indices of true ``true`` predicted ``pred``, the most confident first."""
    targets, preds = arrays["targets"], arrays["preds"]
    idx = np.flatnonzero((targets == true) & (preds == pred))
    if "pred_prob" in arrays and idx.size:
        prob = arrays["pred_prob"][idx].astype(np.float32)
        idx = idx[np.lexsort((idx, -prob))]
    return idx


class DrilldownScreen(Screen):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        Binding("s", "swap", "Swap A/B"),
    ]

    def __init__(self, run_dir: Path, evaluation: Evaluation, arrays: dict[str, np.ndarray], names: list[str],
                 true: int, pred: int) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.evaluation = evaluation
        self.arrays = arrays
        self.names = names
        self.true, self.pred = true, pred
        self.indices = np.zeros(0, dtype=np.int64)
        self.images: np.ndarray | None = None
        self.samples_loaded = False

    @property
    def cifar(self) -> "CifarApp":
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(id="dd-title", classes="screen-title")
        with Horizontal(id="dd-body"):
            yield ThumbGrid(id="thumbs", side=16)
            with Vertical(id="dd-detail"):
                image_cls = self.cifar.graphics_image_cls
                if image_cls is not None:  # the terminal speaks a graphics protocol (kitty, sixel)
                    yield image_cls(id="dd-big-img")
                yield Static(id="dd-big")
                yield Static(id="dd-info")
        yield Footer()

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
        a, b = self.true, self.pred
        self.indices = pair_indices(self.arrays, a, b)
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

    def _image(self, i: int) -> np.ndarray | None:
        if self.images is None or i >= len(self.images):
            return None
        return self.images[i]

    def on_thumb_grid_highlighted(self, event: ThumbGrid.Highlighted) -> None:
        if event.index < len(self.indices):
            self._detail(int(self.indices[event.index]))

    def _detail(self, i: int | None) -> None:
        big = self.query_one("#dd-big", Static)
        info = self.query_one("#dd-info", Static)
        if i is None:
            big.update("")
            info.update(Text("no image in this cell", style="dim"))
            return
        img = self._image(i)
        graphic = self.query("#dd-big-img")
        if img is not None and graphic:
            from PIL import Image as PILImage

            graphic.first().image = PILImage.fromarray(np.ascontiguousarray(img)).resize((128, 128), PILImage.NEAREST)
            big.update("")
        elif img is not None:
            room = self.query_one("#dd-detail").content_size.width or 32
            big.update(HalfBlockImage(img, max(8, min(32, room) // 2 * 2)))
        elif self.samples_loaded:
            big.update(Text("this run saved no thumbnails\n(output.save_samples: false)", style="dim"))
        else:
            big.update(Text("loading thumbnails ...", style="dim"))
        t = Text()
        t.append(f"sample #{i}\n", style="bold")
        tgt, prd = int(self.arrays["targets"][i]), int(self.arrays["preds"][i])
        t.append("true  ", style="dim")
        t.append(self.names[tgt], style="cyan")
        if "true_prob" in self.arrays:
            t.append(f"  p={float(self.arrays['true_prob'][i]):.3f}")
        t.append("\npred  ", style="dim")
        t.append(self.names[prd], style="magenta")
        if "pred_prob" in self.arrays:
            t.append(f"  p={float(self.arrays['pred_prob'][i]):.3f}")
        t.append(f"\n{pct(float(self.arrays['pred_prob'][i]) if 'pred_prob' in self.arrays else None, 1)} sure", style="dim")
        info.update(t)

    # -- actions ----------------------------------------------------------------------------------------
    def action_swap(self) -> None:
        self.true, self.pred = self.pred, self.true
        self._show_pair()

    def action_back(self) -> None:
        self.app.pop_screen()


__all__ = ["DrilldownScreen", "HalfBlockImage", "pair_indices"]
