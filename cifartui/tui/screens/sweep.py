"""A sweep's runs side by side (what ``guild compare`` shows): best validation accuracy first, one column per
swept key. Enter opens a run on the dashboard. Reads ``cifartui.queue.sweep_table``, the same rows as
``cifartui queue compare SWEEP``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from cifartui.tui.formatting import STATUS_STYLE, fmt_value, pct

if TYPE_CHECKING:
    from cifartui.tui.app import CifarApp


class SweepScreen(Screen):
    BINDINGS = [Binding("escape,backspace", "back", "Back"), Binding("g", "reload", "Reload")]

    def __init__(self, root: Path, sweep: str) -> None:
        super().__init__()
        self.root, self.sweep = root, sweep
        self.rows: list[dict] = []

    def compose(self) -> ComposeResult:
        yield Static(id="sweep-title", classes="screen-title")
        yield DataTable(id="sweep-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.action_reload()
        self.query_one(DataTable).focus()

    def action_reload(self) -> None:
        from cifartui.queue import sweep_table

        self.rows = sweep_table(self.root, self.sweep)
        keys = list(self.rows[0]["values"]) if self.rows else []
        table = self.query_one(DataTable)
        table.clear(columns=True)
        for col in ("run", "status", "best val", "test", *keys):
            table.add_column(col)
        for r in self.rows:
            table.add_row(r["run"] or f"({r['entry']})", Text(r["status"], style=STATUS_STYLE.get(r["status"], "")),
                          pct(r["best_val_acc"]), pct(r["test_acc"]), *(fmt_value(r["values"][k]) for k in keys))
        title = Text("Sweep  ", style="bold")
        title.append(f"{self.sweep}  ·  {len(self.rows)} runs  ·  best validation accuracy first  ·  swept: "
                     f"{', '.join(keys) or '(nothing)'}")
        self.query_one("#sweep-title", Static).update(title)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        row = self.rows[event.cursor_row] if event.cursor_row < len(self.rows) else None
        if row is None or not row["path"] or not Path(row["path"]).is_dir():
            self.notify("this entry has no run yet (pending)", severity="information")
            return
        app: CifarApp = self.app  # type: ignore[assignment]
        app.pop_screen()
        app.open_run(Path(row["path"]), "dashboard")

    def action_back(self) -> None:
        self.app.pop_screen()
