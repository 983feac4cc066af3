"""The queue from the app: a sweep added on the Config screen, trained by a real detached worker, shown on the
Runs screen and side by side on the Sweep screen."""

from __future__ import annotations

import os
import signal

import pytest
from textual.widgets import DataTable, Input, Static

from support import pilot_wait_until
from tui_support import make_app

from cifartui import queue
from cifartui.tui.screens.dialogs import QueueScreen
from cifartui.tui.screens.runs import RunsScreen
from cifartui.tui.screens.sweep import SweepScreen


def _write(cfg, path):
    path.write_text(cfg.to_yaml())
    return path


def _stop_workers(root) -> None:
    """A failed test must not leave a detached worker training."""
    for f in (queue.queue_dir(root) / queue.WORKERS_DIR).glob("*.json"):
        pid = int(f.stem.rsplit("-", 1)[-1])
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


async def queue_with_sweep(pilot, sweep: str) -> None:
    """On the Config screen: a, type the sweep, enter."""
    await pilot.pause()
    await pilot.press("escape", "a")
    await pilot_wait_until(pilot, lambda: isinstance(pilot.app.screen, QueueScreen), 5, what="the queue dialog")
    pilot.app.screen.query_one(Input).value = sweep
    await pilot.press("enter")
    await pilot.pause()


async def test_a_bad_sweep_keeps_the_dialog_open_and_queues_nothing(tmp_path, tiny_config):
    root = tmp_path / "runs"
    app = make_app(root, config_path=_write(tiny_config(), tmp_path / "tiny.yaml"))
    async with app.run_test(size=(160, 48)) as pilot:
        await queue_with_sweep(pilot, "train.lrr=0.1,0.2")
        assert isinstance(app.screen, QueueScreen), "a refused sweep must keep the dialog open"
        assert "did you mean" in str(app.screen.query_one("#queue-error", Static).content).lower()
    assert queue.list_entries(root) == []


@pytest.mark.slow
async def test_a_sweep_queued_in_the_app_is_trained_in_the_background_and_compared(tmp_path, tiny_config):
    root = tmp_path / "runs"
    app = make_app(root, config_path=_write(tiny_config(), tmp_path / "tiny.yaml"))
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await queue_with_sweep(pilot, "train.lr=0.001,0.003")
            entries = queue.list_entries(root)
            assert [e.overrides for e in entries] == [{"train.lr": 0.001}, {"train.lr": 0.003}]
            assert any("queued 2 runs" in n.message for n in app._notifications)
            # the app started a worker (its file appears once Python has started): nothing trains in this process
            await pilot_wait_until(pilot, lambda: queue.worker_alive(root), 60, what="the detached worker's file")
            assert app.live is None

            await pilot.press("r")
            screen = app.screen
            assert isinstance(screen, RunsScreen)
            # polled every half second: the worker trains on the same CPUs
            await pilot_wait_until(pilot, lambda: all(e.state == "done" for e in queue.list_entries(root)), 180,
                                   what="the worker to train both entries", every=0.5,
                                   detail=lambda: queue.list_entries(root))
            assert [e.state for e in queue.list_entries(root)] == ["done", "done"], queue.list_entries(root)
            screen.reload()
            await pilot.pause()
            assert not screen.query_one("#runs-queue").display  # nothing pending or running any more
            assert len(screen.shown) == 2 and {r.name for r in screen.shown} == {"tiny-lr0.001", "tiny-lr0.003"}
            await pilot.press("w")
            await pilot_wait_until(pilot, lambda: isinstance(app.screen, SweepScreen), 5, what="the Sweep screen")
            table = app.screen.query_one(DataTable)
            assert table.row_count == 2 and [str(c.label) for c in table.columns.values()][-1] == "train.lr"
            best = [r["best_val_acc"] for r in app.screen.rows]
            assert best == sorted(best, reverse=True)
    finally:
        _stop_workers(root)


async def test_the_runs_screen_lists_pending_queue_entries(tmp_path, tiny_config):
    root = tmp_path / "runs"
    cfg_path = _write(tiny_config(), tmp_path / "tiny.yaml")
    (entry,) = queue.add_entries(root, cfg_path, ["train.epochs=2"])
    app = make_app(root)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("r")
        await pilot.pause()
        panel = app.screen.query_one("#runs-queue", Static)
        assert panel.display
        text = str(panel.content)
        assert "0 running, 1 pending" in text and entry.id in text and "train.epochs=2" in text
