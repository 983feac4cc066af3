"""The base of the screens of thumbnails (the drilldown, the Suspects view): a title, the grid, and beside it the
selected image large over its text, with ``g``/``G`` maps drawn over it (:mod:`cifartui.tui.cam_view`).

Not in ``screens/``: screens never import each other. A screen says which sample sits at each grid position
(``sample_at``) and writes the detail pane (``_detail``, which calls ``show_image`` and appends ``cam_note``);
it keeps its own ``BINDINGS`` (``escape`` to ``back``, ``*CAM_BINDINGS``) so that its footer and ``?`` list them
in its order.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from cifartui.tui.cam_view import OVERLAY_SIDE, CamMixin
from cifartui.tui.widgets.thumbnails import HalfBlockImage, ThumbGrid

if TYPE_CHECKING:
    from cifartui.tui.app import CifarApp


class ThumbnailScreen(CamMixin, Screen):
    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.images: np.ndarray | None = None  # the split's thumbnails (samples_<split>.npz), once loaded

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

    # -- what the screen provides -----------------------------------------------------------------------
    def sample_at(self, position: int) -> int | None:
        """The sample index of the thumbnail at ``position`` in the grid; None past the end."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------------------
    def cam_index(self) -> int | None:
        return self.sample_at(self.query_one(ThumbGrid).selected)

    def on_thumb_grid_highlighted(self, event: ThumbGrid.Highlighted) -> None:
        index = self.sample_at(event.index)
        if index is not None:
            self._detail(index)

    def _image(self, i: int) -> np.ndarray | None:
        return self.images[i] if self.images is not None and i < len(self.images) else None

    def show_image(self, i: int, missing: Text) -> None:
        """Sample ``i`` large: its map when one is shown and ready, else its thumbnail, else ``missing``. A picture
        where the terminal speaks a graphics protocol, else half blocks as wide as the panel allows (32 px)."""
        img = self.cam_overlay(i)
        img = self._image(i) if img is None else img
        big = self.query_one("#dd-big", Static)
        if img is None:
            big.update(missing)
            return
        graphic = self.query("#dd-big-img")
        if graphic:
            from PIL import Image

            side = (OVERLAY_SIDE, OVERLAY_SIDE)
            graphic.first().image = Image.fromarray(np.ascontiguousarray(img)).resize(side, Image.NEAREST)
            big.update("")
        else:
            room = self.query_one("#dd-detail").content_size.width or 32
            big.update(HalfBlockImage(img, max(8, min(32, room) // 2 * 2)))

    def action_back(self) -> None:
        self.app.pop_screen()
