"""Diff screen: what changed between two evaluations of the same images (the figures of :mod:`cifartui.diff`).

Left, every class's change in accuracy as a bar, regressions first; middle, the confusion matrix of B minus A
(the confusion matrix's navigation, blue where B does better, red where it does worse); right, the cell under
the cursor. Enter on a class or a cell opens its flipped images in the drilldown grid (``s`` there switches
between the images that entered and those that left).

Two runs (``v`` switches test / val) or two validation epochs of one run (``[`` ``]`` step A's epoch,
``{`` ``}`` B's). Evaluations of other images are refused with the reason, as ``cifartui diff`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Label, OptionList, Static
from textual.widgets.option_list import Option

from cifartui.diff import (ClassChange, DiffError, EvalDiff, MissingEvaluation, confident_first, default_epochs,
                           diff_epochs, diff_runs, kept_epochs, points, summary_lines)
from cifartui.tui.formatting import pct, short
from cifartui.tui.image_sets import ImageSet
from cifartui.tui.widgets.confusion_matrix import ConfusionMatrix

if TYPE_CHECKING:
    from cifartui.tui.app import CifarApp

BAR_HALF = 8  # cells on each side of the zero line


def change_bar(delta: float, scale: float, half: int = BAR_HALF) -> Text:
    """A bar centred on zero: red to the left for a loss, blue to the right for a gain."""
    k = min(half, round(abs(delta) / scale * half)) if scale > 0 else 0
    if delta != 0 and k == 0:
        k = 1  # any change shows
    left = Text(" " * (half - k) + "█" * k if delta < 0 else " " * half, style="#d64541")
    right = Text("█" * k + " " * (half - k) if delta > 0 else " " * half, style="#4285e6")
    return Text.assemble(left, ("│", "dim"), right)


class DiffScreen(Screen):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        Binding("n", "toggle_normalise", "Count/%"),
        Binding("v", "toggle_split", "Test/val"),
        Binding("left_square_bracket", "epoch(0, -1)", "A epoch -", key_display="["),
        Binding("right_square_bracket", "epoch(0, 1)", "A epoch +", key_display="]"),
        Binding("left_curly_bracket", "epoch(1, -1)", "B epoch -", key_display="{"),
        Binding("right_curly_bracket", "epoch(1, 1)", "B epoch +", key_display="}"),
        Binding("tab", "switch_focus", "Classes/matrix", show=False),
    ]

    def __init__(self, runs: list[Path], epochs: tuple[int, int] | None = None, split: str = "test") -> None:
        super().__init__()
        self.runs = [Path(r) for r in runs]
        self.epochs = epochs  # one run: its two validation epochs (None: the screen picks)
        self._kept: list[int] | None = None  # the epochs with stored predictions, read at the first [ ] { }
        self.split = split
        self.normalise = False
        self.diff: EvalDiff | None = None
        self.error: str | None = None

    @property
    def cifar(self) -> "CifarApp":
        return self.app  # type: ignore[return-value]

    @property
    def by_epochs(self) -> bool:
        return len(self.runs) == 1

    def compose(self) -> ComposeResult:
        yield Static(id="diff-title", classes="screen-title")
        yield Static(id="diff-note")
        with Horizontal(id="diff-body"):
            with Vertical(id="diff-classes-box"):
                yield Label("change per class, B - A (points)", classes="side-title")
                yield OptionList(id="diff-classes", compact=True)
            yield ConfusionMatrix(id="diff-matrix")
            with Vertical(id="diff-side"):
                yield Static(id="diff-cursor")
                yield Static(id="diff-legend")
        yield Static(id="diff-empty", classes="empty-note")
        yield Footer()

    def on_mount(self) -> None:
        self._load()
        self.query_one("#diff-classes", OptionList).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "epoch":
            return self.by_epochs
        if action == "toggle_split":
            return not self.by_epochs
        return True

    # -- data -----------------------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            if self.by_epochs:
                self.epochs = self.epochs or default_epochs(self.runs[0])
                self.diff = diff_epochs(self.runs[0], *self.epochs)
            else:
                try:
                    self.diff = diff_runs(self.runs[0], self.runs[1], self.split)
                except MissingEvaluation:
                    if self.split != "test":
                        raise
                    self.split = "val"  # a run stopped before its test: its validation can still be compared
                    self.diff = diff_runs(self.runs[0], self.runs[1], self.split)
            self.error = None
        except DiffError as exc:
            self.diff, self.error = None, str(exc)
        self._show()

    def _show(self) -> None:
        d = self.diff
        body, empty = self.query_one("#diff-body"), self.query_one("#diff-empty", Static)
        body.display, empty.display = d is not None, d is None
        self._title()
        if d is None:
            self.query_one("#diff-note", Static).update("")
            empty.update(Text(f"Cannot compare these evaluations.\n\n{self.error}", style="yellow"))
            return
        note = Text(summary_lines(d)[1])
        note.append("\n")
        note.append(d.check.note, style="yellow" if d.check.weaker else "dim")
        self.query_one("#diff-note", Static).update(note)
        self._fill_classes()
        matrix = self.query_one(ConfusionMatrix)
        matrix.set_data(d.change, d.names, normalise=self.normalise, diverging=True, support=d.support)
        if d.per_class:
            matrix.move_to_classes(d.per_class[0].index, d.per_class[0].index)
        self.query_one("#diff-legend", Static).update(Text.assemble(
            ("■", "#4285e6"), " B better  ", ("■", "#d64541"), " B worse\n",
            ("diagonal: images right; off it: mistakes\nenter: the images that flipped", "dim italic")))
        self._cursor_info(*matrix.cursor_classes())

    def _title(self) -> None:
        t = Text("Diff  ", style="bold")
        d = self.diff
        if d is None:
            t.append("  ".join(r.name for r in self.runs))
            self.query_one("#diff-title", Static).update(t)
            return
        t.append("A ", style="bold")
        t.append(f"{d.a.label} {pct(d.top1_a)}")
        t.append("  →  ", style="dim")
        t.append("B ", style="bold")
        t.append(f"{d.b.label} {pct(d.top1_b)}  ")
        t.append(f"{points(d.top1_b - d.top1_a)} points", style="bold #4285e6" if d.top1_b >= d.top1_a else "bold #d64541")
        self.query_one("#diff-title", Static).update(t)

    def _fill_classes(self) -> None:
        d = self.diff
        options = self.query_one("#diff-classes", OptionList)
        options.clear_options()
        scale = max((abs(c.delta) for c in d.per_class), default=0.0)
        width = 14 if (self.size.width or self.app.size.width) >= 120 else 10
        for c in d.per_class:
            line = Text(f"{short(c.name, width):<{width}} ")
            line.append_text(change_bar(c.delta, scale))
            line.append(f" {points(c.delta):>6}", style="#d64541" if c.delta < 0 else "#4285e6" if c.delta > 0 else "dim")
            options.add_option(Option(line))
        if d.per_class:
            options.highlighted = 0

    def _class_at(self, index: int) -> ClassChange | None:
        d = self.diff
        return d.per_class[index] if d is not None and 0 <= index < len(d.per_class) else None

    def _cursor_info(self, true: int, pred: int) -> None:
        d = self.diff
        if d is None:
            return
        a, b = int(d.confusion_a[true, pred]), int(d.confusion_b[true, pred])
        support = int(d.support[true])
        t = Text()
        t.append("true ", style="dim")
        t.append(d.name(true), style="bold cyan")
        t.append("\npred ", style="dim")
        t.append(d.name(pred), style="bold magenta")
        t.append(f"\nA {a}  B {b}  of {support}   change ")
        better = (b > a) == (true == pred)
        t.append(f"{b - a:+d}", style="dim" if a == b else "#4285e6" if better else "#d64541")
        entered, left = len(d.entered(true, pred)), len(d.left(true, pred))
        if true == pred:
            t.append(f"\naccuracy {pct(a / support if support else None)} → {pct(b / support if support else None)}")
            t.append(f"\n{left} right → wrong\n{entered} wrong → right", style="dim")
        else:
            t.append(f"\n{entered} newly taken for {short(d.name(pred), 14)}", style="dim")
            t.append(f"\n{left} no longer", style="dim")
        self.query_one("#diff-cursor", Static).update(t)

    # -- events ---------------------------------------------------------------------------------------
    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        c = self._class_at(event.option_index)
        if event.option_list.id == "diff-classes" and c is not None:
            self.query_one(ConfusionMatrix).move_to_classes(c.index, c.index)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        c = self._class_at(event.option_index)
        if event.option_list.id == "diff-classes" and c is not None:
            self.open_flips(c.index, c.index)

    def on_confusion_matrix_cursor_moved(self, event: ConfusionMatrix.CursorMoved) -> None:
        self._cursor_info(event.true, event.pred)

    def on_confusion_matrix_cell_selected(self, event: ConfusionMatrix.CellSelected) -> None:
        self.open_flips(event.true, event.pred)

    def open_flips(self, true: int, pred: int) -> None:
        """The drilldown grid with the images of the class (or the cell) that changed between A and B."""
        d = self.diff
        if d is None:
            return
        name, other = d.name(true), d.name(pred)
        entered, left = confident_first(d.entered(true, pred), d.b), confident_first(d.left(true, pred), d.a)
        if true == pred:
            sets = [ImageSet(f"{name}: right in A, wrong in B ({len(left)})", left, d.a.arrays),
                    ImageSet(f"{name}: wrong in A, right in B ({len(entered)})", entered, d.a.arrays)]
        else:
            sets = [ImageSet(f"{name} taken for {other} by B, not by A ({len(entered)})", entered, d.a.arrays),
                    ImageSet(f"{name} taken for {other} by A, not by B ({len(left)})", left, d.a.arrays)]
        if not len(sets[0].indices) and len(sets[1].indices):
            sets.reverse()
        split = d.b.evaluation.split
        thumbs_from = d.b.run if (d.b.run / f"samples_{split}.npz").exists() else d.a.run  # the same images
        self.cifar.show_drilldown(thumbs_from, d.b.evaluation, d.b.arrays, d.names, true, pred, sets=sets)

    # -- actions ----------------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_toggle_normalise(self) -> None:
        self.normalise = not self.normalise
        self.query_one(ConfusionMatrix).set_normalise(self.normalise)

    def action_toggle_split(self) -> None:
        self.split = "val" if self.split == "test" else "test"
        self._load()

    def action_epoch(self, side: int, step: int) -> None:
        if not self.by_epochs or self.epochs is None:
            return
        if self._kept is None:  # read once: each key press then reads only the two evaluations it compares
            self._kept = kept_epochs(self.runs[0])
        kept, epochs = self._kept, list(self.epochs)
        i = kept.index(epochs[side]) if epochs[side] in kept else 0
        epochs[side] = kept[max(0, min(len(kept) - 1, i + step))]
        self.epochs = (epochs[0], epochs[1])
        self._load()

    def action_switch_focus(self) -> None:
        matrix = self.query_one(ConfusionMatrix)
        if matrix.has_focus:
            self.query_one("#diff-classes", OptionList).focus()
        else:
            matrix.focus()
