"""Runs screen: every run under the root, sortable and filterable, with status; open (and follow a
live one), compare 2-4, resume, fine-tune from a run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from cifartui.record.store import RunSummary, list_runs
from cifartui.tui.formatting import STATUS_STYLE, fmt_value, pct

if TYPE_CHECKING:
    from cifartui.tui.app import CifarApp

SORTS = ("date", "best", "name")
COLUMNS = ("", "run", "status", "epochs", "best val", "test", "model", "data")


class RunsTable(DataTable):
    """The runs table; its enter (open) shows in the footer."""

    BINDINGS = [Binding("enter", "select_cursor", "Open/follow")]


class RunsScreen(Screen):
    BINDINGS = [
        Binding("enter", "open", "Open/follow", show=False),
        Binding("c", "open_confusion", "Confusion"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("o", "cycle_sort", "Sort"),
        Binding("space", "mark", "Mark"),
        Binding("m", "compare", "Compare"),
        Binding("R", "resume", "Resume", key_display="R"),
        Binding("F", "fine_tune", "Fine-tune", key_display="F"),
        Binding("w", "sweep", "Sweep", tooltip="the highlighted run's sweep: its runs side by side"),
        Binding("g", "reload", "Reload", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sort = "date"
        self.descending = True
        self.filter_text = ""
        self.marked: list[str] = []
        self.runs: list[RunSummary] = []
        self.shown: list[RunSummary] = []
        self.entries: list = []  # queue entries (cifartui.queue.Entry)

    @property
    def cifar(self) -> "CifarApp":
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(id="runs-title", classes="screen-title")
        yield Input(placeholder="filter: text in id, name, model, data or status (/ to focus, escape clears)",
                    id="runs-filter", compact=True)
        yield RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="runs-empty", classes="empty-note")
        yield Static(id="runs-detail")
        yield Static(id="runs-queue")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for col in COLUMNS:
            table.add_column(col, key=col or "mark")
        self.reload()
        table.focus()
        self.set_interval(self.cifar.runs_refresh_interval, self._auto_reload)

    def on_screen_resume(self) -> None:
        self.reload()

    def _auto_reload(self) -> None:
        if self.app.screen is self:
            self.reload()

    # -- data -----------------------------------------------------------------------------------------
    def reload(self) -> None:
        from cifartui.queue import list_entries

        self.runs = list_runs(self.cifar.root)
        self.entries = list_entries(self.cifar.root)
        self._fill()
        self._show_queue()

    def _show_queue(self) -> None:
        """Pending and running queue entries under the table (runs not started yet have no row there)."""
        active = [e for e in self.entries if e.state in ("pending", "running")]
        box = self.query_one("#runs-queue", Static)
        box.display = bool(active)
        if not active:
            return
        t = Text(f"Queue: {sum(e.state == 'running' for e in active)} running, "
                 f"{sum(e.state == 'pending' for e in active)} pending", style="bold")
        for e in active[:6]:
            values = " ".join(f"{k}={fmt_value(v)}" for k, v in e.overrides.items())
            t.append(f"\n  {e.id}  ")
            t.append(f"{e.state:<8}", style=STATUS_STYLE.get("running" if e.state == "running" else "", "dim"))
            t.append(f" {e.name}  {values}")
        if len(active) > 6:
            t.append(f"\n  ... {len(active) - 6} more: cifartui queue --root {self.cifar.root}", style="dim")
        box.update(t)

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        keep = self._highlighted_id()
        q = self.filter_text.lower()
        shown = [r for r in self.runs if not q or any(q in str(v).lower() for v in (r.id, r.name, r.model, r.dataset, r.status))]
        if self.sort == "date":
            shown.sort(key=lambda r: r.id, reverse=self.descending)
        elif self.sort == "best":
            shown.sort(key=lambda r: (r.best_val_acc is not None, r.best_val_acc or 0.0), reverse=self.descending)
        else:
            shown.sort(key=lambda r: (r.name, r.id), reverse=self.descending)
        shown.sort(key=lambda r: r.status != "running")  # live runs on top, whatever the sort (a stable sort)
        self.shown = shown
        table.clear()
        for r in shown:
            mark = Text("✓", style="bold #e8c547") if r.id in self.marked else ""
            table.add_row(mark, r.id, Text(r.status, style=STATUS_STYLE.get(r.status, "")),
                          f"{r.epochs_done}/{r.epochs}", pct(r.best_val_acc), pct(r.test_acc), r.model, r.dataset, key=r.id)
        if keep is not None and keep in [r.id for r in shown]:
            table.move_cursor(row=[r.id for r in shown].index(keep), animate=False)
        arrow = "↓" if self.descending else "↑"
        t = Text("Runs  ", style="bold")
        t.append(f"{self.cifar.root}  ·  {len(shown)} of {len(self.runs)}  ·  sorted by {self.sort} {arrow}")
        if self.filter_text:
            t.append(f"  ·  filter '{self.filter_text}'", style="yellow")
        if self.marked:
            t.append(f"  ·  marked {len(self.marked)} (m compares)", style="#e8c547")
        self.query_one("#runs-title", Static).update(t)
        self._detail()
        empty = self.query_one("#runs-empty", Static)
        empty.display = not shown
        if not self.runs:
            empty.update(f"No runs under {self.cifar.root} yet: press e for the Config screen, then s to train.")
        elif not shown:
            empty.update("No run matches the filter (escape clears it).")

    def _highlighted_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.shown or table.cursor_row is None or table.cursor_row >= len(self.shown):
            return None
        return self.shown[table.cursor_row].id

    def _highlighted(self) -> RunSummary | None:
        rid = self._highlighted_id()
        return next((r for r in self.shown if r.id == rid), None)

    # -- events ---------------------------------------------------------------------------------------
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    def _detail(self) -> None:
        r = self._highlighted()
        box = self.query_one("#runs-detail", Static)
        if r is None:
            box.update("")
            return
        t = Text()
        t.append(r.path, style="bold")
        t.append(f"  {r.model} on {r.dataset}, epochs {r.epochs_done}/{r.epochs}")
        if r.best_epoch:
            t.append(f", best val {pct(r.best_val_acc)} at epoch {r.best_epoch}")
        if r.world_size > 1:
            t.append(f", {r.world_size} processes")
        if r.reason:
            t.append(f"\n{r.status}: {r.reason}", style=STATUS_STYLE.get(r.status, ""))
        box.update(t)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = {"run": "date", "best val": "best", "status": "name"}.get(str(event.column_key.value), None)
        if event.column_key.value == "run":
            key = "date"
        if key is None:
            return
        if key == self.sort:
            self.descending = not self.descending
        else:
            self.sort, self.descending = key, True
        self._fill()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "runs-filter":
            self.filter_text = event.value.strip()
            self._fill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "runs-filter":
            self.query_one(DataTable).focus()

    # -- actions ----------------------------------------------------------------------------------------
    def action_open(self) -> None:
        r = self._highlighted()
        if r is not None:
            self.cifar.open_run(Path(r.path), "dashboard")

    def action_open_confusion(self) -> None:
        r = self._highlighted()
        if r is not None:
            self.cifar.open_run(Path(r.path), "confusion")

    def action_filter(self) -> None:
        self.query_one("#runs-filter", Input).focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#runs-filter", Input)
        field.value = ""
        self.filter_text = ""
        self._fill()
        self.query_one(DataTable).focus()

    def action_cycle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.descending = self.sort != "name"
        self._fill()

    def action_reload(self) -> None:
        self.reload()

    def action_mark(self) -> None:
        r = self._highlighted()
        if r is None:
            return
        if r.id in self.marked:
            self.marked.remove(r.id)
        elif len(self.marked) >= 4:
            self.notify("compare takes 2 to 4 runs: unmark one first", severity="warning")
            return
        else:
            self.marked.append(r.id)
        row = self.query_one(DataTable).cursor_row
        self._fill()
        self.query_one(DataTable).move_cursor(row=min(row + 1, len(self.shown) - 1), animate=False)

    def action_compare(self) -> None:
        chosen = [r for r in self.runs if r.id in self.marked]
        if len(chosen) < 2:
            self.notify("mark 2 to 4 runs with space, then press m", severity="warning")
            return
        self.cifar.show_compare([Path(r.path) for r in chosen])

    def action_sweep(self) -> None:
        r = self._highlighted()
        entry = next((e for e in self.entries if r is not None and e.run and Path(e.run).name == r.id), None)
        if entry is None or not entry.swept:
            self.notify("the highlighted run is not part of a sweep (cifartui queue add ... --sweep, or a on the "
                        "Config screen)", severity="information")
            return
        self.cifar.show_sweep(entry.sweep)

    def action_resume(self) -> None:
        r = self._highlighted()
        if r is None:
            return
        if r.status == "running":
            self.notify(f"{r.id} is still running", severity="warning")
            return
        if not (Path(r.path) / "last.pt").exists():
            self.notify(f"{r.id} has no last.pt (it ended before its first save): start a new run instead",
                        severity="error")
            return
        self.cifar.load_run_config(Path(r.path), resume=True)

    def action_fine_tune(self) -> None:
        r = self._highlighted()
        if r is None:
            return
        if not (Path(r.path) / "best.pt").exists():
            self.notify(f"{r.id} has no best.pt yet: nothing to fine-tune from", severity="error")
            return
        self.cifar.load_run_config(Path(r.path), fine_tune=True)
