"""The dashboard's GPU panel and the end-of-run alerts, on fixture runs (no torch).

The panel tests put a fake ``pynvml`` module (tests/fake_nvml.py) in place of the real one, so they hold on
any machine, with or without an NVIDIA driver: one fakes a machine without the driver, one shows the figures
and the "input-bound?" hint. The alerts test captures what the app writes to the terminal (Textual's headless
driver writes nowhere).
"""

from __future__ import annotations

import os
import sys

import pytest

import cifartui.tui.screens.dashboard as dashboard
from cifartui.config import Config
from cifartui.tui.widgets.gpu_panel import GpuPanel

from fake_nvml import FakeGpu, fake_pynvml
from support import pilot_wait_until
from testkit.runs import T0, RunWriter
from tui_support import make_app, settle

RUN = "20260101-120000-gpu"
PEAK = {"gpus": [{"index": 0, "name": "NVIDIA H200", "uuid": FakeGpu().uuid, "util_max": 99.0, "util_mean": 87.5,
                  "memory_used_max_mb": 41062.4, "memory_total_mb": 143771.0, "temperature_max_c": 71.0,
                  "power_max_w": 642.0}], "samples": 120, "seconds": 240.0}


def write_gpu_run(root, ended: bool = False, gpu_peak: dict | None = None) -> RunWriter:
    """A run on this host with CUDA and the fake GPU's UUID, by this (live) process; running unless ``ended``.
    Fixed event times: the snapshot shows times relative to the first event."""
    writer = RunWriter.new(root, RUN, Config().with_overrides(name="gpu"))
    writer.start(["a", "b"], name="gpu", device="cuda:0", device_name="NVIDIA H200", epochs=2, steps_per_epoch=10,
                 train_size=100, val_size=10, test_size=10, model="resnet18", dataset="cifar100", pid=os.getpid(),
                 environment={"gpus": [{"index": 0, "name": "NVIDIA H200", "uuid": FakeGpu().uuid}]}, at=T0)
    for s in (5, 10):
        writer.step(1, s, 10, loss=1.0, acc=0.5, lr=1e-3, images_per_second=900.0, at=T0 + s)
    writer.end_epoch(1, val_acc=0.45, train_loss=1.0, train_acc=0.5, val_loss=1.1, val_top5=1.0, lr=1e-3,
                     epoch_seconds=3.0, images_per_second=900.0, at=T0 + 11)
    writer.step(2, 5, 10, loss=0.9, acc=0.6, lr=1e-3, images_per_second=900.0, at=T0 + 16)
    if ended:
        writer.end("completed", "finished 2 epochs", epochs_done=2, gpu_peak=gpu_peak, at=T0 + 30)
        writer.close()
    return writer


def panel_text(app) -> str:
    return str(app.screen.query_one(GpuPanel).content)


@pytest.fixture
def fast_polls(monkeypatch):
    monkeypatch.setattr(dashboard, "GPU_INTERVAL", 0.05)


def polls_drawn(screen) -> list:
    """For each NVML poll the dashboard has drawn (on the UI thread): how many seconds of readings the
    "input-bound?" hint's window held then. A test awaits a poll instead of pausing for one."""
    drawn: list[float] = []
    draw = screen._show_gpu

    def counted(data, view):
        draw(data, view)
        history = screen._gpu._history
        drawn.append(history[-1][0] - history[0][0] if history else 0.0)

    screen._show_gpu = counted  # looked up on the instance by the poll's worker
    return drawn


async def test_without_nvml_the_dashboard_has_no_gpu_panel_and_no_error(tmp_path, fast_polls, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([], driver=False))
    writer = write_gpu_run(tmp_path / "runs")
    app = make_app(tmp_path / "runs", run=RUN)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        drawn = polls_drawn(screen)
        await pilot_wait_until(pilot, lambda: drawn, 20, what="a GPU poll to be answered and drawn")
        assert screen._gpu._tried and screen._gpu._nvml is None  # nvmlInit failed: no driver
        assert not screen.query_one(GpuPanel).display
        assert not [n for n in app._notifications if n.severity == "error"]
    writer.close()


async def test_fake_gpu_figures_and_the_input_bound_hint(tmp_path, fast_polls, monkeypatch):
    gpu = FakeGpu(util=97, used_mb=10240.0, total_mb=81920.0, temperature=61, power_w=250.0)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([gpu]))
    writer = write_gpu_run(tmp_path / "runs")
    app = make_app(tmp_path / "runs", run=RUN)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        screen._gpu.window = 0.5  # the hint's averaging window: 20 s in the app, half a second here
        drawn = polls_drawn(screen)
        await pilot_wait_until(pilot, lambda: "GPU0" in panel_text(app), 20, what="the fake GPU in the panel")
        text = panel_text(app)
        assert "NVIDIA H200" in text and "97%" in text and "10.0 / 80.0 GiB" in text and "61°C" in text and "250 W" in text
        # a poll drawn once the readings span enough of the window for a hint (GpuWatch: 3/4 of it)
        await pilot_wait_until(pilot, lambda: drawn and drawn[-1] >= 0.75 * screen._gpu.window, 20,
                               what="a poll drawn with readings over 3/4 of the window", detail=lambda: drawn[-3:])
        assert "input-bound?" not in panel_text(app)  # busy: no hint
        gpu.util = 20
        # once the window holds only the low readings (before that the mean mixes in the 97%)
        await pilot_wait_until(pilot, lambda: "input-bound? GPU busy only 20%" in panel_text(app), 20,
                               what="the input-bound hint at 20% busy", detail=lambda: panel_text(app))
    writer.close()


async def test_an_ended_run_shows_its_recorded_peaks(tmp_path):
    write_gpu_run(tmp_path / "runs", ended=True, gpu_peak=PEAK)
    app = make_app(tmp_path / "runs", run=RUN)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        panel = app.screen.query_one(GpuPanel)
        assert panel.display
        text = panel_text(app)
        assert "peak" in text and "util max 99% (mean 88%)" in text and "40.1 / 140.4 GiB" in text and "642 W" in text


@pytest.mark.parametrize("setting", ["on", "off"])
async def test_a_followed_run_that_ends_rings_and_sends_osc9(tmp_path, monkeypatch, setting):
    monkeypatch.setenv("CIFARTUI_ALERTS", setting)
    monkeypatch.delenv("TMUX", raising=False)
    writer = write_gpu_run(tmp_path / "runs")
    app = make_app(tmp_path / "runs", run=RUN)
    async with app.run_test(size=(160, 48)) as pilot:
        written: list[str] = []
        app._driver.write = written.append  # the headless driver writes nowhere: keep what the app sends
        assert app.following is not None
        writer.end("completed", "finished 2 epochs", epochs_done=2)
        await pilot_wait_until(pilot, lambda: app.following is None, 20, what="the app to see the followed run end")
        await pilot.pause()
        assert any(f"{RUN}: completed" in n.message for n in app._notifications)  # the in-app one, always
        alerts = [w for w in written if "\x1b]9;" in w or "\a" in w]
        if setting == "on":
            assert alerts == [f"\a\x1b]9;cifartui: {RUN}: completed\x07"]
        else:
            assert alerts == []
    writer.close()


def test_dashboard_with_recorded_gpu_peaks_snapshot(snap_compare, tmp_path, monkeypatch):
    import cifartui.tui.screens.dashboard as dash

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dash, "load_findings", lambda run_dir: ([], ""))
    write_gpu_run(tmp_path / "runs", ended=True, gpu_peak=PEAK)

    assert snap_compare(make_app("runs", run=RUN), terminal_size=(160, 48), run_before=settle)
