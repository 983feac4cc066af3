"""Suspects: the images whose label the run's best weights contradict most confidently (cleanlab, as
``cifartui suspects``), in the drilldown's thumbnail grid. ``x`` marks the selected image to leave out of
the next run's training, ``u`` unmarks it; the marks live in the run folder's ``exclude.txt`` (saved
atomically at each key), which a config names as ``data.exclude``. ``t`` steps through the splits;
a split without stored probabilities is evaluated with best.pt only when asked (``E``), since that scores
every image of it. ``g``/``G``: where the model looks (cam_view.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.widgets import Static

from cifartui.record.exclude import EXCLUDE_FILE, run_exclude, write_exclude
from cifartui.record.store import load_samples
from cifartui.tui.cam_view import CamMixin
from cifartui.tui.thumbnail_screen import ThumbnailScreen
from cifartui.tui.widgets.thumbnails import ThumbGrid

SPLITS = ("train", "val", "test")
SHOWN = 300  # the most suspect; cleanlab may flag thousands in a large noisy set


class SuspectsScreen(ThumbnailScreen):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        Binding("x", "mark(True)", "Exclude", tooltip="leave this image out of the next run (exclude.txt)"),
        Binding("u", "mark(False)", "Unmark"),
        Binding("t", "next_split", "Split"),
        Binding("E", "evaluate", "Evaluate", key_display="E",
                tooltip="score this split with best.pt to rank its labels (every image: minutes on a CPU for CIFAR)"),
        *CamMixin.CAM_BINDINGS,
    ]

    def __init__(self, run_dir: Path, splits: tuple[str, ...] = ("train", "test")) -> None:
        super().__init__(run_dir)
        self.prefer = [s for s in splits if s in SPLITS] or ["train"]
        self.split = self.prefer[0]
        self.found: Any = None  # commands.suspects.Suspects
        self.marks: list[str] = []
        self.state = "ranking"  # ranking | evaluating | missing | ready | error
        self.message = ""

    def on_mount(self) -> None:
        try:
            self.marks = run_exclude(self.run_dir)
        except Exception as exc:  # noqa: BLE001 - an unreadable list: said, and marking starts afresh
            self.notify(f"{EXCLUDE_FILE}: {exc}", severity="warning")
        self.query_one(ThumbGrid).focus()
        self._load(self.prefer, evaluate=False)

    # -- loading (a worker: cleanlab, and torch when evaluating) ----------------------------------------
    @work(thread=True, exclusive=True, group="suspects")
    def _load(self, splits: list[str], evaluate: bool) -> None:
        from cifartui.commands.suspects import find_suspects

        found, error, split = None, "", splits[0]
        try:
            for split in splits:  # the first split whose probabilities are stored (or evaluated, when asked)
                found = find_suspects(self.run_dir, split, SHOWN, str(self.cifar.root), evaluate=evaluate)
                if found is not None:
                    break
            if found is None:
                split = splits[0]
            images = self.cifar.samples_cache(self.run_dir, found.evaluation, load_samples) if found else None
        except Exception as exc:  # noqa: BLE001 - no extra, no best.pt, a damaged file: said on the screen
            error, images = str(exc), None
        self.app.call_from_thread(self._loaded, split, found, images, error)

    def _loaded(self, split: str, found: Any, images: np.ndarray | None, error: str) -> None:
        self.split, self.found, self.images = split, found, images
        self.state = "error" if error else ("ready" if found is not None else "missing")
        self.message = error
        self._show()

    # -- drawing ----------------------------------------------------------------------------------------
    @property
    def items(self) -> list:
        return self.found.items if self.found is not None else []

    def _title(self) -> Text:
        t = Text("Suspects  ", style="bold")
        t.append(self.run_dir.name, style="bold cyan")
        t.append(f"  {self.split}", style="bold magenta")
        f = self.found
        if self.state == "ready" and f is not None:
            t.append(f" (evaluation {f.evaluation}, best.pt epoch {f.epoch}): cleanlab flags {f.flagged} of "
                     f"{f.num_samples} labels", style="")
            if f.flagged > len(f.items):
                t.append(f"; the {len(f.items)} most suspect", style="dim")
        t.append(f"   ·   {len(self.marks)} marked in {EXCLUDE_FILE}", style="yellow" if self.marks else "dim")
        return t

    def _show(self) -> None:
        self.query_one("#dd-title", Static).update(self._title())
        marked = set(self.marks)
        images = [self._image(s.index) for s in self.items]
        captions = [f"{'x ' if s.ref in marked else ''}{round(100 * s.label_prob)}% #{s.index}" for s in self.items]
        grid = self.query_one(ThumbGrid)
        keep = grid.selected
        grid.set_items(images, captions)
        if self.items:
            grid.select(min(keep, len(self.items) - 1))
        else:
            self._detail(None)

    def _note(self) -> Text:
        if self.state == "ranking":
            return Text("ranking labels with cleanlab ...", style="yellow")
        if self.state == "evaluating":
            return Text(f"evaluating the {self.split} images with best.pt (loading torch first) ...\n"
                        "the ranking follows when it is done", style="yellow")
        if self.state == "error":
            return Text(self.message, style="red")
        if self.state == "missing":
            return Text(f"no stored probabilities of best.pt for the {self.split} split.\n"
                        f"E: evaluate its images now (all of them: minutes on a CPU for CIFAR), or run\n"
                        f"cifartui suspects {self.run_dir} --split {self.split}\n"
                        "t: another split", style="yellow")
        return Text("cleanlab flags no label of this split", style="dim")

    def sample_at(self, position: int) -> int | None:
        return self.items[position].index if position < len(self.items) else None

    def _detail(self, i: int | None) -> None:
        info = self.query_one("#dd-info", Static)
        suspect = next((s for s in self.items if s.index == i), None) if i is not None else None
        if suspect is None:
            self.query_one("#dd-big", Static).update("")
            info.update(self._note())
            return
        self.show_image(suspect.index, Text("no thumbnails for this evaluation", style="dim"))
        t = Text()
        t.append(f"sample #{i}\n", style="bold")
        t.append(f"{suspect.ref}\n", style="dim")
        t.append("label  ", style="dim")
        t.append(suspect.label, style="cyan")
        t.append(f"  p={suspect.label_prob:.3f}")
        t.append("\nmodel  ", style="dim")
        t.append(suspect.pred, style="magenta")
        t.append(f"  p={suspect.pred_prob:.3f}")
        if suspect.ref in self.marks:
            t.append("\nexcluded from the next run (u: keep it)", style="bold yellow")
        else:
            t.append("\nx: leave it out of the next run", style="dim")
        t.append_text(self.cam_note(i))
        info.update(t)

    # -- class activation maps (cam_view.py) --------------------------------------------------------------
    @property
    def cam_split(self) -> str:
        return self.found.evaluation if self.found is not None else self.split

    # -- actions ----------------------------------------------------------------------------------------
    def action_mark(self, exclude: bool) -> None:
        selected = self.query_one(ThumbGrid).selected
        if selected >= len(self.items):
            return
        ref = self.items[selected].ref
        marks = [m for m in self.marks if m != ref] + ([ref] if exclude else [])
        if marks == self.marks:
            return
        try:
            path = write_exclude(self.run_dir, marks)
        except OSError as exc:
            self.notify(f"cannot save {self.run_dir / EXCLUDE_FILE}: {exc.strerror or exc}", severity="error")
            return
        self.marks = marks
        self._show()
        if exclude and len(marks) == 1:
            self.notify(f"saved in {path}; train without them: data.exclude: {path}", timeout=8)

    def action_next_split(self) -> None:
        if self.state in ("ranking", "evaluating"):
            return
        split = SPLITS[(SPLITS.index(self.split) + 1) % len(SPLITS)]
        self.state, self.found, self.split = "ranking", None, split
        self._show()
        self._load([split], evaluate=False)

    def action_evaluate(self) -> None:
        if self.state != "missing":
            return
        self.state = "evaluating"
        self._show()
        self._load([self.split], evaluate=True)
