"""Compare 2-4 runs: curves overlaid, a summary, and the config keys where they differ."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from cifartui import config as config_mod
from cifartui.config import ConfigError
from cifartui.record.store import EventFollower, read_run
from cifartui.tui.formatting import STATUS_STYLE, fmt_value, pct
from cifartui.tui.rundata import RunData
from cifartui.tui.widgets.config_form import get_dotted
from cifartui.tui.widgets.curves import RUN_COLORS, CompareCurves


def config_differences(configs: list[config_mod.Config | None]) -> list[tuple[str, list[str]]]:
    """Dotted keys whose values are not the same in every run, with each run's value."""
    present = [c for c in configs if c is not None]
    if len(present) < 2:
        return []
    keys: list[str] = []
    for other in present[1:]:
        for key, _a, _b in config_mod.diff(present[0], other):
            if key not in keys:
                keys.append(key)
    dumps = [c.model_dump(mode="json") if c is not None else None for c in configs]
    return [(k, [fmt_value(get_dotted(d, k)) if d is not None else "?" for d in dumps]) for k in keys]


class CompareScreen(Screen):
    BINDINGS = [Binding("escape,backspace", "back", "Back")]

    def __init__(self, run_dirs: list[Path]) -> None:
        super().__init__()
        self.run_dirs = run_dirs

    def compose(self) -> ComposeResult:
        yield Static(id="cmp-title", classes="screen-title")
        yield CompareCurves(id="cmp-curves")
        with Horizontal(id="cmp-bottom"):
            with VerticalScroll(id="cmp-summary-box"):
                yield Static(id="cmp-summary")
            with VerticalScroll(id="cmp-diff-box"):
                yield Static(id="cmp-diff")
        yield Footer()

    def on_mount(self) -> None:
        runs, summaries, configs = [], [], []
        for path in self.run_dirs:
            data = RunData(path)
            data.apply_all(EventFollower(path).poll())
            runs.append((path.name, data))
            summaries.append(read_run(path))
            try:
                configs.append(config_mod.load(path / "config.yaml"))
            except ConfigError:
                configs.append(None)
        self.query_one("#cmp-title", Static).update(Text(f"Compare {len(runs)} runs", style="bold"))
        labels = [f"{i + 1}" for i in range(len(runs))]
        self.query_one(CompareCurves).show([(f"{lab} {_short_id(name)}", d) for lab, (name, d) in zip(labels, runs)])

        table = Table(box=None, padding=(0, 1), header_style="bold", expand=True)
        for col in ("#", "run", "status", "epochs", "best val", "test"):
            table.add_column(col, no_wrap=True, overflow="ellipsis", min_width=12 if col == "run" else None)
        for i, s in enumerate(summaries):
            table.add_row(Text(labels[i], style=f"bold {RUN_COLORS[i]}"), s.id, Text(s.status, style=STATUS_STYLE.get(s.status, "")),
                          f"{s.epochs_done}/{s.epochs}", pct(s.best_val_acc), pct(s.test_acc))
        self.query_one("#cmp-summary", Static).update(table)

        diffs = config_differences(configs)
        if not diffs:
            self.query_one("#cmp-diff", Static).update(Text("the configs are the same", style="dim"))
            return
        dt = Table(title="config differences", title_justify="left", box=None, padding=(0, 1), header_style="bold")
        dt.add_column("field", style="cyan", no_wrap=True)
        for i in range(len(runs)):
            dt.add_column(Text(labels[i], style=f"bold {RUN_COLORS[i]}"))
        for key, values in diffs:
            dt.add_row(key, *values)
        self.query_one("#cmp-diff", Static).update(dt)

    def action_back(self) -> None:
        self.app.pop_screen()


def _short_id(run_id: str) -> str:
    """``20250601-101500-cifar100-resnet34`` -> ``cifar100-resnet34`` (the date is in the table)."""
    parts = run_id.split("-", 2)
    return parts[2][:24] if len(parts) == 3 and parts[0].isdigit() else run_id[-24:]
