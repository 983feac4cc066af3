"""The app's figures: ui_overhead, first_frame, confusion_nav.

ui_overhead: the trainer's own throughput (images/s over each epoch's training steps, from the run's
``epoch`` events, weighted by time) training the demo config in the app, with the Dashboard on screen in
a real terminal (tmux, 160x48), against ``cifartui --headless train`` with the same config, in adjacent
pairs (app, headless, headless, app ...); the ratio is the median of the pairs' ratios, since this
machine's speed drifts more between minutes than the app costs. log_interval=1: a progress event every
step, the most the dashboard is ever asked to show. While the app trains, the bench only checks the run's
summary.json twice a second: nothing else runs beside the app that the headless run does not also have.

first_frame: wall time from starting ``cifartui`` (an empty runs folder, so it opens on the Config screen
with the demo) to its first painted screen (the app's CIFARTUI_FIRST_PAINT_FILE hook, written after the
first refresh), in a real terminal, against ``python -c "import torch"`` in the same run. The Config
screen paints first and mounts its form (pydantic, the schema, ~90 fields) right after; the note gives
when the form, filled with demo.yaml, is there too (the file's "ready" time).

confusion_nav: in the app (Textual's test driver, 160x48), the Confusion screen of a run with a 100x100
matrix; from posting a cursor key to the updated screen rendered to terminal output (the compositor's
update for the frame that follows the key, turned into the escape sequences a terminal gets). Textual
paints at most 60 frames a second, so this includes waiting for the next frame.
"""

from __future__ import annotations

import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Result, interleave, median, not_available, pairs
from testkit.terminal import Tmux

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo.yaml"
EXE = Path(sys.executable).parent / "cifartui"


def _app_missing() -> str | None:
    try:
        import cifartui.tui.app  # noqa: F401
    except ImportError as exc:
        return f"the app (cifartui.tui.app) is not importable: {exc}"
    if not EXE.exists():
        return f"{EXE} is not installed (bash scripts/setup.sh)"
    return None


def _paint_time(path: Path, key: str = "time") -> float | None:
    """The first-paint file: ``{"time": first frame, "ready": form filled, "torch": ...}``."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    if not text:
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if isinstance(obj, dict):
        return float(obj[key]) if key in obj else None
    return float(obj)


def _app_command(args: list[str], env: dict[str, str]) -> str:
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    # after the app exits the pane stays (sleep), so a crash leaves its message on screen
    return f"env -u COLUMNS -u LINES {exports} {shlex.join(args)}; sleep 3600"


# -- ui_overhead ------------------------------------------------------------------------------------------
PAIRS = 6  # 2-epoch runs, ~25 s each: more, shorter pairs sit closer in time than a few long ones


def _overrides(quick: bool) -> list[str]:
    if quick:
        return ["train.epochs=1", "data.train_size=200", "data.test_size=32", "data.synthetic_size=16",
                "model.name=test_resnet", "train.batch_size=32", "train.log_interval=1", "device=cpu"]
    return ["train.epochs=2", "data.train_size=3000", "data.test_size=200", "train.log_interval=1", "device=cpu"]


def _throughput(root: Path) -> float:
    runs = [p for p in root.iterdir() if p.is_dir()]
    if len(runs) != 1:
        raise RuntimeError(f"expected one run under {root}, found {len(runs)}")
    events = [json.loads(line) for line in (runs[0] / "events.jsonl").read_text().splitlines() if line.strip()]
    ended = [e for e in events if e["type"] == "run_ended"]
    if not ended or ended[-1]["status"] != "completed":
        raise RuntimeError(f"the run did not complete: {ended[-1] if ended else 'no run_ended event'}")
    epochs = [e for e in events if e["type"] == "epoch"]
    seconds = sum(e["epoch_seconds"] for e in epochs)
    return sum(e["images_per_second"] * e["epoch_seconds"] for e in epochs) / seconds


def _run_ended(root: Path) -> bool:
    """Whether the one run under ``root`` has ended (its summary.json has an end time)."""
    for summary in root.glob("*/summary.json"):
        try:
            return "ended" in json.loads(summary.read_text())
        except (OSError, ValueError):  # written atomically, but be safe
            return False
    return False


def run_ui_overhead(quick: bool) -> Result:
    missing = _app_missing() or (None if shutil.which("tmux") else "tmux is not installed")
    if missing:
        return not_available("img/s", 0.95, missing)
    overrides = _overrides(quick)
    sets = [a for o in overrides for a in ("--set", o)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    count = [0]

    def headless() -> float:
        count[0] += 1
        root = tmp / f"h{count[0]}"
        subprocess.run([str(EXE), "--headless", "train", str(DEMO), "--root", str(root), *sets], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=1800)
        return _throughput(root)

    def app() -> float:
        count[0] += 1
        root = tmp / f"a{count[0]}"
        paint = tmp / f"paint{count[0]}"
        tmux = Tmux()
        try:
            tmux.start(_app_command([str(EXE), "--root", str(root), "--config", str(DEMO), *sets],
                                      {"CIFARTUI_FIRST_PAINT_FILE": str(paint)}))
            tmux.wait(lambda: _paint_time(paint) is not None and "valid" in tmux.screen(), 120, "the app did not show its config")
            for key in ("Escape", "s"):  # leave any focused field, then start
                tmux.keys(key)
                time.sleep(0.3)
            # poll the run's summary.json, not the screen: a `tmux capture-pane` every 0.1 s (a process
            # spawn each) took CPU from the app's training that the headless runs never had to share
            tmux.wait(lambda: _run_ended(root), 1800, "training in the app did not end", every=0.5)
            tmux.wait(lambda: "completed" in tmux.screen(), 30, "the app did not show the run completed")  # training is over
            tmux.keys("q")
            time.sleep(0.5)
        finally:
            tmux.kill()
        return _throughput(root)

    try:
        ours, base = pairs(app, headless, 1 if quick else PAIRS)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratios = sorted(a / b for a, b in zip(ours, base))
    note = (f"median of {len(ratios)} adjacent app/headless pairs; pair ratios "
            + " ".join(f"{r:.3f}" for r in ratios) + "; headless img/s " + " ".join(f"{b:.0f}" for b in base))
    return Result(median(ours), median(base), "img/s", 0.95, note=note, paired_ratio=median(ratios))


# -- first_frame ------------------------------------------------------------------------------------------
_BARE_APP = """
import json, os, time
from textual.app import App
from textual.widgets import Footer, Static

class Bare(App):
    def compose(self):
        yield Static("hello")
        yield Footer()

    def on_mount(self):
        path = os.environ["CIFARTUI_FIRST_PAINT_FILE"]
        self.call_after_refresh(lambda: open(path, "w").write(json.dumps({"time": time.time()})))

Bare().run()
"""


def _compile_package() -> None:
    """Byte-compile cifartui as a wheel install leaves it (pip compiles; an editable install under
    PYTHONDONTWRITEBYTECODE=1 never writes .pyc files and would compile ~10k lines on every start, while
    Textual's own modules, the bare app's floor, come compiled from their wheel)."""
    import compileall

    import cifartui

    compileall.compile_dir(Path(cifartui.__file__).parent, quiet=1)


class _FirstFrames:
    """Start programs in one tmux pane and time their first frame (the CIFARTUI_FIRST_PAINT_FILE stamp)."""

    def __init__(self) -> None:
        _compile_package()
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-ff-"))
        self.tmux = Tmux()
        self.count = 0
        self.ready: list[float] = []

    def app(self) -> float:
        """cifartui on an empty root (the Config screen with demo.yaml): what a new user sees first."""
        self.count += 1
        paint, root = self.tmp / f"paint{self.count}", self.tmp / f"runs{self.count}"
        t0 = time.time()
        self.tmux.start(_app_command([str(EXE), "--root", str(root)], {"CIFARTUI_FIRST_PAINT_FILE": str(paint)}))
        self.tmux.wait(lambda: _paint_time(paint) is not None, 60, "the app did not paint")
        self.tmux.wait(lambda: _paint_time(paint, "ready") is not None, 60, "the config form did not appear")
        self.ready.append(_paint_time(paint, "ready") - t0)
        self.tmux.start("sleep 3600")  # kills the app
        return _paint_time(paint) - t0

    def bare_textual(self) -> float:
        """The floor: a Textual app with one line of text and a footer, timed the same way."""
        self.count += 1
        paint, script = self.tmp / f"paint{self.count}", self.tmp / "bare_app.py"
        script.write_text(_BARE_APP)
        t0 = time.time()
        self.tmux.start(_app_command([sys.executable, str(script)], {"CIFARTUI_FIRST_PAINT_FILE": str(paint)}))
        self.tmux.wait(lambda: _paint_time(paint) is not None, 60, "the bare Textual app did not paint")
        self.tmux.start("sleep 3600")
        return _paint_time(paint) - t0

    def close(self) -> None:
        self.tmux.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _torch_import() -> float:
    t0 = time.time()
    subprocess.run([sys.executable, "-c", "import torch"], check=True, timeout=120)
    return time.time() - t0


def run_first_frame(quick: bool) -> Result:
    missing = _app_missing() or (None if shutil.which("tmux") else "tmux is not installed")
    if missing:
        return not_available("s", 4.0, missing, higher_is_better=False)
    frames = _FirstFrames()
    try:
        if not quick:  # warm the file cache for both (the app's first start reads the same disk)
            _torch_import()
            frames.app()
        value, baseline = interleave(frames.app, _torch_import, 1 if quick else 5)
    finally:
        frames.close()
    note = f"the config form, filled with demo.yaml, follows at {median(frames.ready):.2f} s (median)"
    return Result(value, baseline, "s", 4.0, higher_is_better=False, note=note)


def run_first_frame_bare(quick: bool) -> Result:
    """The app's first frame against a bare Textual app's (one Static, a Footer), interleaved in one run:
    ratio = bare / ours, goal 0.87 (at most 1.15x the floor), so new layers pull nothing into start-up."""
    missing = _app_missing() or (None if shutil.which("tmux") else "tmux is not installed")
    if missing:
        return not_available("s", 0.87, missing, higher_is_better=False)
    frames = _FirstFrames()
    try:
        if not quick:
            frames.app()
            frames.bare_textual()
        value, baseline = interleave(frames.app, frames.bare_textual, 1 if quick else 6)
    finally:
        frames.close()
    return Result(value, baseline, "s", 0.87, higher_is_better=False,
                  note=f"medians of interleaved starts; the config form follows at {median(frames.ready):.2f} s")


# -- confusion_nav ----------------------------------------------------------------------------------------
def _confusion_run(root: Path, n: int = 100) -> str:
    import numpy as np

    from cifartui.diff import confusion_of
    from testkit.runs import RunWriter

    rng = np.random.default_rng(0)
    targets = np.repeat(np.arange(n), 100).astype(np.int32)
    preds = np.where(rng.random(targets.size) < 0.7, targets, rng.integers(0, n, targets.size)).astype(np.int32)
    conf = confusion_of(targets, preds, n).astype(np.int32)
    prob = rng.uniform(0.2, 1.0, targets.size).astype(np.float16)
    acc = float(np.trace(conf) / targets.size)
    with RunWriter.new(root, "20250101-000000-bench-confusion") as writer:
        writer.start([f"class_{i:03d}" for i in range(n)], name="bench-confusion", epochs=1, steps_per_epoch=10,
                     train_size=1000, val_size=100, test_size=targets.size, model="resnet18", dataset="cifar100",
                     host="")
        writer.end_epoch(1, val_acc=acc, train_loss=1.0, train_acc=acc, val_loss=1.0, val_top5=acc, lr=1e-3,
                         epoch_seconds=1.0, images_per_second=1.0)
        writer.evaluation("test", 1, loss=1.0, top1=acc, top5=acc,
                          arrays={"confusion": conf, "targets": targets, "preds": preds, "pred_prob": prob,
                                  "true_prob": prob})
        writer.end("completed", "bench", epochs_done=1, best_val_acc=acc, test_acc=acc)
    return writer.path.name


def run_confusion_nav(quick: bool) -> Result:
    missing = _app_missing()
    if missing:
        return not_available("ms", 1.0, missing, higher_is_better=False)
    import asyncio

    from cifartui.tui.app import CifarApp
    from cifartui.tui.widgets.confusion_matrix import ConfusionMatrix

    latencies: list[float] = []

    async def main(root: Path, run_id: str) -> None:
        app = CifarApp(root=root, run=run_id)
        frames: list[float] = []
        display = app._display

        def timed_display(screen, renderable) -> None:
            display(screen, renderable)
            if renderable is not None and hasattr(renderable, "render_segments"):
                renderable.render_segments(app.console)  # what a terminal would be sent (the test driver skips it)
                frames.append(time.perf_counter())

        app._display = timed_display
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("c")
            end = time.monotonic() + 30
            while time.monotonic() < end:
                matrix = app.screen.query(ConfusionMatrix)
                if matrix and matrix.first().n == 100 and matrix.first().has_focus:
                    break
                await pilot.pause(0.05)
            else:
                raise RuntimeError("the confusion screen did not show the 100x100 matrix with focus")
            matrix = matrix.first()
            await pilot.pause(0.2)
            step = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}
            direction = {0: "down", 1: "right"}  # per axis; turned round at the matrix's edges
            for k in range(6 if quick else 80):
                axis = k % 2
                before = matrix.cursor
                key = direction[axis]
                if not 0 <= before[axis] + step[key][axis] < matrix.n:
                    key = direction[axis] = {"down": "up", "up": "down", "right": "left", "left": "right"}[key]
                frames.clear()
                t0 = time.perf_counter()
                await pilot.press(key)
                while not frames and time.perf_counter() - t0 < 2.0:
                    await asyncio.sleep(0.0005)
                if not frames:
                    raise RuntimeError(f"no screen update after {key!r}")
                if matrix.cursor == before:
                    raise RuntimeError(f"{key!r} did not move the cursor")
                latencies.append((frames[0] - t0) * 1000)
                await pilot.pause(0.02)

    with tempfile.TemporaryDirectory(prefix="bench-conf-") as tmp:
        root = Path(tmp) / "runs"
        run_id = _confusion_run(root)
        asyncio.run(main(root, run_id))
    warm = latencies[2:] or latencies
    return Result(statistics.median(warm), 16.0, "ms", 1.0, higher_is_better=False)
