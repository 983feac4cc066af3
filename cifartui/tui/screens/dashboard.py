"""Dashboard: curves, progress with ETA and images/s, device line, metrics table, log, findings.

Shows the run the app is training, or any run opened from the Runs screen (followed live when another
process is still writing it). Stop (``x``) ends the live run after the current step and saves last.pt.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from cifartui.tui.rundata import RunData
from cifartui.tui.widgets.curves import Chart, Curves
from cifartui.tui.widgets.run_panels import DeviceLine, EventLog, FindingsPanel, MetricsTable, RunHeader, TrainProgress

if TYPE_CHECKING:
    from cifartui.tui.app import CifarApp

NARROW = 120
BOTTOM_PANES = ("metrics", "log", "findings")


def load_findings(run_dir: Path) -> tuple[list | None, str]:
    """Hook for ``cifartui.analysis.findings(run_dir)`` (numpy-only plain-language findings).

    Returns (findings, note); findings is None when the analysis module or function is missing.
    """
    try:
        from cifartui import analysis  # noqa: PLC0415 - optional, written by another module owner
    except ImportError:
        return None, "findings: cifartui.analysis is not installed yet"
    fn = getattr(analysis, "findings", None)
    if fn is None:
        return None, "findings: cifartui.analysis has no findings(run_dir)"
    try:
        return list(fn(run_dir) or []), ""
    except Exception as exc:  # the panel must never take the dashboard down
        return None, f"findings failed: {type(exc).__name__}: {exc}"


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("x", "stop", "Stop"),
        Binding("p", "cycle_chart", "Chart", tooltip="next chart (narrow terminals show one at a time)"),
        Binding("t", "cycle_pane", "Table/log", tooltip="narrow terminals: metrics table, log or findings"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.chart_index = 0
        self.pane_index = 0
        self._shown: RunData | None = None
        self._findings_for: tuple | None = None

    @property
    def cifar(self) -> "CifarApp":
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield RunHeader(id="run-header", classes="screen-title")
        yield DeviceLine(id="device")
        yield Static(id="run-error", classes="error-box")
        yield Curves(id="curves", min_interval=self.cifar.redraw_interval)
        yield TrainProgress(id="progress")
        with Horizontal(id="dash-bottom"):
            with VerticalScroll(id="metrics-box"):
                yield MetricsTable(id="metrics")
            with Vertical(id="log-box"):
                yield EventLog(id="log")
                yield FindingsPanel(id="findings")
        yield Footer()

    def on_mount(self) -> None:
        self._layout()
        self.run_updated(self.cifar.current, force=True)

    def on_screen_resume(self) -> None:
        self.run_updated(self.cifar.current, force=True)

    def on_resize(self) -> None:
        self._layout()

    # -- layout -------------------------------------------------------------------------------------
    @property
    def narrow(self) -> bool:
        return (self.size.width or self.app.size.width) < NARROW

    def _layout(self) -> None:
        charts = list(self.query(Chart))
        for i, chart in enumerate(charts):
            chart.display = not self.narrow or i == self.chart_index
        pane = BOTTOM_PANES[self.pane_index]
        self.query_one("#metrics-box").display = not self.narrow or pane == "metrics"
        self.query_one("#log-box").display = not self.narrow or pane in ("log", "findings")
        self.query_one("#log").display = not self.narrow or pane == "log"
        self.query_one("#findings").display = not self.narrow or pane == "findings"

    def action_cycle_chart(self) -> None:
        self.chart_index = (self.chart_index + 1) % 3
        self._layout()

    def action_cycle_pane(self) -> None:
        self.pane_index = (self.pane_index + 1) % len(BOTTOM_PANES)
        self._layout()

    # -- data ---------------------------------------------------------------------------------------
    def run_updated(self, data: RunData | None, force: bool = False) -> None:
        """Called by the app when the current run has new events (method call down)."""
        if not self.is_mounted:
            return
        new_run = data is not self._shown
        self._shown = data
        live = self.cifar.is_live(data)
        self.query_one(RunHeader).show(data, following=self.cifar.following is not None, live=live)
        self.query_one(DeviceLine).show(data)
        err = self.query_one("#run-error", Static)
        if data is not None and data.error is not None:
            err.update(Text.assemble(("Training failed: ", "bold"), str(data.error.get("message", "")),
                                     ("\n" + data.error.get("hint", ""), "dim") if data.error.get("hint") else ""))
            err.display = True
        else:
            err.display = False
        self.query_one(Curves).show(data, now=force or new_run)
        self.query_one(TrainProgress).show(data)
        self.query_one(MetricsTable).show(data)
        box = self.query_one("#metrics-box", VerticalScroll)
        box.scroll_end(animate=False)
        self.query_one(EventLog).show(data)
        self._maybe_findings(data)

    def _maybe_findings(self, data: RunData | None) -> None:
        if data is None or data.run_dir is None:
            self.query_one(FindingsPanel).show(None, "findings: appear once the run has a folder")
            return
        key = (str(data.run_dir), len(data.epochs), data.status)
        if key == self._findings_for:
            return
        self._findings_for = key
        self._compute_findings(data.run_dir)

    @work(thread=True, exclusive=True, group="findings")
    def _compute_findings(self, run_dir: Path) -> None:
        findings, note = load_findings(run_dir)
        self.app.call_from_thread(self.query_one(FindingsPanel).show, findings, note)

    # -- actions ------------------------------------------------------------------------------------
    def action_stop(self) -> None:
        data = self.cifar.current
        if self.cifar.is_live(data) and data is not None and data.running:
            self.cifar.stop_training()
        elif data is not None and data.running:
            st = data.started or {}
            self.notify(f"{data.id} is trained by another process (pid {st.get('pid')} on {st.get('host')}); "
                        "stop it there (Ctrl-C, or kill -INT PID): it saves last.pt", severity="warning", timeout=8)
        else:
            self.notify("nothing is training", severity="information")
