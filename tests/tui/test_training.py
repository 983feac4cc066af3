"""Training from the app for real (tiny synthetic runs on the CPU), stop, quit, a crash, and following a
run another process writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support import pilot_wait_until, wait_until
from tui_support import make_app, text_of

from cifartui.tui.screens.confusion import ConfusionScreen
from cifartui.tui.screens.dashboard import DashboardScreen
from cifartui.tui.screens.dialogs import ConfirmScreen
from cifartui.tui.screens.runs import RunsScreen
from cifartui.tui.widgets.run_panels import MetricsTable


def _write(cfg, path: Path) -> Path:
    path.write_text(cfg.to_yaml())
    return path


def _config_app(tmp_path: Path, cfg):
    """The app opened on ``cfg`` (written to tiny.yaml), writing runs under tmp_path/runs."""
    return make_app(tmp_path / "runs", config_path=_write(cfg, tmp_path / "tiny.yaml"))


async def _start(pilot):
    """Leave any field and press s on the Config screen; the run this app now trains."""
    await pilot.pause()
    await pilot.press("escape", "s")
    return pilot.app.live


@pytest.mark.slow
async def test_training_started_from_the_app_reaches_the_finished_state(tmp_path, tiny_config):
    notified = tmp_path / "notified"  # output.notify runs for a run the app trains, as for a headless one
    cfg = tiny_config(**{"output.notify": f'printf "%s %s" "$CIFARTUI_RUN" "$CIFARTUI_STATUS" > {notified}'})
    app = _config_app(tmp_path, cfg)
    async with app.run_test(size=(160, 48)) as pilot:
        live = await _start(pilot)
        await pilot.pause()
        # not app.training: with torch already imported, a tiny run may be over before this line runs
        assert isinstance(app.screen, DashboardScreen) and live is not None
        await pilot_wait_until(pilot, lambda: live.finished, 120, what="the run to finish",
                               detail=lambda: live.data.logs[-5:])
        data = live.data
        assert data.status == "completed", (data.error, data.logs[-5:])
        assert data.run_dir is not None and (data.run_dir / "best.pt").exists() and (data.run_dir / "last.pt").exists()
        assert len(data.epochs) == 1 and data.steps, "step events reached the UI"
        assert notified.read_text() == f"{data.run_dir.name} completed"
        await pilot_wait_until(pilot, lambda: "★1" in text_of(app.screen.query_one(MetricsTable)), 10,
                               what="the metrics table to mark epoch 1 best")
        assert app.screen.query_one("#run-header").content is not None
        # the finished run is on the Runs screen and its confusion matrix opens
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        assert [(r.id, r.status) for r in app.screen.shown] == [(data.run_dir.name, "completed")]
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, ConfusionScreen) and app.screen.arrays["confusion"].shape == (4, 4)


@pytest.mark.slow
async def test_quit_while_training_asks_stops_and_exits_then_resume(tmp_path, tiny_config):
    cfg = tiny_config(**{"data.train_size": 800, "train.epochs": 50, "train.batch_size": 32})
    app = _config_app(tmp_path, cfg)
    async with app.run_test(size=(160, 48)) as pilot:
        live = await _start(pilot)
        await pilot_wait_until(pilot, lambda: live.data.steps, 120, what="the first steps in the app",
                               detail=lambda: live.data.logs[-5:])
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen) and not live.stop.is_set()
        await pilot.click("#stop")
        assert live.stop.is_set()
        await pilot_wait_until(pilot, lambda: live.finished, 60, what="the stopped run to end")
        await pilot_wait_until(pilot, lambda: app.return_code is not None, 10,
                               what="the app to quit once the stopped run ended")
    assert app.return_code == 0
    assert live.data.status == "stopped" and (live.data.run_dir / "last.pt").exists()
    run_dir = live.data.run_dir
    stopped_in = len(live.data.epochs) + 1  # the epoch the stop cut short

    # resume it from the Runs screen, finishing sooner (train.epochs may change on a resume)
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen) and app.screen.shown[0].status == "stopped"
        await pilot.press("R")
        await pilot.pause()
        screen = app.screen
        assert screen.resume_dir == run_dir
        screen.query_one("#f-train--epochs").value = str(stopped_in)  # finish the cut epoch, then test
        live = await _start(pilot)
        assert live.resume_dir == run_dir
        await pilot_wait_until(pilot, lambda: live.finished, 120, what="the resumed run to finish",
                               detail=lambda: live.data.logs[-5:])
        await pilot.pause()
        assert live.data.status == "completed", (live.data.error, live.data.logs[-5:])
        assert live.data.started.resumed_from_epoch == stopped_in
        assert [e.epoch for e in live.data.epochs][-1] == stopped_in
        assert any("Resumed from" in e["message"] for e in live.data.logs)
    from cifartui.record.store import list_runs

    assert [(r.id, r.status) for r in list_runs(tmp_path / "runs")] == [(run_dir.name, "completed")]


def _fake_trainer(monkeypatch, behaviour):
    """session.train replaced by ``behaviour(cfg, store, sinks, stop)``; preflight (torch) skipped."""
    import cifartui.session as session

    fake = type(sys)("cifartui.preflight")
    fake.preflight = lambda cfg: None
    monkeypatch.setitem(sys.modules, "cifartui.preflight", fake)

    def train(cfg, store, sinks=(), stop=None, resume_dir=None):
        emit = lambda e: [sink(e) for sink in [store, *sinks]]  # noqa: E731
        try:
            return behaviour(cfg, store, emit, stop)
        finally:
            store.close()

    monkeypatch.setattr(session, "train", train)


def _started(store):
    from cifartui.record.events import RunStarted

    return RunStarted(run_id=store.id, name="fake", device="cpu", num_classes=2, class_names=["a", "b"],
                      epochs=1, steps_per_epoch=10_000, train_size=1, val_size=1, test_size=1)


async def test_stop_key_and_keep_training(tmp_path, tiny_config, monkeypatch):
    from cifartui.record.events import RunEnded, Step

    import threading

    finish = threading.Event()  # the test lets the stopped run end once it has seen "stopping"

    def until_stopped(cfg, store, emit, stop):
        emit(_started(store))
        step = 0
        while not stop.is_set():
            step += 1
            emit(Step(epoch=1, step=step, steps=10_000, loss=1.0, acc=0.5, lr=0.1, images_per_second=100.0))
            stop.wait(0.2)  # paces the fake trainer like a slow step; ends the wait at once when stopped
        finish.wait(30)
        ended = RunEnded(status="stopped", reason="stopped by request; resume with --resume")
        emit(ended)
        return ended

    _fake_trainer(monkeypatch, until_stopped)
    app = _config_app(tmp_path, tiny_config())
    async with app.run_test(size=(160, 48)) as pilot:
        live = await _start(pilot)
        await pilot_wait_until(pilot, lambda: len(live.data.steps) > 3, 30, what="four steps in the app")
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")  # keep training
        assert app.training and not live.stop.is_set() and isinstance(app.screen, DashboardScreen)
        await pilot.press("s")  # not the config screen: nothing happens
        await pilot.press("x")
        assert live.stop.is_set()
        assert "stopping after this step" in text_of(app.screen.query_one("#run-header"))  # at once, not next heartbeat
        finish.set()
        await pilot_wait_until(pilot, lambda: live.finished, 30, what="the stopped run to end")
        await pilot.pause()
        assert live.data.status == "stopped"
        await pilot.press("q")  # nothing trains now: quits without asking
    assert app.return_code == 0


async def test_a_dataset_download_shows_its_progress_in_the_app(tmp_path, tiny_config, monkeypatch):
    import threading

    from cifartui.record.events import Log, RunEnded
    from cifartui.tui.widgets.run_panels import TrainProgress

    at_40, go_on = threading.Event(), threading.Event()

    def downloading(cfg, store, emit, stop):  # what core.data.download emits, paused at 40%
        for pct in (10, 20, 30, 40):
            emit(Log(message=f"Downloading CIFAR-100: {pct}% of 161 MB", progress=pct / 100))
        at_40.set()
        go_on.wait(30)
        emit(_started(store))
        emit(RunEnded(status="completed", reason="done"))

    _fake_trainer(monkeypatch, downloading)
    app = _config_app(tmp_path, tiny_config())
    async with app.run_test(size=(160, 48)) as pilot:
        live = await _start(pilot)
        await pilot_wait_until(pilot, lambda: at_40.is_set() and live.data.task is not None
                               and live.data.task[1] == 0.4, 30, what="the download at 40% in the app's data")
        # the panels refresh on the app's heartbeat, at most once per panel_interval
        await pilot_wait_until(pilot, lambda: "40% of 161 MB" in text_of(app.screen.query_one(TrainProgress)), 5,
                               what="the progress panel to show the download at 40%")
        bar = text_of(app.screen.query_one(TrainProgress))
        assert "Downloading CIFAR-100: 40% of 161 MB" in bar and "━" in bar
        assert "Downloading CIFAR-100: 40%" in text_of(app.screen.query_one("#run-header"))
        go_on.set()
        await pilot_wait_until(pilot, lambda: live.finished, 30, what="the run after the download to end")
        await pilot.pause()
        assert live.data.task is None and "Downloading" not in text_of(app.screen.query_one(TrainProgress))


async def test_a_crash_in_training_shows_in_the_app(tmp_path, tiny_config, monkeypatch):
    from cifartui.record.events import RunEnded

    def exploding(cfg, store, emit, stop):
        emit(_started(store))
        emit(RunEnded(status="failed", reason="RuntimeError: boom in the forward pass"))
        raise RuntimeError("boom in the forward pass")

    _fake_trainer(monkeypatch, exploding)
    cfg = tiny_config()
    app = _config_app(tmp_path, cfg)
    async with app.run_test(size=(160, 48)) as pilot:
        live = await _start(pilot)
        await pilot_wait_until(pilot, lambda: live.finished, 30, what="the crashing run to end")
        await pilot.pause()
        assert live.data.status == "failed"
        box = app.screen.query_one("#run-error")
        assert box.display and "boom in the forward pass" in text_of(box)
        assert any("boom" in n.message for n in app._notifications)
        assert any("Traceback" in e["message"] or "RuntimeError" in e["message"] for e in live.data.logs)
        assert not app.training  # a new run may start
    from cifartui.record.store import list_runs

    assert [r.status for r in list_runs(tmp_path / "runs")] == ["failed"]


async def test_a_config_error_before_start_shows_in_the_app(tmp_path, tiny_config):
    cfg = tiny_config(**{"data.source": "imagefolder", "data.root": str(tmp_path / "missing")})
    app = _config_app(tmp_path, cfg)
    async with app.run_test(size=(160, 48)) as pilot:
        live = await _start(pilot)
        await pilot_wait_until(pilot, lambda: live.finished, 60, what="the refused run to end")
        await pilot.pause()
        assert live.data.error is not None and "data.root" in live.data.error["message"]
        assert "data.root" in text_of(app.screen.query_one("#run-error"))
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())  # no run folder


async def test_follow_a_run_another_process_writes(tmp_path):
    root = tmp_path / "runs"
    run_id = "20250101-000000-writer"
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "writer.py"), str(root), run_id])
    try:
        wait_until(lambda: (root / run_id / "ready").exists(), 60, what="writer.py to write its first epoch")
        app = make_app(root)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            # the one live run under the root: the app opens on it (reattach), no --run needed
            assert isinstance(app.screen, DashboardScreen)
            assert app.following is not None and app.current.status == "running"
            assert len(app.current.epochs) == 1
            assert "following pid" in text_of(app.screen.query_one("#run-header"))
            await pilot.press("x")  # another process trains it: asks first, escape changes nothing
            await pilot_wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, what="the stop dialog")
            assert "trained by pid" in text_of(app.screen.query_one(".dialog-body"))
            await pilot.press("escape")
            await pilot.pause()
            assert not (root / run_id / "stop.request").exists()
            (root / run_id / "go").write_text("1")
            # the app stops following once it has read the run's end (and shows it in the same call)
            await pilot_wait_until(pilot, lambda: app.following is None, 30, what="the app to see the followed run end")
            assert app.current.status == "completed" and len(app.current.epochs) == 2
            assert "★2" in text_of(app.screen.query_one(MetricsTable))
    finally:
        proc.wait(timeout=30)
