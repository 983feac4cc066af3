"""The Textual app: four screens (Config, Dashboard, Confusion, Runs) as modes, one run in view.

Training runs in a thread worker that calls :func:`cifartui.session.train` with a
:class:`~cifartui.tui.bridge.TrainingBridge` sink; torch is imported on that thread only, so the
first frame appears before torch is loaded. Runs written by other processes are followed by polling
an :class:`~cifartui.record.store.EventFollower`.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from textual._context import active_app
from textual.app import App
from textual.binding import Binding

from cifartui.errors import UserError
from cifartui.tui.alerts import alerts_setting, terminal_alert

# The run store, the read model and the training bridge are imported where they are used, not here: a first
# start on an empty runs folder paints its Config screen without them (bench first_frame_bare).
if TYPE_CHECKING:
    from cifartui.config import Config
    from cifartui.record.control import StopRequest
    from cifartui.record.events import Evaluation
    from cifartui.record.store import EventFollower
    from cifartui.tui.bridge import EventsReady, TrainingBridge
    from cifartui.tui.rundata import RunData
    from cifartui.tui.screens.config import ConfigScreen

# Screens (and pydantic, numpy, plotext behind them) are imported when first shown, not before the first
# frame: the app paints its start screen without paying for the others.
SCREENS = {
    "config": ("cifartui.tui.screens.config", "ConfigScreen"),
    "dashboard": ("cifartui.tui.screens.dashboard", "DashboardScreen"),
    "confusion": ("cifartui.tui.screens.confusion", "ConfusionScreen"),
    "runs": ("cifartui.tui.screens.runs", "RunsScreen"),
}


def screen_class(mode: str) -> type:
    import importlib

    module, name = SCREENS[mode]
    return getattr(importlib.import_module(module), name)


def _lazy(mode: str) -> Callable[[], Any]:
    def make() -> Any:
        screen = screen_class(mode)()
        # Textual re-parses every stylesheet twice (~25 ms each here) when a mode's first screen is created,
        # in case the screen brings CSS of its own. Ours bring none (all styles are in app.tcss, parsed at
        # start, and applied to each widget as it mounts), so mark the screen current: the first frame
        # comes ~40 ms sooner (bench first_frame_bare). A screen with its own CSS keeps the re-parse.
        app = active_app.get(None)
        if app is not None and not screen.CSS and not screen.CSS_PATH:
            screen._css_update_count = app._css_update_count
        return screen

    return make

PACKAGE_DIR = Path(__file__).resolve().parents[1]
DEFAULT_ROOT_VALUES = ("./runs", "runs")


def _stop_request() -> StopRequest:
    from cifartui.record.control import StopRequest

    return StopRequest()


@dataclass
class LiveTraining:
    """The run this process trains (at most one at a time)."""

    cfg: Config
    data: RunData
    bridge: TrainingBridge
    stop: StopRequest = field(default_factory=_stop_request)
    resume_dir: Path | None = None
    started_at: float = field(default_factory=time.monotonic)
    finished: bool = False
    thread: threading.Thread | None = None  # not a Textual worker: it must outlive the app (hang-up, hand-off)
    run_dir: Path | None = None  # set by the training thread once the run folder exists


def config_dirs() -> list[Path]:
    """configs/ beside the package's repo and in the working directory (the shipped presets are listed apart)."""
    out = []
    for p in (PACKAGE_DIR.parent / "configs", Path.cwd() / "configs"):
        if p.is_dir() and p.resolve() not in [q.resolve() for q in out]:
            out.append(p)
    return out


def find_demo_config() -> Path | None:
    """configs/demo.yaml where there is one (a checkout, or the user's own), else the shipped demo preset."""
    for d in config_dirs():
        if (d / "demo.yaml").is_file():
            return d / "demo.yaml"
    from cifartui import presets

    demo = presets.find("demo")
    return demo.path if demo is not None else None


def _has_entries(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is not None
    except OSError:  # missing, or not a folder: list_runs says nothing either
        return False


def _same_as_preset(path: Path, shipped: dict[str, Path]) -> bool:
    """A configs/ file identical to the preset of its name (the repository's copy): listed once, as the preset.
    ``shipped``: the presets' paths by name (``demo``), listed once for all the files."""
    preset = shipped.get(path.stem)
    try:
        return preset is not None and path.read_bytes() == preset.read_bytes()
    except OSError:
        return False


class CifarApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "cifartui"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    MODES = {mode: _lazy(mode) for mode in SCREENS}
    BINDINGS = [
        Binding("e", "mode('config')", "Config"),
        Binding("d", "mode('dashboard')", "Dashboard"),
        Binding("c", "mode('confusion')", "Confusion"),
        Binding("r", "mode('runs')", "Runs"),
        Binding("question_mark", "help", "Keys", key_display="?"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, config_path: str | os.PathLike | None = None, run: str | None = None,
                 root: str | os.PathLike | None = "runs", overrides: Iterable[str] = (),
                 redraw_interval: float = 3.0, follow_interval: float = 1.0, runs_refresh_interval: float = 3.0,
                 panel_interval: float = 1.0, graphics: str | None = None, progressive: bool = True) -> None:
        super().__init__()
        self.progressive = progressive  # screens may paint first and mount heavy parts (the config form) after
        self.root = Path(root or "runs")
        self.config_path = Path(config_path) if config_path else None
        self.run_ref = run
        self.overrides = list(overrides)
        self.redraw_interval = redraw_interval
        self.follow_interval = follow_interval
        self.panel_interval = panel_interval  # the dashboard's panels refresh at most this often while a run trains
        self.runs_refresh_interval = runs_refresh_interval
        self._runs_cache: dict = {}  # list_runs(cache=): only runs that changed since are read again
        self._runs_lock = threading.Lock()  # the UI thread and the Runs screen's reload thread share the cache
        self.current: RunData | None = None
        self.live: LiveTraining | None = None
        self.following: EventFollower | None = None
        self._follow_checked = 0.0
        self._quit_after_stop = False
        self._samples: dict[tuple[str, str], Any] = {}
        self._samples_lock = threading.Lock()
        self._cam_makers: dict[tuple[str, int], Any] = {}  # (run folder, best.pt mtime) -> CamMaker
        self._cam_lock = threading.Lock()
        self.graphics_image_cls = _graphics_image_class(graphics)
        self.alerts = alerts_setting()  # CIFARTUI_ALERTS: bell and OSC 9 when a run ends (tui/alerts.py)
        self.startup_error: str | None = None
        self.first_paint: float | None = None
        # How the app ends while a run trains: "stop" (stop it, then quit), "background" (hand the run to a
        # detached process), "hangup" (the terminal went away: train on here, headless). See run_app.
        self.leaving: str | None = None
        self.loop = None  # the event loop, for the SIGHUP handler (a signal arrives outside it)

    # -- start-up ---------------------------------------------------------------------------------------
    def on_mount(self) -> None:
        import asyncio

        self.loop = asyncio.get_running_loop()
        # One timer drives everything live: fewer wake-ups of the UI thread leave the CPU to a training run.
        self.set_interval(min(self.follow_interval, self.panel_interval), self._heartbeat)
        start = "runs"
        if self.run_ref:
            from cifartui.record.store import StoreError, resolve_run

            try:
                path = resolve_run(self.run_ref, self.root)
            except StoreError as exc:
                self.startup_error = str(exc)
            else:
                self._set_current_run(path)
                start = "dashboard"
        elif self.config_path is not None:
            start = "config"
        elif not _has_entries(self.root):  # a first start: no runs to list (the store is not even imported)
            start = "config"
        else:
            runs = self.list_runs()
            live = [r for r in runs if r.status == "running"]
            if len(live) == 1:  # reattach: the run a detached process, a queue or a hung-up app trains
                self._set_current_run(Path(live[0].path))
                start = "dashboard"
            elif not runs:
                start = "config"
        self.switch_mode(start)
        if self.startup_error:
            self.notify(self.startup_error, title="--run", severity="error", timeout=10)
        self.call_after_refresh(self._painted)

    def on_unmount(self) -> None:
        # Leaving by any path (q, ctrl+q, a test's end) stops a live run cleanly (last.pt is saved), unless the
        # run goes on without the app: the terminal hung up, or the user chose to keep it training.
        if self.live is not None and not self.live.finished and self.leaving not in ("hangup", "background"):
            self.live.stop.request("stopped from the app; resume with R on the Runs screen or --resume")
        if self.live is not None and self.leaving in ("hangup", "background"):
            self.live.bridge.close()  # nobody drains it any more: keep a long run from filling memory

    def terminal_hung_up(self) -> None:
        """SIGHUP (see :mod:`cifartui.tui.hangup`; the terminal is already detached): quit the UI, train on."""
        self.leaving = "hangup"
        self.exit(0)

    def _painted(self) -> None:
        if self.first_paint is None:
            self.first_paint = time.perf_counter()
            self._record_start("time")

    def screen_ready(self) -> None:
        """The start screen's heavy parts are in place (the config form): for the first-frame benchmark."""
        self._record_start("ready")

    def _record_start(self, key: str) -> None:
        path = os.environ.get("CIFARTUI_FIRST_PAINT_FILE")
        if not path:  # the first-frame measurement (bench first_frame, tests/tui/test_pty.py)
            return
        import json
        import sys

        file = Path(path)
        try:
            record = json.loads(file.read_text()) if file.exists() else {}
        except ValueError:
            record = {}
        record.setdefault(key, time.time())
        # as of the first frame (the first stamp), not the form's: torch is not loaded yet, nor the run store
        record.setdefault("torch", "torch" in sys.modules)
        record.setdefault("store", "cifartui.record.store" in sys.modules)
        tmp = file.with_name(file.name + ".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(file)  # the reader never sees half a file

    def load_default_config(self, screen: ConfigScreen) -> None:
        """The Config screen's first content: --config, else configs/demo.yaml, else the defaults."""
        path = self.config_path or find_demo_config()
        if path is not None:
            screen.load_path(path, self.overrides)
        else:
            from cifartui.config import Config

            cfg = self.adjust_root(Config())
            screen.load_config(cfg, None, "defaults (no configs/demo.yaml found)")

    def adjust_root(self, cfg: Config) -> Config:
        """A config that writes to the default ./runs writes under the app's root instead."""
        if cfg.output.root in DEFAULT_ROOT_VALUES and str(self.root) not in DEFAULT_ROOT_VALUES:
            return cfg.with_overrides(**{"output.root": str(self.root)})
        return cfg

    def config_files(self) -> list[Path]:
        from cifartui import presets

        files: list[Path] = []
        shipped = {p.name: p.path for p in presets.presets()}
        for d in config_dirs():
            files.extend(p for p in sorted(d.glob("*.yaml")) + sorted(d.glob("*.yml")) if not _same_as_preset(p, shipped))
        return files

    def presets_listed(self) -> list[tuple[str, Path]]:
        """The shipped presets as (label, path) for the Open dialog: the name and its one-line description."""
        from cifartui import presets

        return [(line, preset.path) for line, preset in presets.listing()]

    def list_runs(self) -> list:
        """The runs under the root (record.store.list_runs), through the app's listing cache; any thread."""
        from cifartui.record.store import list_runs

        with self._runs_lock:
            return list_runs(self.root, self._runs_cache)

    def run_configs(self) -> list[tuple[str, Path]]:
        return [(f"{r.id}  ({r.status})", Path(r.path) / "config.yaml") for r in self.list_runs()
                if (Path(r.path) / "config.yaml").exists()]

    def load_run_config(self, run_dir: Path, resume: bool = False, fine_tune: bool = False) -> None:
        """A past run's config into the Config screen: as is, for a resume, or as a fine-tune."""
        from cifartui import config as config_mod
        from cifartui.config import ConfigError

        try:
            base = config_mod.load(run_dir / "config.yaml")
        except ConfigError as exc:
            self.notify(str(exc), severity="error")
            return
        cfg, label = base, f"run {run_dir.name}"
        if fine_tune:
            cfg = fine_tune_config(base, run_dir)
            label = f"fine-tune from {run_dir.name} (best.pt, lr ÷10)"
        self.switch_mode("config")
        screen = self.screen
        if isinstance(screen, screen_class("config")):
            screen.load_config(cfg, base, label, run_dir / "config.yaml", resume_dir=run_dir if resume else None)

    # -- runs in view -----------------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        return self.live is not None and not self.live.finished

    def is_live(self, data: RunData | None) -> bool:
        return data is not None and self.live is not None and data is self.live.data

    def _set_current_run(self, path: Path) -> RunData:
        if self.live is not None and self.live.data.run_dir is not None and self.live.data.run_dir.resolve() == path.resolve():
            self.current, self.following = self.live.data, None
            return self.current
        from cifartui.record.store import EventFollower, read_run
        from cifartui.tui.rundata import RunData

        data = RunData(path)
        follower = EventFollower(path)
        data.apply_all(follower.poll())
        summary = read_run(path)
        data.disk_status = summary.status
        self.current = data
        self.following = follower if summary.status == "running" and data.ended is None else None
        self._follow_checked = time.monotonic()
        return data

    def open_run(self, path: Path, mode: str = "dashboard") -> None:
        self._set_current_run(path)
        self.switch_mode(mode)
        self._notify_screen(force=True)

    def _heartbeat(self) -> None:
        """Every min(follow_interval, panel_interval) s (1 s by default): take the live run's buffered steps,
        poll a followed run, tick the screen."""
        if not self.screen_stack:  # the timer can fire once more while the app shuts down
            return
        self.pump_live()
        self._poll_follow()
        tick = getattr(self.screen, "heartbeat", None)
        if tick is not None:
            tick()

    def _poll_follow(self) -> None:
        follower, data = self.following, self.current
        if follower is None or data is None:
            return
        changed = data.apply_all(follower.poll())
        if time.monotonic() - self._follow_checked > 5 * self.follow_interval:
            self._follow_checked = time.monotonic()
            from cifartui.record.store import read_run

            data.disk_status = read_run(data.run_dir).status if data.run_dir else None
            changed = True
        if data.ended is None and data.disk_status not in (None, "running"):
            # the writer may have finished between the poll above and reading its status: its last lines
            changed = data.apply_all(follower.poll()) or changed
        if data.ended is not None or (data.disk_status not in (None, "running")):
            self.following = None
            changed = True
            self.announce_end(data)  # the followed run ended (or its writer died) while the app watched it
        if changed:
            self._notify_screen()

    def announce_end(self, data: RunData) -> None:
        """A run trained here or followed ended: a notification in the app, plus the terminal bell and an OSC 9
        desktop notification (they reach a terminal over SSH) unless ``CIFARTUI_ALERTS`` turns them off."""
        from cifartui.record.events import SUCCESS_STATUSES
        from cifartui.tui.formatting import pct

        ended, status = data.ended, data.status
        test = data.record.test
        text = f"{data.id}: {status}" + (f", test {pct(test.top1)}" if test is not None else "")
        reason = ended.reason if ended is not None else "its process is gone"
        good = status in SUCCESS_STATUSES
        self.notify(f"{text} ({reason})", title="run ended", severity="information" if good else "warning", timeout=8)
        sequence = terminal_alert(f"cifartui: {text}", self.alerts)
        if sequence and self._driver is not None:
            self._driver.write(sequence)  # raw bytes, as App.copy_to_clipboard writes OSC 52

    def _notify_screen(self, force: bool = False) -> None:
        update = getattr(self.screen, "run_updated", None)
        if update is not None:
            update(self.current, force=force)

    # -- training ---------------------------------------------------------------------------------------
    def start_training(self, cfg: Config, resume_dir: Path | None = None) -> bool:
        if self.training:
            self.notify("a run is already training here", severity="warning")
            return False
        from cifartui.record.store import EventFollower
        from cifartui.tui.bridge import TrainingBridge
        from cifartui.tui.rundata import APP_STATUS, RunData

        data = RunData(resume_dir)
        bridge = TrainingBridge(self.post_message)
        live = LiveTraining(cfg=cfg, data=data, bridge=bridge, resume_dir=resume_dir)
        if resume_dir is not None:
            data.apply_all(EventFollower(resume_dir).poll())
        self.live, self.current, self.following = live, data, None
        bridge.push({"type": APP_STATUS, "message": "starting: loading torch and timm ..."})
        live.thread = threading.Thread(target=self._train_thread, args=(live,), name="train", daemon=False)
        live.thread.start()
        self.switch_mode("dashboard")
        self._notify_screen(force=True)
        return True

    def _train_thread(self, live: LiveTraining) -> None:
        """On the worker thread: preflight, create the run, train, then ``output.notify``. Never raises into
        Textual."""
        from cifartui.tui.rundata import APP_DONE, APP_ERROR, APP_RUN_DIR, APP_STATUS

        bridge = live.bridge
        store = error = None
        try:
            from cifartui import session  # torch and timm load in here, off the UI thread

            store = session.prepare(live.cfg, live.resume_dir)
            live.run_dir = store.path
            bridge.push({"type": APP_RUN_DIR, "path": str(store.path)})
            bridge.push({"type": APP_STATUS, "message": "loading data and building the model ..."})
            session.train(live.cfg, store, sinks=[bridge], stop=live.stop, resume_dir=live.resume_dir)
        except BaseException as exc:  # noqa: BLE001 - shown in the app, never a dead terminal
            error = exc
            user = isinstance(exc, UserError)
            message = str(exc) if user else f"{type(exc).__name__}: {exc}"
            if live.run_dir is not None and not user:  # train.log says "run failed"; the traceback is extra
                from cifartui.record.control import append_train_log

                append_train_log(live.run_dir, traceback.format_exc())
            bridge.push({"type": APP_ERROR, "message": message, "user_error": user,
                         "traceback": "" if user else traceback.format_exc(),
                         "hint": "" if user else "the run is marked failed; the traceback is in the log pane"})
        finally:
            bridge.push({"type": APP_DONE})  # the run is over: the app may train another while the command runs
            self._notify_command(live, store, error)

    def _notify_command(self, live: LiveTraining, store, error: BaseException | None) -> None:
        """``output.notify`` as a headless run runs it, on the training thread (the command may take up to its
        time limit): after a hang-up too, when the user is most likely away. Not for a run handed to a detached
        process (``q`` then ``b``), which notifies when it ends, unless the run ended here before the hand-off."""
        ended = store.record.ended if store is not None else None
        if self.leaving == "background" and ended is not None and ended.status == "stopped":
            return
        from cifartui.notify import notify_ended

        failure = notify_ended(live.cfg, store, error)
        if failure:
            live.bridge.push({"type": "log", "level": "warning",
                              "message": f"output.notify: {failure.removeprefix('notify: ')} (details in train.log)"})

    def on_events_ready(self, message: EventsReady) -> None:
        if self.live is not None and message.bridge is self.live.bridge:
            self.pump_live()

    def pump_live(self) -> None:
        """Apply what the training thread has sent since the last call (in order) and tell the screen."""
        live = self.live
        if live is None or not len(live.bridge):
            return
        from cifartui.tui.rundata import APP_DONE, APP_ERROR

        events = live.bridge.drain()
        for e in events:
            live.data.apply(e)
            if e.get("type") == APP_ERROR:
                self.notify(e.get("message", ""), title="training failed", severity="error", timeout=15)
                if e.get("traceback"):
                    for line in e["traceback"].rstrip().splitlines()[-12:]:
                        live.data._log("error", line, None)
            elif e.get("type") == "run_ended" and live.data.ended is not None:  # the record's, typed
                self.announce_end(live.data)
            elif e.get("type") == APP_DONE:
                live.finished = True
        if self.current is live.data or live.finished:
            self._notify_screen()
        if live.finished and self._quit_after_stop:
            self.exit(0)

    def stop_training(self, reason: str = "") -> None:
        if self.live is None or self.live.finished:
            return
        self.live.stop.request(reason or "stopped from the app; resume with R on the Runs screen or --resume")
        self.live.data.phase = "stopping after this step, saving last.pt ..."
        self.live.data._log("warning", self.live.data.phase, time.time())
        self._notify_screen(force=True)  # the user pressed a key: answer now, not on the next heartbeat

    # -- the queue (cifartui.queue): runs a detached worker trains, one after another ----------------------
    def queue_config(self, cfg: Config, sweeps: list[str]) -> int:
        """Queue ``cfg`` (a grid over ``sweeps``) and start a detached worker unless one runs; raises UserError
        for a bad sweep before anything is queued. Returns the number of entries."""
        from cifartui import queue

        entries = queue.add_entries(self.root, cfg, [], sweeps)
        note = "a worker is already training the queue"
        if not queue.worker_alive(self.root):
            pid = queue.start_detached_worker(self.root)
            note = f"worker pid {pid} trains them in the background (log: {queue.queue_dir(self.root) / queue.WORKER_LOG})"
        self.notify(f"queued {len(entries)} run{'s' if len(entries) > 1 else ''}: {note}", timeout=8)
        return len(entries)

    # Screens open each other through these (import-linter keeps screens from importing one another).
    def show_compare(self, run_dirs: list[Path]) -> None:
        from cifartui.tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(run_dirs))

    def show_drilldown(self, run_dir: Path, evaluation: "Evaluation", arrays, names: list[str], true: int,
                       pred: int, sets: list | None = None) -> None:
        from cifartui.tui.screens.drilldown import DrilldownScreen

        self.push_screen(DrilldownScreen(run_dir, evaluation, arrays, names, true, pred, sets=sets))

    def show_diff(self, runs: list[Path], epochs: tuple[int, int] | None = None) -> None:
        """Two runs' test (or val) evaluations, or two validation epochs of one run (``epochs``; None: the screen
        picks the best and the last)."""
        from cifartui.tui.screens.diff import DiffScreen

        self.push_screen(DiffScreen(runs, epochs=epochs))

    def show_sweep(self, sweep: str) -> None:
        from cifartui.tui.screens.sweep import SweepScreen

        self.push_screen(SweepScreen(self.root, sweep))

    def show_suspects(self, run_dir: Path, splits: tuple[str, ...] = ("train", "test")) -> None:
        """Labels cleanlab doubts, as a thumbnail grid where ``x`` marks images to leave out of training; the
        first of ``splits`` with stored probabilities is shown (the screen offers to evaluate otherwise)."""
        from cifartui.tui.screens.suspects import SuspectsScreen

        self.push_screen(SuspectsScreen(run_dir, splits))

    # -- class activation maps (g/G), one loaded best.pt per run, made on a worker thread -----------------
    def cam_maker(self, run_dir: Path) -> Any:
        """The run's best.pt ready for maps (commands/cam.py); made on the calling (worker) thread the first
        time, made again when best.pt changed (a run still training)."""
        from cifartui.commands.cam import CamMaker

        best = Path(run_dir) / "best.pt"
        key = (str(run_dir), best.stat().st_mtime_ns if best.exists() else 0)
        with self._cam_lock:
            maker = self._cam_makers.get(key)
            if maker is None:
                for old in [k for k in self._cam_makers if k[0] == key[0]]:  # this run's, before best.pt changed
                    self._cam_makers.pop(old).close()
                maker = CamMaker(Path(run_dir), self.root)
                if len(self._cam_makers) >= 2:  # a model each: keep the latest two runs'
                    self._cam_makers.pop(next(iter(self._cam_makers))).close()
                self._cam_makers[key] = maker
            return maker

    def cam_maker_ready(self, run_dir: Path) -> bool:
        # list(): a copy taken at once (the UI thread asks while a worker may add a maker); not the lock, which a
        # worker holds for the seconds that loading torch and best.pt take
        return any(k[0] == str(run_dir) for k in list(self._cam_makers))

    # -- samples (drilldown thumbnails), shared across drilldowns ------------------------------------
    def samples_cache(self, run_dir: Path, split: str, loader: Callable[[Path, str], Any]) -> Any:
        key = (str(run_dir), split)
        with self._samples_lock:
            if key in self._samples:
                return self._samples[key]
        images = loader(run_dir, split)
        with self._samples_lock:
            if len(self._samples) > 4:
                self._samples.clear()
            self._samples[key] = images
        return images

    # -- actions ----------------------------------------------------------------------------------------
    def action_mode(self, mode: str) -> None:
        if self.current_mode == mode and len(self.screen_stack) > 1:
            while len(self.screen_stack) > 1:
                self.pop_screen()
            return
        self.switch_mode(mode)

    def action_help(self) -> None:
        from cifartui.tui.screens.compare import CompareScreen
        from cifartui.tui.screens.config import ConfigScreen
        from cifartui.tui.screens.confusion import ConfusionScreen
        from cifartui.tui.screens.dashboard import DashboardScreen
        from cifartui.tui.screens.dialogs import HelpScreen
        from cifartui.tui.screens.diff import DiffScreen
        from cifartui.tui.screens.drilldown import DrilldownScreen
        from cifartui.tui.screens.runs import RunsScreen
        from cifartui.tui.screens.suspects import SuspectsScreen
        from cifartui.tui.widgets.confusion_matrix import ConfusionMatrix
        from cifartui.tui.widgets.thumbnails import ThumbGrid

        groups = [
            ("Everywhere", _rows(self.BINDINGS)),
            ("Config (e)", _rows([b for b in ConfigScreen.BINDINGS if b.action not in ConfigScreen.TYPING_ACTIONS])
             + [("f5", "Start (while typing in a field)"), ("ctrl+s", "Save as (while typing in a field)"),
                ("escape", "Leave the field"), ("tab / shift+tab", "Next / previous field"),
                ("space / enter", "Toggle a true/false field")]),
            ("Dashboard (d)", _rows(DashboardScreen.BINDINGS)),
            ("Confusion (c)", _rows(ConfusionScreen.BINDINGS) + _rows(ConfusionMatrix.BINDINGS, all_=True)
             + [("tab", "Matrix / pairs list"), ("enter on a pair", "Drill down")]),
            ("Drilldown", _rows(DrilldownScreen.BINDINGS) + _rows(ThumbGrid.BINDINGS, all_=True)),
            ("Suspects (s on Confusion)", _rows(SuspectsScreen.BINDINGS)),
            ("Runs (r)", _rows(RunsScreen.BINDINGS, all_=True) + [("click a header", "Sort by that column")]),
            ("Compare", _rows(CompareScreen.BINDINGS)),
            ("Diff (D on Runs)", _rows(DiffScreen.BINDINGS) + _rows(ConfusionMatrix.BINDINGS, all_=True)
             + [("tab", "Classes / matrix"), ("enter", "The flipped images of a class or cell")]),
        ]
        self.push_screen(HelpScreen(groups))

    async def action_quit(self) -> None:
        if not self.training:
            self.exit(0)
            return
        if self._quit_after_stop:
            self.notify("still saving last.pt; the app quits when that is done", severity="warning")
            return

        def answered(choice: str | None) -> None:
            if choice == "stop":
                self._quit_after_stop = True
                self.leaving = "stop"
                self.stop_training()
                self.notify("stopping after this step and saving last.pt; quitting when done", timeout=10)
            elif choice == "background":
                self.leave_training_in_background()

        from cifartui.tui.screens.dialogs import ConfirmScreen

        run = self.live.data.id if self.live else ""
        self.push_screen(ConfirmScreen(
            "Training is running",
            f"{run} is training.\n\n"
            "s  Stop and quit: stop after the current step (last.pt saved; resume later with R on the Runs screen)\n"
            "b  Keep training in the background: quit now, a detached process continues the run from this very "
            "step (its output goes to train.log; `cifartui` reattaches)\n"
            "escape  Cancel",
            [("stop", "Stop and quit"), ("background", "Keep training in the background"), ("cancel", "Cancel")],
            keys={"s": "stop", "b": "background", "c": "cancel"}), answered)

    def leave_training_in_background(self) -> None:
        """Quit now; :func:`run_app` waits for the step to end, then hands the run to a detached process."""
        self.leaving = "background"
        self.stop_training("handed off to a background process (it resumes from last.pt at this step)")
        self.exit(0)


def fine_tune_config(base: Config, run_dir: Path) -> Config:
    """A new run initialised from ``run_dir``'s best.pt, no pretrained download, lr lowered 10x."""
    name = base.name if base.name.endswith("-ft") else f"{base.name}-ft"
    return base.with_overrides(**{
        "model.checkpoint": str(run_dir / "best.pt"),
        "model.pretrained": False,
        "train.lr": base.train.lr / 10,
        "name": name[:80],
    })


def _rows(bindings, all_: bool = False) -> list[tuple[str, str]]:
    rows = []
    for b in bindings:
        if isinstance(b, tuple):
            b = Binding(*b)
        if not all_ and not b.show and b.key not in ("escape",):
            continue
        keys = b.key_display or ", ".join(_key_name(k) for k in b.key.split(","))
        rows.append((keys, b.description))
    return rows


def _key_name(key: str) -> str:
    return {"question_mark": "?", "plus": "+", "minus": "-", "equals_sign": "=", "slash": "/", "space": "space",
            "left_square_bracket": "[", "right_square_bracket": "]"}.get(key, key)


GRAPHICS_TERMINALS = ("kitty", "wezterm", "ghostty", "iterm", "konsole", "foot", "mlterm", "contour")


def _graphics_image_class(mode: str | None):
    """textual-image's widget when the terminal speaks a graphics protocol (kitty or sixel), else None.

    ``CIFARTUI_GRAPHICS=1`` asks the terminal, ``0`` never does; by default only terminals known to
    support one are asked (the query happens before Textual starts, see :func:`run_app`).
    """
    return _GRAPHICS.get("cls") if mode != "off" else None


_GRAPHICS: dict[str, Any] = {}


def detect_graphics(setting: str | None = None) -> str:
    """Import textual-image (it queries the terminal) only where a graphics protocol is plausible."""
    setting = (setting if setting is not None else os.environ.get("CIFARTUI_GRAPHICS", "auto")).lower()
    if setting in ("0", "off", "no", "false"):
        return "off"
    if setting == "auto":
        hints = " ".join(os.environ.get(k, "") for k in ("TERM", "TERM_PROGRAM", "LC_TERMINAL")).lower()
        known = any(t in hints for t in GRAPHICS_TERMINALS) or "KITTY_WINDOW_ID" in os.environ or "KONSOLE_VERSION" in os.environ
        if not known or "TMUX" in os.environ:
            return "off"
    try:
        from textual_image import renderable
        from textual_image.widget import Image as ImageWidget
    except Exception:
        return "off"
    protocol = renderable.Image.__module__.rsplit(".", 1)[-1]  # sixel | tgp | halfcell | unicode
    if protocol in ("sixel", "tgp"):
        _GRAPHICS["cls"] = ImageWidget
        return protocol
    return "off"


def run_app(config_path: str | None = None, run: str | None = None, root: str | None = "runs",
            overrides: Iterable[str] = ()) -> int:
    """Entry point of ``cifartui`` (see cli.cmd_app)."""
    if config_path is not None:  # a file, or a preset name (`cifartui configs`); UnknownConfig lists them
        from cifartui import presets

        config_path = str(presets.resolve(config_path))
        if not Path(config_path).is_file():
            raise UserError(f"--config: {config_path!r} is not a file. Give a YAML file or a preset name (cifartui configs).")
    if overrides:  # a bad --set stops here; a bad file opens in the form with its errors shown
        from cifartui import config as config_mod
        from cifartui.config import ConfigError

        source = config_path or find_demo_config()
        try:
            config_mod.load(source)
        except ConfigError:
            pass
        else:
            try:
                config_mod.load(source, list(overrides))
            except ConfigError as exc:
                raise UserError(str(exc)) from None
    graphics = detect_graphics()
    app = CifarApp(config_path=config_path, run=run, root=root, overrides=overrides, graphics=graphics)
    from cifartui.tui.hangup import HangupGuard, after_exit

    with HangupGuard(app):
        app.run()
        return after_exit(app, int(app.return_code or 0))
