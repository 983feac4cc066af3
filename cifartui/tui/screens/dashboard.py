"""Dashboard: curves, progress with ETA and images/s, device line, metrics table, log, findings.

Shows the run the app is training, or any run opened from the Runs screen (followed live when another
process is still writing it). Stop (``x``) ends the live run after the current step and saves last.pt.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from cifartui.tui.gpuwatch import GpuView, GpuWatch
from cifartui.tui.rundata import RunData
from cifartui.tui.widgets.curves import Chart, Curves
from cifartui.tui.widgets.gpu_panel import GpuPanel
from cifartui.tui.widgets.run_panels import DeviceLine, EventLog, FindingsPanel, MetricsTable, RunHeader, TrainProgress

if TYPE_CHECKING:
    from cifartui.tui.app import CifarApp

NARROW = 120
GPU_INTERVAL = 2.0  # seconds between NVML reads while a run trains (NVML's utilisation is a ~1 s average)
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
        self._dirty = False
        self._applied_at = 0.0
        self._keys: dict[str, object] = {}
        self._gpu = GpuWatch()
        self._gpu_polled = 0.0
        self._gpu_busy = False

    @property
    def cifar(self) -> "CifarApp":
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield RunHeader(id="run-header", classes="screen-title")
        yield DeviceLine(id="device")
        yield GpuPanel(id="gpu")
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
        """Called by the app when the current run has new events (method call down).

        While a run trains, panels are refreshed at most every ``panel_interval`` seconds (the app's) and
        each only when what it shows changed: the UI thread stays mostly idle, so the training thread keeps the
        CPU (and the GIL) to itself. A new run, a finished run or ``force`` refresh at once.
        """
        if not self.is_mounted:
            return
        new_run = data is not self._shown
        self._shown = data
        if force or new_run or data is None or not data.running:
            self._apply(force=force or new_run)
        else:
            self._dirty = True

    def heartbeat(self) -> None:
        """Called by the app's heartbeat: refresh what changed, at most every ``panel_interval`` seconds."""
        curves = self.query(Curves)
        if not self.is_mounted or not curves:  # the timer may fire while this screen is built or torn down
            return
        if self._dirty and time.monotonic() - self._applied_at >= self.cifar.panel_interval:
            self._apply()
        curves.first().tick()
        self._maybe_poll_gpu()

    # -- the GPU panel: NVML on a worker thread, every GPU_INTERVAL s while the run in view runs -----------
    def _maybe_poll_gpu(self) -> None:
        data = self._shown
        if data is None or not data.running or data.started is None or self._gpu_busy:
            return
        if time.monotonic() - self._gpu_polled < GPU_INTERVAL:
            return
        self._gpu_polled, self._gpu_busy = time.monotonic(), True
        self._poll_gpu(data, data.started, training=data.last_step is not None and not data.phase)

    @work(thread=True, exclusive=True, group="gpu", exit_on_error=False)  # a panel never takes the app down
    def _poll_gpu(self, data: RunData, started, training: bool) -> None:
        try:
            view = self._gpu.poll(started, training)
        finally:
            self._gpu_busy = False
        self.app.call_from_thread(self._show_gpu, data, view)

    def _show_gpu(self, data: RunData, view: GpuView | None) -> None:
        if data is self._shown and data.running and self.is_mounted:  # not a reading of a run no longer in view
            self.query_one(GpuPanel).show(view)

    def _changed(self, panel: str, key: object, force: bool) -> bool:
        if not force and self._keys.get(panel) == key:
            return False
        self._keys[panel] = key
        return True

    def _apply(self, force: bool = False) -> None:
        self._dirty = False
        self._applied_at = time.monotonic()
        data = self._shown
        live = self.cifar.is_live(data)
        following = self.cifar.following is not None
        d = data
        other = self.cifar.live
        elsewhere = other.data.id if other is not None and not other.finished and not live else ""
        if self._changed("header", (id(d), d and d.status, d and d.phase, d and d.id, following, live, elsewhere), force):
            self.query_one(RunHeader).show(data, following=following, live=live, elsewhere=elsewhere)
        gpu = round(d.gpu_mem_mb or 0, -1) if d else 0
        if self._changed("device", (id(d), d and bool(d.started), d and len(d.epochs), gpu), force):
            self.query_one(DeviceLine).show(data)
        if d is None or not d.running:
            if self._changed("gpu", (id(d), d and d.status), force):  # an ended run: the peaks it recorded, if any
                self.query_one(GpuPanel).show(None, d.ended.gpu_peak if d is not None and d.ended is not None else None)
        elif self._changed("gpu", id(d), False):  # another run in view: its own figures come with the next poll
            self.query_one(GpuPanel).show(None)
        if self._changed("error", (id(d), d and d.error is not None), force):
            err = self.query_one("#run-error", Static)
            if data is not None and data.error is not None:
                hint = data.error.get("hint")
                err.update(Text.assemble(("Training failed: ", "bold"), str(data.error.get("message", "")),
                                         ("\n" + hint, "dim") if hint else ""))
                err.display = True
            else:
                err.display = False
        self.query_one(Curves).show(data, now=force)
        if self._changed("progress", (id(d), d and d.last_step and d.last_step.step, d and len(d.epochs),
                                      d and d.status, d and d.task), force):
            self.query_one(TrainProgress).show(data)
        if self._changed("metrics", (id(d), d and len(d.epochs), d and len(d.evaluations), d and d.status), force):
            self.query_one(MetricsTable).show(data)
            self.query_one("#metrics-box", VerticalScroll).scroll_end(animate=False)
        if self._changed("log", (id(d), d and len(d.logs), d and d.logs and id(d.logs[-1])), force):
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
        elif data is not None and data.running and data.run_dir is not None:
            self._confirm_remote_stop(data)
        else:
            self.notify("nothing is training", severity="information")

    def _confirm_remote_stop(self, data: RunData) -> None:
        """A run another process trains (headless, detached, a queue worker, torchrun, another host): ask it to
        stop through a file in its folder, which its trainer reads at each log interval."""
        from cifartui.record.control import request_stop
        from cifartui.tui.screens.dialogs import ConfirmScreen

        st = data.started
        run_dir = data.run_dir

        def answered(choice: str | None) -> None:
            if choice != "stop" or run_dir is None:
                return
            try:
                request_stop(run_dir)
            except OSError as exc:
                self.notify(f"cannot write the stop request in {run_dir}: {exc}", severity="error", timeout=10)
                return
            data.phase = "stop requested: the trainer stops at its next log interval and saves last.pt"
            self.notify(f"stop requested for {data.id}", timeout=6)
            self.run_updated(data, force=True)

        self.app.push_screen(ConfirmScreen(
            "Stop this run?",
            f"{data.id} is trained by pid {st.pid if st else None} on {st.host if st else None}.\n"
            "y: stop it after its current log interval; it saves last.pt and ends stopped (resume later).",
            [("stop", "Stop it (y)"), ("cancel", "Cancel")], keys={"y": "stop", "n": "cancel"}), answered)
