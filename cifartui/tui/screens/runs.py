"""Runs screen: every run under the root, sortable and filterable (the query of ``cifartui runs --filter``),
with status and tags; open (and follow a live one), compare 2-4, resume, fine-tune from a run; tag, note,
archive and delete (``cifartui.tui.runs_meta``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from cifartui.errors import UserError
from cifartui.record.query import filter_runs, parse_query
from cifartui.record.store import RunSummary
from cifartui.tui.formatting import STATUS_STYLE, fmt_value, pct
from cifartui.tui.runs_meta import FILTER_PLACEHOLDER, META_BINDINGS, RunMetaActions, parse_filter

if TYPE_CHECKING:
    from cifartui.tui.app import CifarApp

SORTS = ("date", "best", "name")
COLUMNS = ("", "run", "status", "epochs", "best val", "test", "model", "data", "tags")
# The table holds at most this many rows (the first by the current sort): a DataTable measures every cell it
# holds, so 10,000 rows took seconds to paint. The filter reaches the others.
MAX_ROWS = 1000


class RunsTable(DataTable):
    """The runs table; its enter (open) shows in the footer."""

    BINDINGS = [Binding("enter", "select_cursor", "Open/follow")]


class RunsScreen(RunMetaActions, Screen):
    BINDINGS = [
        Binding("enter", "open", "Open/follow", show=False),
        Binding("c", "open_confusion", "Confusion"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("o", "cycle_sort", "Sort", show=False),  # headers sort on click too; ? lists it
        Binding("space", "mark", "Mark"),
        Binding("m", "compare", "Compare"),
        Binding("D", "diff", "Diff", key_display="D",
                tooltip="two marked runs (the first marked is A), or the highlighted run's epochs: what changed"),
        Binding("R", "resume", "Resume", key_display="R"),
        Binding("F", "fine_tune", "Fine-tune", key_display="F", show=False),  # the footer keeps room for ? and q
        Binding("w", "sweep", "Sweep", show=False, tooltip="the highlighted run's sweep: its runs side by side"),
        Binding("g", "reload", "Reload", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        *META_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sort = "date"
        self.descending = True
        self.filter_text = ""
        self.run_query = parse_query("")  # the filter applied: the last text typed that parsed
        self.show_archived = False
        self._rows: dict[str, tuple] = {}  # the table's cells by run id, as last put
        # (query, ids it matched): a cfg filter's matches, worked out with the listing on the reload thread (it
        # reads the root's config cache), so sorting, marking or A on the UI thread read no config again
        self._cfg_matches: tuple[Any, set[str]] | None = None
        self._loading = False  # a reload thread is at work: the timer starts no second one
        self._fresh = True  # listed by on_mount, not left since: the resumes of the first show list nothing again
        self.marked: list[str] = []
        self.runs: list[RunSummary] = []
        self.shown: list[RunSummary] = []
        self.entries: list = []  # queue entries (cifartui.queue.Entry)

    @property
    def cifar(self) -> "CifarApp":
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(id="runs-title", classes="screen-title")
        yield Input(placeholder=FILTER_PLACEHOLDER, id="runs-filter", compact=True)
        yield Static(id="runs-filter-note", classes="error-text")
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

    def on_screen_suspend(self) -> None:
        self._fresh = False

    def on_screen_resume(self) -> None:
        # Textual sends two as a mode is first shown, right after on_mount listed the runs (on the UI thread, so
        # that the first frame has the table): only a return to this screen lists them again.
        if not self._fresh:
            self._start_reload()  # off the UI thread: back on this screen at once

    def _auto_reload(self) -> None:
        if self.app.screen is self:
            self._start_reload()

    def _start_reload(self) -> None:
        if not self._loading:  # one at a time: a slow listing never piles up threads
            self._loading = True
            self._load_in_background()

    @work(thread=True, group="runs-reload")
    def _load_in_background(self) -> None:
        """The periodic reload, off the UI thread, one at a time; unchanged ended runs are not read again (the
        listing cache) and the table changes only where a run changed. A cfg filter term reads new configs here
        too (into the root's config cache)."""
        from cifartui.queue import list_entries

        try:
            runs, entries = self.cifar.list_runs(), list_entries(self.cifar.root)
            query, matches = self.run_query, None
            if query.needs_config:
                matches = (query, {r.id for r in filter_runs(runs, query)})
            self.app.call_from_thread(self._loaded, runs, entries, matches)
        except RuntimeError:  # the app is closing
            pass
        finally:
            self._loading = False

    def _loaded(self, runs: list[RunSummary], entries: list, matches: tuple | None = None) -> None:
        if not self.is_attached:
            return
        self.runs, self.entries = runs, entries
        if matches is not None:
            self._cfg_matches = matches
        self._fill()
        self._show_queue()

    # -- data -----------------------------------------------------------------------------------------
    def reload(self) -> None:
        """The same as a background reload, at once on the UI thread (after a change made here)."""
        from cifartui.queue import list_entries

        self._cfg_matches = None  # a cfg filter is worked out again for this listing
        self._loaded(self.cifar.list_runs(), list_entries(self.cifar.root))

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
        visible = self.runs if self.show_archived else [r for r in self.runs if not r.archived]
        shown = self._filtered(visible)
        matched = len(shown)
        if self.sort == "date":
            shown.sort(key=lambda r: r.id, reverse=self.descending)
        elif self.sort == "best":
            shown.sort(key=lambda r: (r.best_val_acc is not None, r.best_val_acc or 0.0), reverse=self.descending)
        else:
            shown.sort(key=lambda r: (r.name, r.id), reverse=self.descending)
        shown.sort(key=lambda r: r.status != "running")  # live runs on top, whatever the sort (a stable sort)
        self.shown = shown = shown[:MAX_ROWS]
        self._put_rows(table, {r.id: self._row(r) for r in shown})
        if keep is not None and keep in [r.id for r in shown]:
            table.move_cursor(row=[r.id for r in shown].index(keep), animate=False)
        arrow = "↓" if self.descending else "↑"
        t = Text("Runs  ", style="bold")
        t.append(f"{self.cifar.root}  ·  {matched} of {len(self.runs)}  ·  sorted by {self.sort} {arrow}")
        if matched > len(shown):
            t.append(f"  ·  the first {len(shown):,} shown (filter for the others)", style="yellow")
        hidden = len(self.runs) - len(visible)
        if hidden:
            t.append(f"  ·  {hidden} archived hidden (A shows)", style="dim")
        elif self.show_archived:
            t.append("  ·  archived shown (A hides)", style="dim")
        if self.filter_text:
            t.append(f"  ·  filter '{self.filter_text}'", style="yellow")
        if self.marked:
            t.append(f"  ·  marked {len(self.marked)} (m compares, D diffs two)", style="#e8c547")
        self.query_one("#runs-title", Static).update(t)
        self._detail()
        empty = self.query_one("#runs-empty", Static)
        empty.display = not shown
        if not self.runs:
            empty.update(f"No runs under {self.cifar.root} yet: press e for the Config screen, then s to train.")
        elif not shown:
            empty.update("No run matches the filter (escape clears it).")

    def _filtered(self, runs: list[RunSummary]) -> list[RunSummary]:
        query, matches = self.run_query, self._cfg_matches
        if query.needs_config and matches is not None and matches[0] is query:
            return [r for r in runs if r.id in matches[1]]
        return filter_runs(runs, query)

    def _row(self, r: RunSummary) -> tuple:
        mark = Text("✓", style="bold #e8c547") if r.id in self.marked else ""
        run = Text(r.id, style="dim italic") if r.archived else r.id
        return (mark, run, Text(r.status, style=STATUS_STYLE.get(r.status, "")), f"{r.epochs_done}/{r.epochs}",
                pct(r.best_val_acc), pct(r.test_acc), r.model, r.dataset, ",".join(r.tags))

    def _put_rows(self, table: DataTable, rows: dict[str, tuple]) -> None:
        """The same runs in the same order: only the cells that changed are updated (a live run's figures every
        few seconds), so the cursor and the scroll stay; otherwise the table is filled again."""
        before = self._rows
        if list(rows) == list(before):
            for rid, cells in rows.items():
                for col, old, new in zip(COLUMNS, before[rid], cells):
                    if old != new:
                        table.update_cell(rid, col or "mark", new)
        else:
            table.clear()
            for rid, cells in rows.items():
                table.add_row(*cells, key=rid)
        self._rows = rows

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
        if r.archived:
            t.append("  (archived)", style="dim")
        if r.reason:
            t.append(f"\n{r.status}: {r.reason}", style=STATUS_STYLE.get(r.status, ""))
        if r.tags or r.note:
            t.append("\n")
            t.append(f"tags {', '.join(r.tags)}  " if r.tags else "", style="#e8c547")
            t.append(f"note {' '.join(r.note.splitlines())}" if r.note else "", style="italic")
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
            self._set_filter(event.value.strip(), submitted=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "runs-filter" and self._set_filter(event.value.strip(), submitted=True):
            self.query_one(DataTable).focus()

    def _set_filter(self, text: str, submitted: bool) -> bool:
        """Apply the query as typed; a bad term is named under the field (the last good filter stays). cfg terms
        read every run's config the first time: they apply on enter, read off the UI thread."""
        note = self.query_one("#runs-filter-note", Static)
        try:
            query = parse_filter(text)
        except UserError as exc:
            note.update(str(exc).splitlines()[0])
            note.display = True
            return False
        if query.needs_config and not submitted:
            note.update("enter applies the cfg terms")
            note.display = True
            return False
        note.display = False
        self.filter_text, self.run_query = text, query
        if query.needs_config:
            self._start_reload()
        else:
            self._fill()
        return True

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
        self.filter_text, self.run_query = "", parse_query("")
        self.query_one("#runs-filter-note", Static).display = False
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

    def action_diff(self) -> None:
        """Two marked runs (A: marked first); one marked and another highlighted; else the highlighted run's epochs."""
        by_id = {r.id: r for r in self.runs}
        marked = [by_id[m] for m in self.marked if m in by_id]
        here = self._highlighted()
        if len(marked) > 2:
            self.notify("D compares two runs: unmark all but two (the first marked is A, the baseline)",
                        severity="warning")
            return
        if len(marked) == 1 and here is not None and here.id != marked[0].id:
            marked.append(here)
        if len(marked) == 2:
            self.cifar.show_diff([Path(marked[0].path), Path(marked[1].path)])
        elif here is not None:
            self.cifar.show_diff([Path(here.path)])

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
