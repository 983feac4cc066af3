"""Training curves with plotext: loss, accuracy, learning rate.

Redraws are throttled: new data only marks the charts dirty, and the dashboard's tick (driven by the app's
heartbeat) redraws them at most once per ``min_interval`` seconds, so a fast trainer never waits on chart
rendering. Long series (many steps) are reduced to about one point per column (bucket means) before plotting.

Each chart is drawn from plotext's character matrix straight into strips (``plot_strips``): three charts
of 53x24 cost the UI thread ~20 ms a redraw here instead of ~55 ms through plotext's ANSI string.

While a run trains, step-by-step changes are also held to a time budget: every millisecond the UI thread
spends holds the GIL and a core the training thread may want. The charts redraw no more often than
``CHART_BUDGET`` of the time allows for what their last drawing cost (``Chart.render_seconds``: all of it,
plotext, strips and Textual's styling of the lines). A finished epoch, a new evaluation or a change of
status redraws at ``min_interval`` as before.
"""

from __future__ import annotations

import time
from typing import Iterable

from textual.containers import Horizontal
from textual.geometry import Region
from textual.strip import Strip
from textual_plotext import PlotextPlot

from cifartui.tui.rundata import RunData, downsample
from cifartui.tui.widgets.plot_strips import figure_strips

CHARTS = ("loss", "accuracy", "lr")
CHART_BUDGET = 0.005  # share of the time the charts may take while a run trains step by step
RUN_COLORS = ("cyan", "orange", "green", "magenta", "yellow", "red")


class Chart(PlotextPlot):
    """One plotext chart; ``series`` is a list of (label, xs, ys, color)."""

    def __init__(self, title: str, *, id: str | None = None, classes: str | None = None, ylog: bool = False) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.ylog = ylog
        self.series: list[tuple[str, list[float], list[float], str]] = []
        self.draws = 0
        self.render_seconds = 0.0  # what the last drawing cost the UI thread (plotext + strips + Textual's styling)
        self._strips: list[Strip] = []
        self._strips_key: tuple | None = None
        self._rebuilt = False

    def render_lines(self, crop: Region) -> list[Strip]:
        start = time.perf_counter()
        lines = super().render_lines(crop)
        if self._rebuilt:
            self._rebuilt = False
            self.render_seconds = time.perf_counter() - start
        return lines

    def render_line(self, y: int) -> Strip:
        """One line of the chart: the plotext matrix straight to strips (``plot_strips``), cached per drawing."""
        width, height = self.size
        base = self.visual_style.rich_style
        key = (self.draws, width, height, self.app.theme, self.theme, base)
        if key != self._strips_key:
            plt = self.plt
            plt.plotsize(width, height)  # as PlotextPlot.render does before plotext's build
            plt._set_size(width, height)
            plt.theme(self._get_plotext_theme_name(self.app.theme))
            self._strips = figure_strips(plt, width, height, base)
            self._strips_key = key
            self._rebuilt = True
        return self._strips[y] if 0 <= y < len(self._strips) else Strip.blank(width, base)

    @property
    def points(self) -> int:
        """How many points a series needs at most: about one per column."""
        return max(10, self.size.width or 40)

    def draw(self, series: Iterable[tuple[str, list[float], list[float], str]], xmax: float | None = None) -> None:
        self.series = list(series)
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        width = self.points
        # a short chart has no room for a legend over the data: name the colours in the title instead
        small = 0 < self.size.height < 14
        shown = [(label, color) for label, xs, _, color in self.series if xs]
        if small and shown:
            plt.title(f"{self.title}: " + ", ".join(f"{label} {color}" for label, color in shown))
        else:
            plt.title(self.title)
        any_data = False
        for label, xs, ys, color in self.series:
            if not xs:
                continue
            xs, ys = downsample(xs, ys, width)
            kwargs = {} if small else {"label": label}
            if len(xs) == 1:
                plt.scatter(xs, ys, color=color, marker="dot", **kwargs)
            else:
                plt.plot(xs, ys, color=color, marker="braille", **kwargs)
            any_data = True
        if not any_data:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
        elif xmax:
            plt.xlim(0, xmax)
        if self.ylog and any_data:
            plt.yscale("log")
        plt.xlabel("epoch")
        self.draws += 1
        self.refresh()


class Curves(Horizontal):
    """Loss, accuracy and lr charts of one run, redrawn at most once per ``min_interval``."""

    def __init__(self, *, id: str | None = None, classes: str | None = None, min_interval: float = 1.0) -> None:
        super().__init__(id=id, classes=classes)
        self.min_interval = min_interval
        self._data: RunData | None = None
        self._dirty = False
        self._last = 0.0
        self._drawn_version = -1
        self._drawn_milestone: tuple | None = None

    def compose(self):
        yield Chart("loss", id="chart-loss")
        yield Chart("accuracy", id="chart-accuracy")
        yield Chart("learning rate", id="chart-lr")

    def show(self, data: RunData | None, now: bool = False) -> None:
        self._data = data
        self._dirty = True
        if now:
            self._redraw()

    def tick(self) -> None:
        """Redraw if new data waits and the interval allows (the dashboard calls this on the app's heartbeat)."""
        if not self._dirty:
            return
        if self._data is not None and self._data.version == self._drawn_version:
            self._dirty = False  # nothing new since the last drawing
            return
        if time.monotonic() - self._last >= self.interval():
            self._redraw()

    def cost(self) -> float:
        """Seconds of UI thread the last drawing of the charts on screen took (``Chart.render_seconds``)."""
        return sum(chart.render_seconds for chart in self.query(Chart) if chart.display)

    def interval(self) -> float:
        """Seconds to wait since the last drawing: ``min_interval``, or longer while only steps came in."""
        d = self._data
        if d is None or not d.running or _milestone(d) != self._drawn_milestone:
            return self.min_interval
        return max(self.min_interval, self.cost() / CHART_BUDGET)

    def on_resize(self) -> None:
        if self._data is not None:  # the legend depends on the height
            self.call_after_refresh(self._redraw)

    def _redraw(self) -> None:
        self._dirty = False
        self._last = time.monotonic()
        d = self._data
        self._drawn_milestone = _milestone(d) if d is not None else None
        if d is None:
            for chart in self.query(Chart):
                chart.draw([])
            return
        xmax = (float(d.started.epochs or 0) or None) if d.started is not None else None
        loss_chart = self.query_one("#chart-loss", Chart)
        acc_chart = self.query_one("#chart-accuracy", Chart)
        lr_chart = self.query_one("#chart-lr", Chart)
        running_x, running_y = d.step_series("loss", loss_chart.points)
        tl = d.epoch_series("train_loss")
        vl = d.epoch_series("val_loss")
        loss_chart.draw([
            ("train (running)", running_x, running_y, "gray"),
            ("train", *tl, "cyan"),
            ("val", *vl, "orange"),
        ], xmax)
        acc_x, acc_y = d.step_series("acc", acc_chart.points)
        acc_chart.draw([
            ("train (running)", acc_x, acc_y, "gray"),
            ("train", *d.epoch_series("train_acc"), "cyan"),
            ("val", *d.epoch_series("val_acc"), "orange"),
            ("val EMA", *d.epoch_series("val_acc_ema"), "magenta"),  # train.ema only (an empty series is not drawn)
        ], xmax)
        lr = d.step_series("lr", lr_chart.points)
        if not lr[0]:
            lr = d.epoch_series("lr")
        lr_chart.draw([("lr", *lr, "green")], xmax)
        self._drawn_version = d.version


class CompareCurves(Horizontal):
    """The same metric of 2-4 runs overlaid, one colour per run."""

    def compose(self):
        yield Chart("val accuracy", id="cmp-val-acc")
        yield Chart("val loss", id="cmp-val-loss")
        yield Chart("train loss", id="cmp-train-loss")

    def show(self, runs: list[tuple[str, RunData]]) -> None:
        for chart_id, key in (("#cmp-val-acc", "val_acc"), ("#cmp-val-loss", "val_loss"), ("#cmp-train-loss", "train_loss")):
            series = [(label, *data.epoch_series(key), RUN_COLORS[i % len(RUN_COLORS)]) for i, (label, data) in enumerate(runs)]
            self.query_one(chart_id, Chart).draw(series)


def _milestone(d: RunData) -> tuple:
    """What changes a chart beyond one more step: a finished epoch, an evaluation, the run's status."""
    return (id(d), len(d.epochs), len(d.evaluations), d.status)
