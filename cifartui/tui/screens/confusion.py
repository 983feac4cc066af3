"""Confusion screen: the matrix of any evaluation (each epoch's validation, the final test), a cursor
whose true and predicted class names are always shown, the ranked most-confused pairs, and Enter to
open the images of a pair."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from cifartui.classes import CIFAR100_SUPERCLASSES, SUPERCLASS_OF, superclass_order
from cifartui.record import metrics
from cifartui.record.events import Evaluation
from cifartui.record.store import StoreError, load_evaluation
from cifartui.tui.formatting import pct, short
from cifartui.tui.rundata import RunData
from cifartui.tui.widgets.confusion_matrix import ConfusionMatrix

if TYPE_CHECKING:
    from cifartui.tui.app import CifarApp

ORDERS = ("index", "accuracy", "superclass")
PAIRS = 40


class ConfusionScreen(Screen):

    BINDINGS = [
        Binding("n", "toggle_normalise", "Count/%"),
        Binding("o", "cycle_order", "Order"),
        Binding("left_square_bracket", "eval_step(-1)", "Prev eval", key_display="["),
        Binding("right_square_bracket", "eval_step(1)", "Next eval", key_display="]"),
        Binding("tab", "switch_focus", "Matrix/pairs", show=False),
        Binding("s", "suspects", "Suspects", tooltip="labels the model doubts (cleanlab); x marks images to leave out"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.normalise = False
        self.order_name = "index"
        self.eval_file: str | None = None
        self.follow_latest = True
        self.arrays: dict[str, np.ndarray] | None = None
        self.pairs: list[metrics.ConfusedPair] = []
        self._data: RunData | None = None
        self._evals_key: tuple = ()
        self._cache: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self._setting_select = False

    @property
    def cifar(self) -> "CifarApp":
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Horizontal(id="conf-top"):
            yield Static(id="conf-title", classes="screen-title")
            yield Select([], id="eval-select", allow_blank=True, prompt="evaluation", compact=True)
        with Horizontal(id="conf-body"):
            yield ConfusionMatrix(id="matrix")
            with Vertical(id="conf-side"):
                yield Static(id="cursor-info")
                yield Label("most confused: true→pred n ⇄reverse", classes="side-title")
                yield OptionList(id="pairs", compact=True)
        yield Static(id="conf-empty", classes="empty-note")
        yield Footer()

    def on_mount(self) -> None:
        self.run_updated(self.cifar.current)
        self.query_one(ConfusionMatrix).focus()

    def on_screen_resume(self) -> None:
        self.run_updated(self.cifar.current)

    # -- data -----------------------------------------------------------------------------------------
    def run_updated(self, data: RunData | None, force: bool = False) -> None:
        if not self.is_mounted:
            return
        if data is not self._data:
            self._data = data
            self.eval_file, self.follow_latest, self._evals_key = None, True, ()
            self._cache.clear()
        evals = list(data.evaluations) if data is not None else []
        key = tuple(e.file for e in evals)
        if key == self._evals_key and not force:
            return
        self._evals_key = key
        select = self.query_one("#eval-select", Select)
        options = [(self._eval_label(e), e.file) for e in self._sorted(evals)]
        self._setting_select = True
        select.set_options(options)
        empty = self.query_one("#conf-empty", Static)
        body = self.query_one("#conf-body")
        if not evals:
            self._setting_select = False
            body.display = False
            empty.display = True
            empty.update("No evaluation yet: the matrix appears after the first epoch's validation."
                         if data is not None else "No run selected: open one from Runs (r).")
            self.query_one("#conf-title", Static).update(Text(f"Confusion  {data.id if data else ''}", style="bold"))
            return
        body.display = True
        empty.display = False
        files = [f for _, f in options]
        if self.eval_file not in files or self.follow_latest:
            self.eval_file = self._default_eval(data)
        select.value = self.eval_file
        self._setting_select = False
        self._load_eval()

    @staticmethod
    def _sorted(evals: list[Evaluation]) -> list[Evaluation]:
        # the test first (the final verdict), then validation epochs newest first
        return sorted(evals, key=lambda e: (e.split != "test", e.split, -int(e.epoch or 0)))

    @staticmethod
    def _default_eval(data: RunData) -> str | None:
        # the record's rule for the evaluation to analyse: the latest test, else the latest validation
        ev = data.record.evaluation()
        return ev.file if ev is not None else None

    def _eval_label(self, e: Evaluation) -> str:
        return f"{e.split} · epoch {e.epoch} · {pct(e.top1)}"

    def _current_eval(self) -> Evaluation | None:
        data = self._data
        if data is None:
            return None
        return next((e for e in data.evaluations if e.file == self.eval_file), None)

    def _load_eval(self) -> None:
        data, ev = self._data, self._current_eval()
        if data is None or ev is None or data.run_dir is None:
            return
        key = (str(data.run_dir), ev.file)
        arrays = self._cache.get(key)
        if arrays is None:
            try:
                arrays = load_evaluation(data.run_dir, ev.file)
            except (OSError, ValueError, KeyError, StoreError) as exc:
                self.notify(f"cannot read {ev.file}: {exc}", severity="error")
                return
            self._cache[key] = arrays
        self.arrays = arrays
        self._apply()

    def _names(self) -> list[str]:
        n = self.arrays["confusion"].shape[0] if self.arrays is not None else 0
        names = self._data.class_names if self._data is not None else []
        if not names and self._data is not None and self._data.run_dir is not None:
            from cifartui.record.store import load_classes

            names = load_classes(self._data.run_dir)
        return [names[i] if i < len(names) else str(i) for i in range(n)]

    def _apply(self) -> None:
        if self.arrays is None:
            return
        conf = self.arrays["confusion"]
        names = self._names()
        order, blocks = self._order(conf, names)
        matrix = self.query_one(ConfusionMatrix)
        first = matrix.n == 0
        matrix.set_data(conf, names, order, normalise=self.normalise, blocks=blocks)
        self.pairs = metrics.most_confused(conf, PAIRS)
        if first and self.pairs:  # start on the most confused pair
            matrix.move_to_classes(self.pairs[0].true, self.pairs[0].pred)
        pairs = self.query_one("#pairs", OptionList)
        pairs.clear_options()
        opts = []
        wide = (self.size.width or self.app.size.width) >= 120
        width = 13 if wide else 9
        for k, p in enumerate(self.pairs, 1):
            line = Text(f"{k:>2} ")
            line.append(short(names[p.true], width), style="bold")
            line.append(" → " if wide else "→")
            line.append(short(names[p.pred], width), style="bold")
            line.append(f" {p.count}", style="yellow")
            if wide:
                line.append(f" {pct(p.share, 0)}", style="yellow")
            line.append(f" ⇄{p.reverse}", style="dim")
            opts.append(Option(line))
        pairs.add_options(opts)
        if not opts:
            pairs.add_option(Option(Text("no confusions: every sample on the diagonal", style="dim"), disabled=True))
        self._title()
        self._cursor_info(*matrix.cursor_classes())

    def _order(self, conf: np.ndarray, names: list[str]) -> tuple[list[int], list[int] | None]:
        n = conf.shape[0]
        if self.order_name == "accuracy":
            ranked = [i for i, _ in metrics.ranked_classes(conf)]
            return ranked + [i for i in range(n) if i not in set(ranked)], None
        if self.order_name == "superclass":
            order = superclass_order(names)
            if order is not None:
                coarse = list(CIFAR100_SUPERCLASSES)
                blocks = [coarse.index(SUPERCLASS_OF[names[i]]) if names[i] in SUPERCLASS_OF else len(coarse) for i in order]
                return order, blocks
        return list(range(n)), None

    def _title(self) -> None:
        ev = self._current_eval()
        data = self._data
        t = Text("Confusion  ", style="bold")
        if data is not None:
            t.append(data.id)
        if ev is not None and self.arrays is not None:
            conf = self.arrays["confusion"]
            t.append(f"  {ev.split} epoch {ev.epoch}: top-1 {pct(metrics.accuracy(conf))}, "
                     f"{int(conf.sum())} images", style="")
        t.append(f"  ·  {'row %' if self.normalise else 'counts'} · order {self.order_name}", style="dim")
        self.query_one("#conf-title", Static).update(t)

    def _cursor_info(self, true: int, pred: int) -> None:
        if self.arrays is None:
            return
        conf = self.arrays["confusion"]
        names = self._names()
        row = conf[true]
        support = int(row.sum())
        count = int(conf[true, pred])
        t = Text()
        t.append("true ", style="dim")
        t.append(f"{names[true]}", style="bold cyan")
        t.append(f" #{true}", style="dim")
        if names[true] in SUPERCLASS_OF:
            t.append(f" ({SUPERCLASS_OF[names[true]]})", style="dim")
        t.append("\npred ", style="dim")
        t.append(f"{names[pred]}", style="bold magenta")
        t.append(f" #{pred}", style="dim")
        if names[pred] in SUPERCLASS_OF:
            t.append(f" ({SUPERCLASS_OF[names[pred]]})", style="dim")
        if true == pred:
            t.append(f"\n{count} of {support} correct ({pct(count / support if support else None)})")
        else:
            t.append(f"\n{count} of {support} {names[true]} → {names[pred]} ({pct(count / support if support else None)})")
            t.append(f"\n{int(conf[pred, true])} {names[pred]} → {names[true]}")
        acc = metrics.per_class_accuracy(conf)[true]
        t.append(f"\n{names[true]} accuracy {pct(acc)}", style="dim")
        t.append("\nenter: images of this cell", style="dim italic")
        self.query_one("#cursor-info", Static).update(t)

    # -- events ---------------------------------------------------------------------------------------
    def on_confusion_matrix_cursor_moved(self, event: ConfusionMatrix.CursorMoved) -> None:
        self._cursor_info(event.true, event.pred)

    def on_confusion_matrix_cell_selected(self, event: ConfusionMatrix.CellSelected) -> None:
        self.open_drilldown(event.true, event.pred)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id == "pairs" and event.option_index < len(self.pairs):
            p = self.pairs[event.option_index]
            self.query_one(ConfusionMatrix).move_to_classes(p.true, p.pred)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "pairs" and event.option_index < len(self.pairs):
            p = self.pairs[event.option_index]
            self.open_drilldown(p.true, p.pred)

    def on_select_changed(self, event: Select.Changed) -> None:
        # programmatic changes arrive later as events too: they carry the value already chosen
        if event.select.id != "eval-select" or event.value is Select.BLANK or str(event.value) == self.eval_file:
            return
        self.eval_file = str(event.value)
        self.follow_latest = False
        self._load_eval()

    def open_drilldown(self, true: int, pred: int) -> None:
        data, ev = self._data, self._current_eval()
        if data is None or ev is None or self.arrays is None or data.run_dir is None:
            return
        self.cifar.show_drilldown(data.run_dir, ev, self.arrays, self._names(), true, pred)

    # -- actions ----------------------------------------------------------------------------------------
    def action_suspects(self) -> None:
        data, ev = self._data, self._current_eval()
        if data is None or data.run_dir is None:
            return
        shown = ev.split if ev is not None and ev.split in ("val", "test") else "test"
        self.cifar.show_suspects(data.run_dir, ("train", shown))  # train first: what data.exclude thins

    def action_toggle_normalise(self) -> None:
        self.normalise = not self.normalise
        self.query_one(ConfusionMatrix).set_normalise(self.normalise)
        self._title()

    def action_cycle_order(self) -> None:
        names = self._names()
        choices = [o for o in ORDERS if o != "superclass" or superclass_order(names) is not None]
        self.order_name = choices[(choices.index(self.order_name) + 1) % len(choices)] if self.order_name in choices else choices[0]
        self._apply()

    def action_eval_step(self, step: int) -> None:
        data = self._data
        if data is None or not data.evaluations:
            return
        files = [e.file for e in self._sorted(data.evaluations)]
        i = files.index(self.eval_file) if self.eval_file in files else 0
        self.eval_file = files[(i + step) % len(files)]
        self.follow_latest = False
        self._setting_select = True
        self.query_one("#eval-select", Select).value = self.eval_file
        self._setting_select = False
        self._load_eval()

    def action_switch_focus(self) -> None:
        matrix = self.query_one(ConfusionMatrix)
        if matrix.has_focus:
            pairs = self.query_one("#pairs", OptionList)
            pairs.focus()
            if pairs.highlighted is None and self.pairs:
                pairs.highlighted = 0
        else:
            matrix.focus()
