"""runs_list and curve_redraw: absolute budgets (1 s, 50 ms), reported as ratio = budget / measured.

runs_list: 10,000 generated run folders (50 written with the real RunStore, copied with their ids swapped, so
the files are what training writes: summary.json, events.jsonl, config.yaml, classes.json, and meta.json
where tagged or archived; a few without summary.json, as left by older versions, are rebuilt from their
events) listed and filtered as ``cifartui runs --filter`` does, and sorted by best validation accuracy, as the
Runs screen does.

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
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

from bench.common import Result, median


def _write_template_runs(root: Path, n: int) -> list[Path]:
    """``n`` runs written with the real RunStore (testkit's RunWriter): 5% still running (this process), 2% without
    summary.json (as older versions left them: rebuilt from their events), 3% failed, the rest completed."""
    from cifartui.config import Config
    from testkit.runs import RunWriter

    rnd = random.Random(0)
    names = [f"class_{i:02d}" for i in range(100)]
    paths = []
    # Generation only: skip the fsyncs a real run pays per epoch (the files are the same).
    with mock.patch("cifartui.record.store.os.fsync"), mock.patch("cifartui.record.atomic.os.fsync"), \
            mock.patch("cifartui.record.atomic.fsync_dir"):
        for i in range(n):
            writer = RunWriter.new(root, f"template-{i:03d}",
                                   Config().with_overrides(**{"train.lr": rnd.choice([0.001, 0.0003, 0.0001])}))
            epochs = rnd.randint(1, 20)
            running, old, failed = i % 20 == 7, i % 50 == 3, i % 33 == 5
            writer.start(names, name=f"bench{i % 7}", device="cuda:0", epochs=epochs, steps_per_epoch=100,
                         train_size=45000, val_size=5000, test_size=10000,
                         model=rnd.choice(["resnet34", "resnet18", "vit_small_patch16_224"]), dataset="cifar100",
                         pid=os.getpid() if running else 1_000_000 + i)
            for e in range(1, epochs + 1):
                for s in range(20, 101, 20):
                    writer.step(e, s, 100, loss=2.0 / e, acc=0.1 * e, lr=1e-3, images_per_second=900.0)
                acc = min(0.99, 0.3 + 0.03 * e + 0.05 * rnd.random())
                writer.end_epoch(e, val_acc=acc, train_loss=2.0 / e, train_acc=acc, val_loss=2.0 / e, val_top5=acc,
                                 lr=1e-3, epoch_seconds=60.0, images_per_second=900.0)
            if not running:
                best = writer.best_val_acc
                writer.evaluation("test", epochs, loss=1.0, top1=best, top5=best, num_samples=10000)
                writer.end("failed" if failed else "completed", "bench", epochs_done=epochs, best_val_acc=best,
                           test_acc=best)
            writer.close()
            if old:
                (writer.path / "summary.json").unlink()
            paths.append(writer.path)
    return paths


def _write_runs(root: Path, n: int, templates: int = 50) -> None:
    """``n`` run folders: ``templates`` real ones (above), each copied with its id swapped in every file, so the
    files are byte for byte what training writes and 10,000 runs take seconds (the RunStore alone: 2 minutes).
    A third are tagged ``baseline``, a tenth archived (meta.json, as ``cifartui runs tag/archive`` write it)."""
    import json

    with tempfile.TemporaryDirectory(prefix="bench-templates-") as tmp:
        sources = _write_template_runs(Path(tmp), min(n, templates))
        files = [{p.name: p.read_bytes() for p in src.iterdir() if p.is_file()} for src in sources]
        t0 = 1_750_000_000.0
        root.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            src = sources[i % len(sources)]
            run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime(t0 + 3600 * i)) + f"-bench{i % 7}"
            path = root / run_id
            (path / "eval").mkdir(parents=True)
            for name, data in files[i % len(sources)].items():
                (path / name).write_bytes(data.replace(src.name.encode(), run_id.encode()))
            if i % 3 == 0 or i % 10 == 0:
                meta = {"tags": ["baseline"] if i % 3 == 0 else [], "note": "", "archived": i % 10 == 0}
                (path / "meta.json").write_text(json.dumps(meta))


RUNS_FILTER = "model:resnet* best_val>0.5 tag:baseline"


def run_runs_list(quick: bool) -> Result:
    """`cifartui runs --filter QUERY` without the printing: list the runs, hide the archived ones, filter,
    sort by best validation accuracy (as the Runs screen does). A cfg term (reads every config.yaml once,
    then the root's config cache) is timed apart and reported in the note."""
    from cifartui.commands.runs import select

    n = 50 if quick else 10_000
    with tempfile.TemporaryDirectory(prefix="bench-runs-") as tmp:
        root = Path(tmp) / "runs"
        _write_runs(root, n)
        times = []
        for _ in range(1 if quick else 5):
            t0 = time.perf_counter()
            runs, total, hidden = select(str(root), RUNS_FILTER)
            runs.sort(key=lambda r: (r.best_val_acc is not None, r.best_val_acc or 0.0), reverse=True)
            times.append(time.perf_counter() - t0)
            assert total == n and runs, (total, n, len(runs))
        cfg_query = "cfg.train.lr=0.0003 best_val>0.5"
        t0 = time.perf_counter()
        cold = len(select(str(root), cfg_query)[0])
        cold_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        warm = len(select(str(root), cfg_query)[0])
        warm_s = time.perf_counter() - t0
        assert cold == warm
    note = (f"{n:,} runs, filter {RUNS_FILTER!r}: {len(runs)} shown, {hidden} archived hidden; "
            f"with a cfg term ({cfg_query!r}): {cold_s:.2f} s the first time (every config.yaml read), "
            f"{warm_s:.2f} s after (config cache)")
    return Result(median(times), 1.0, "s", 1.0, higher_is_better=False, note=note,
                  extra={"runs": n, "cfg_first_s": round(cold_s, 3), "cfg_cached_s": round(warm_s, 3)})


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


def screen_figures(root: Path, presses: int) -> tuple[float, list[float]]:
    """Seconds from the app's start to its Runs screen's first rows, and the seconds each of ``presses`` key
    presses (down) took to show while the screen reloads the runs every second."""
    import asyncio

    from textual.widgets import DataTable

    from cifartui.tui.app import CifarApp

    first: list[float] = []
    keys: list[float] = []

    async def main() -> None:
        t0 = time.perf_counter()
        app = CifarApp(root=root, runs_refresh_interval=1.0)
        async with app.run_test(size=(160, 48)) as pilot:
            while not (app.screen.query(DataTable) and app.screen.query_one(DataTable).row_count):
                await pilot.pause(0.01)
            first.append(time.perf_counter() - t0)
            for _ in range(presses):
                t1 = time.perf_counter()
                await pilot.press("down")
                await pilot.pause()
                keys.append(time.perf_counter() - t1)
                await asyncio.sleep(0.25)

    asyncio.run(main())
    return first[0], sorted(keys)


def run_runs_screen(quick: bool) -> Result:
    """The app opened on a root of 10,000 runs (those of runs_list): seconds from the app's start to the Runs
    screen's table holding rows, against a budget of 2 s; the note adds how long a key press takes to show
    while the screen reloads the runs every second in the background (the default is every 3 s)."""
    from cifartui.record.store import list_runs

    n = 50 if quick else 10_000
    with tempfile.TemporaryDirectory(prefix="bench-runs-screen-") as tmp:
        root = Path(tmp) / "runs"
        _write_runs(root, n)
        t0 = time.perf_counter()
        list_runs(root)  # also warms the page cache, as a second look at the same runs would find it
        list_s = time.perf_counter() - t0
        first, keys = screen_figures(root, 5 if quick else 20)
    median_ms, worst_ms = round(1000 * keys[len(keys) // 2]), round(1000 * keys[-1])
    note = (f"{n:,} runs: first rows after {first:.2f} s (reading them: {list_s:.2f} s; the table holds the first "
            f"1,000); a key press while the runs reload every second: median {median_ms} ms, worst {worst_ms} ms")
    return Result(first, 2.0, "s", 1.0, higher_is_better=False, note=note,
                  extra={"runs": n, "key_median_ms": median_ms, "key_worst_ms": worst_ms})
