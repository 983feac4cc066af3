"""runs_list and curve_redraw: absolute budgets (1 s, 50 ms), reported as ratio = budget / measured.

runs_list: 1,000 generated run folders (written with the real RunStore, so the files are what training
writes: summary.json, events.jsonl, config.yaml, classes.json; a few without summary.json, as left by
older versions, are rebuilt from their events) listed with ``cifartui.record.store.list_runs`` and sorted by
best validation accuracy, as the Runs screen does.

curve_redraw: the app's loss chart (``cifartui.tui.widgets.curves.Chart``, inside a real Textual app,
160x48 terminal) redrawn for a run with 100,000 logged steps: the running-loss series taken from the
app's ``RunData`` downsampled to the chart's width as the dashboard asks for it (``step_series(key,
points)``: series kept per key and extended with new steps, bucket means from prefix sums), plotted with
plotext and rendered to the widget's lines. A step arrives between redraws, as in a live run.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

from bench.common import Result, median


def _write_runs(root: Path, n: int) -> None:
    from cifartui.config import Config
    from cifartui.record.events import EpochEnd, Evaluation, RunEnded, RunStarted, Step
    from cifartui.record.store import RunStore

    rnd = random.Random(0)
    cfg_text = Config().to_yaml()
    names = [f"class_{i:02d}" for i in range(100)]
    host = socket.gethostname()
    t0 = 1_750_000_000.0
    # Generation only: skip the fsyncs a real run pays per epoch (the files are the same).
    with mock.patch("cifartui.record.store.os.fsync"), mock.patch("cifartui.record.atomic.os.fsync"), \
            mock.patch("cifartui.record.atomic.fsync_dir"):
        for i in range(n):
            run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime(t0 + 3600 * i)) + f"-bench{i % 7}"
            path = root / run_id
            (path / "eval").mkdir(parents=True)
            store = RunStore(path)
            store.write_config(cfg_text)
            epochs = rnd.randint(1, 20)
            kind = rnd.random()
            running = kind < 0.05
            store(RunStarted(run_id=run_id, name=f"bench{i % 7}", device="cuda:0", num_classes=100, class_names=names,
                             epochs=epochs, steps_per_epoch=100, train_size=45000, val_size=5000, test_size=10000,
                             model="resnet34", dataset="cifar100", pid=os.getpid() if running else 1_000_000 + i,
                             host=host))
            best = 0.0
            for e in range(1, epochs + 1):
                for s in range(20, 101, 20):
                    store(Step(epoch=e, step=s, steps=100, loss=2.0 / e, acc=0.1 * e, lr=1e-3, images_per_second=900.0))
                acc = min(0.99, 0.3 + 0.03 * e + 0.05 * rnd.random())
                best = max(best, acc)
                store(EpochEnd(epoch=e, train_loss=2.0 / e, train_acc=acc, val_loss=2.0 / e, val_acc=acc, val_top5=acc,
                               lr=1e-3, epoch_seconds=60.0, images_per_second=900.0, best_val_acc=best,
                               is_best=acc == best))
            if not running:
                store(Evaluation(split="test", epoch=epochs, loss=1.0, top1=best, top5=best, num_samples=10000))
                store(RunEnded(status="failed" if kind > 0.97 else "completed", reason="bench", epochs_done=epochs,
                               best_val_acc=best, test_acc=best))
            store.close()
            if 0.05 <= kind < 0.07:  # an old run without summary.json
                (path / "summary.json").unlink()


def run_runs_list(quick: bool) -> Result:
    from cifartui.record.store import list_runs

    n = 50 if quick else 1000
    with tempfile.TemporaryDirectory(prefix="bench-runs-") as tmp:
        root = Path(tmp) / "runs"
        _write_runs(root, n)
        times = []
        for _ in range(1 if quick else 5):
            t0 = time.perf_counter()
            runs = list_runs(root)
            runs.sort(key=lambda r: (r.best_val_acc is not None, r.best_val_acc or 0.0), reverse=True)
            times.append(time.perf_counter() - t0)
            assert len(runs) == n, (len(runs), n)
    return Result(median(times), 1.0, "s", 1.0, higher_is_better=False)


def _step_events(n: int, steps_per_epoch: int = 1000):
    import math

    rnd = random.Random(0)
    for i in range(n):
        e, s = divmod(i, steps_per_epoch)
        yield {"type": "step", "epoch": e + 1, "step": s + 1, "steps": steps_per_epoch, "time": 1e9 + i,
               "loss": 2.3 * math.exp(-3 * i / n) + 0.2 * rnd.random(), "acc": 0.9 * (1 - math.exp(-3 * i / n)),
               "lr": 1e-3 * 0.5 * (1 + math.cos(math.pi * i / n)), "images_per_second": 1000.0}


def run_curve_redraw(quick: bool) -> Result:
    import asyncio

    from textual.app import App
    from textual.geometry import Region

    from cifartui.tui.rundata import RunData
    from cifartui.tui.widgets.curves import Chart

    n = 10_000 if quick else 100_000
    data = RunData()
    data.apply({"type": "run_started", "run_id": "bench", "name": "bench", "device": "cpu", "num_classes": 10,
                "class_names": [str(i) for i in range(10)], "epochs": n // 1000, "steps_per_epoch": 1000,
                "train_size": 1, "val_size": 1, "test_size": 1, "time": 1e9})
    data.apply_all(_step_events(n))
    for e in range(1, n // 1000 + 1):
        data.apply({"type": "epoch", "epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "train_acc": 0.5,
                    "val_acc": 0.5, "val_top5": 0.9, "lr": 1e-3, "epoch_seconds": 1.0, "images_per_second": 1000.0,
                    "time": 1e9})

    class ChartApp(App):
        CSS = "Chart { width: 1fr; height: 1fr; }"

        def compose(self):
            yield Chart("loss", id="chart-loss")

    timings: list[tuple[float, float, float]] = []
    first: list[float] = []

    extra = itertools.islice(_step_events(n + 1000), n, None)  # new steps arriving while the run trains

    def redraw(chart: Chart) -> tuple[float, float, float]:
        data.apply(next(extra))
        t0 = time.perf_counter()
        series = [
            ("train (running)", *data.step_series("loss", chart.points), "gray"),
            ("train", *data.epoch_series("train_loss"), "cyan"),
            ("val", *data.epoch_series("val_loss"), "orange"),
        ]
        t1 = time.perf_counter()
        chart.draw(series, float(n // 1000))
        t2 = time.perf_counter()
        lines = chart.render_lines(Region(0, 0, chart.size.width, chart.size.height))
        assert len(lines) == chart.size.height
        return t1 - t0, t2 - t1, time.perf_counter() - t2

    async def main() -> None:
        app = ChartApp()
        # a 160x48 terminal: the dashboard gives each of its three charts about 53x16; one chart here,
        # sized like that, is the redraw of one curve
        async with app.run_test(size=(53, 16)) as pilot:
            await pilot.pause()
            chart = app.query_one(Chart)
            first.append(sum(redraw(chart)))  # the first draw reads all n steps once
            for _ in range(2 if quick else 9):
                timings.append(redraw(chart))

    asyncio.run(main())
    parts = [statistics.median(p) * 1000 for p in zip(*timings)]
    total = statistics.median(sum(t) for t in timings) * 1000
    note = (f"first draw (reads all {n:,} steps) {first[0] * 1000:.0f} ms; later redraws: "
            f"series from RunData {parts[0]:.0f} ms, downsample + plot {parts[1]:.0f} ms, "
            f"render {parts[2]:.0f} ms (medians)")
    return Result(total, 50.0, "ms", 1.0, higher_is_better=False, note=note)
