"""``g`` / ``G`` on a screen of images: the class activation map of the selected image drawn over it, for the
class best.pt predicts (``g``) or the image's true class (``G``); the same key again shows the plain image.

Maps are computed off the UI thread (a thread worker) by the app's :meth:`~cifartui.tui.app.CifarApp.cam_maker`
for the run (``cifartui cam``'s machinery: best.pt on the CPU, Grad-CAM): the first one loads torch, the
grad-cam package and the weights, which takes seconds, and says so while it does. Each map is kept, so
moving back to an image shows it at once.

A screen mixes :class:`CamMixin` in (the thumbnail screens do, through :mod:`cifartui.tui.thumbnail_screen`),
adds ``CAM_BINDINGS`` to its bindings, and provides ``run_dir``, ``cam_split`` (the evaluation its images come
from), ``cam_index()`` (the selected sample) and ``_detail(index)`` (redraws the selected image); its ``_detail``
shows ``cam_overlay(i)`` when there is one and appends ``cam_note(i)`` to the image's text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text
from textual import work
from textual.binding import Binding

OVERLAY_SIDE = 128  # pixels: the drilldown's big image (graphics terminals) and, shrunk, its half-block one


class CamMixin:
    CAM_BINDINGS = [
        Binding("g", "cam('pred')", "Map: pred", tooltip="where best.pt looks for the class it predicts (again: off)"),
        Binding("G", "cam('true')", "Map: true", key_display="G", tooltip="where it looks for the true class"),
    ]

    cam_kind: str | None = None  # "pred" | "true" while a map is shown over the images
    run_dir: Path
    cam_split: str

    def _cam_store(self) -> dict[tuple[int, str], Any]:
        store = self.__dict__.get("_cams")
        if store is None:
            store = self.__dict__["_cams"] = {}
        return store

    def cam_index(self) -> int | None:
        raise NotImplementedError

    def _detail(self, index: int | None) -> None:
        raise NotImplementedError

    # -- what the host screen draws -------------------------------------------------------------------
    def cam_overlay(self, index: int) -> np.ndarray | None:
        """The map over image ``index`` (uint8 H,W,3) when one is shown and ready; asks for it otherwise."""
        self.__dict__["_cam_wanted"] = (index, self.cam_kind)  # what a worker still waiting should compute
        if self.cam_kind is None:
            return None
        found = self._cam_store().get((index, self.cam_kind))
        if found is None:
            self._cam_request(index, self.cam_kind)
            return None
        return found if isinstance(found, np.ndarray) else None

    def cam_note(self, index: int) -> Text:
        if self.cam_kind is None:
            return Text()
        found = self._cam_store().get((index, self.cam_kind))
        whose = "its prediction" if self.cam_kind == "pred" else "the true class"
        if found is None or (isinstance(found, str) and found == "busy"):
            first = not self.app.cam_maker_ready(self.run_dir)  # type: ignore[attr-defined]
            more = " (loading torch and best.pt: seconds the first time)" if first else ""
            return Text(f"\ncomputing the map for {whose}{more} ...", style="yellow")
        if isinstance(found, str):
            return Text(f"\nno map: {found}", style="red")
        note = self._cam_store().get((index, self.cam_kind, "note"), "")
        return Text(f"\nmap: {note}  (g/G again: plain)", style="green")

    # -- keys -----------------------------------------------------------------------------------------
    def action_cam(self, kind: str) -> None:
        self.cam_kind = None if self.cam_kind == kind else kind
        index = self.cam_index()
        if index is not None:
            self._detail(index)

    def _cam_request(self, index: int, kind: str) -> None:
        store = self._cam_store()
        if (index, kind) not in store:
            store[(index, kind)] = "busy"
            self._cam_work(index, kind)

    @work(thread=True, group="cam")
    def _cam_work(self, index: int, kind: str) -> None:
        from cifartui.errors import UserError
        from cifartui.extras import MissingExtra

        try:
            maker = self.app.cam_maker(self.run_dir)  # type: ignore[attr-defined]
            if self.__dict__.get("_cam_wanted") != (index, kind):  # the cursor moved on while torch loaded
                self.app.call_from_thread(self._cam_store().pop, (index, kind), None)  # type: ignore[attr-defined]
                return
            out = maker.explain(self.cam_split, index, kind)
            result: Any = out.overlay(OVERLAY_SIDE)
            note = f"{out.target} ({'predicted' if kind == 'pred' else 'true class'}, p={out.target_prob:.2f}) at {out.layer}"
        except UserError as exc:  # no analysis extra, no best.pt, an architecture without a map: said, not raised
            result, note = str(exc).replace("\n ", ""), ""
            if isinstance(exc, MissingExtra):  # the install command, where it is seen
                self.app.call_from_thread(self.notify, result, severity="warning", timeout=8)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - a damaged checkpoint must not take the app down
            result, note = f"{type(exc).__name__}: {exc}", ""
        self.app.call_from_thread(self._cam_ready, index, kind, result, note)  # type: ignore[attr-defined]

    def _cam_ready(self, index: int, kind: str, result: Any, note: str) -> None:
        store = self._cam_store()
        store[(index, kind)] = result
        store[(index, kind, "note")] = note
        if self.cam_kind == kind and self.cam_index() == index:
            self._detail(index)
