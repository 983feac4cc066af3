"""The app's pure parts: run state from events, the bridge's coalescing, half-block images, form parsing."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

from cifartui.config import Config
from cifartui.record.events import EpochEnd, Log, RunStarted, Step
from cifartui.record.store import EventFollower
from cifartui.tui.bridge import EventsReady, TrainingBridge
from cifartui.tui.rundata import RunData, downsample
from cifartui.tui.widgets.config_form import FieldError, parse_text, schema_fields
from cifartui.tui.widgets.thumbnails import halfblock_strips, resize


def test_app_import_does_not_load_torch_pydantic_or_numpy():
    # the first frame pays only for Textual: torch loads on the training thread, the rest with their screens
    code = ("import sys, cifartui.tui.app, cifartui.cli; "
            "bad = [m for m in ('torch', 'timm', 'torchvision', 'pydantic', 'numpy', 'plotext') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_rundata_from_fixture_run(fixture_root):
    path = fixture_root / "20250602-093000-cifar10-resnet18"
    data = RunData(path)
    data.apply_all(EventFollower(path).poll())
    assert data.status == "completed"
    assert len(data.epochs) == 6 and data.best_epoch.epoch == 6
    assert [e.split for e in data.evaluations].count("val") == 6 and data.evaluations[-1].split == "test"
    p = data.progress()
    assert p.fraction == 1.0 and p.eta_seconds is None and p.epoch == 6
    xs, ys = data.step_series("loss")
    assert xs[0] == pytest.approx(0.25) and len(xs) == 6 * 4
    assert data.relative_time(data.first_time + 75) == "+1:15"


def test_progress_and_eta_come_from_event_times():
    data = RunData()
    data.apply(RunStarted(run_id="r", name="r", device="cpu", num_classes=2, class_names=["a", "b"], epochs=4,
                          steps_per_epoch=10, train_size=1, val_size=1, test_size=1, time=100.0).to_dict())
    assert data.progress().step == 0 and data.progress().fraction == 0.0
    data.apply(Step(epoch=1, step=2, steps=10, loss=1, acc=0.5, lr=0.1, images_per_second=50, time=110.0).to_dict())
    data.apply(Step(epoch=1, step=4, steps=10, loss=1, acc=0.5, lr=0.1, images_per_second=50, time=114.0).to_dict())
    p = data.progress()
    assert p.fraction == pytest.approx(0.1) and p.images_per_second == 50
    assert p.eta_seconds == pytest.approx(0.9 * 4 * 10 * 2.0)  # 2 s per step from the two step events
    data.apply(EpochEnd(epoch=1, train_loss=1, train_acc=0.5, val_loss=1, val_acc=0.5, val_top5=1, lr=0.1,
                        epoch_seconds=30.0, images_per_second=40, time=140.0).to_dict())
    assert data.progress().eta_seconds == pytest.approx(3 * 30.0)


def test_resume_drops_epochs_that_will_be_redone():
    data = RunData()
    start = dict(run_id="r", name="r", device="cpu", num_classes=2, class_names=["a", "b"], epochs=4,
                 steps_per_epoch=10, train_size=1, val_size=1, test_size=1)
    data.apply(RunStarted(**start).to_dict())
    for e in (1, 2, 3):
        data.apply(EpochEnd(epoch=e, train_loss=1, train_acc=0.5, val_loss=1, val_acc=0.1 * e, val_top5=1, lr=0.1,
                            epoch_seconds=1, images_per_second=1).to_dict())
    data.apply({"type": "run_ended", "status": "stopped", "reason": "stopped by request"})
    assert data.status == "stopped"
    data.apply(RunStarted(**start, resumed_from_epoch=3).to_dict())
    assert [e.epoch for e in data.epochs] == [1, 2] and data.status == "running"


def test_downsample_keeps_length_and_shape():
    xs = list(range(10_000))
    ys = [float(x % 100) for x in xs]
    dx, dy = downsample(xs, ys, 200)
    assert len(dx) == 200 and dx[0] < dx[-1]
    assert downsample(xs[:50], ys[:50], 200) == (xs[:50], ys[:50])


def test_step_series_grows_with_new_steps_and_forgets_redone_epochs():
    data = RunData()
    start = dict(run_id="r", name="r", device="cpu", num_classes=2, class_names=["a", "b"], epochs=3,
                 steps_per_epoch=100, train_size=1, val_size=1, test_size=1)
    data.apply(RunStarted(**start).to_dict())

    def steps(epoch, n, offset=0.0):
        for s in range(1, n + 1):
            data.apply(Step(epoch=epoch, step=s, steps=100, loss=offset + s, acc=0.5, lr=0.1,
                            images_per_second=1).to_dict())

    steps(1, 100)
    steps(2, 40)
    xs, ys = data.step_series("loss")
    assert len(xs) == 140 and xs[-1] == pytest.approx(1.4) and ys[-1] == 40
    steps(2, 10, offset=1000)  # more steps arrive: the same series grows
    xs, ys = data.step_series("loss")
    assert len(xs) == 150 and ys[-1] == 1010
    # downsampled from prefix sums == bucket means of the whole series
    (fx, fy), (sx, sy) = data.step_series("loss", 30), downsample(xs, ys, 30)
    assert fx == pytest.approx(sx) and fy == pytest.approx(sy) and fy != sy[::-1]
    assert len(data.step_series("loss", 30)[0]) == 30
    # a resume from epoch 2 redoes it: its old steps leave the series
    data.apply(RunStarted(**start, resumed_from_epoch=2).to_dict())
    steps(2, 5, offset=500)
    xs, ys = data.step_series("loss")
    assert len(xs) == 105 and ys[99] == 100 and ys[100:] == [501, 502, 503, 504, 505]


def test_bridge_coalesces_wakeups_and_keeps_every_event():
    posted: list = []
    bridge = TrainingBridge(posted.append)

    def produce():
        for i in range(5000):
            bridge(Step(epoch=1, step=i, steps=5000, loss=1.0, acc=0.0, lr=0.1, images_per_second=1.0))
        bridge(Log(message="done"))

    t = threading.Thread(target=produce)
    t.start()
    t.join()
    # nobody drained: one wake-up stands for all of them, and nothing was lost
    assert len(posted) == 1 and isinstance(posted[0], EventsReady)
    events = bridge.drain()
    assert len(events) == 5001 and events[-1]["message"] == "done"
    assert [e["step"] for e in events[:3]] == [0, 1, 2]
    bridge(Log(message="again"))
    assert len(posted) == 2
    assert posted[1].can_replace(posted[0])


def test_bridge_lets_steps_wait_for_the_heartbeat_and_wakes_the_ui_for_the_rest():
    posted: list = []
    bridge = TrainingBridge(posted.append)
    for i in range(100):
        bridge(Step(epoch=1, step=i, steps=100, loss=1.0, acc=0.0, lr=0.1, images_per_second=1.0))
    assert posted == [] and len(bridge) == 100  # a step never wakes the UI thread
    bridge(EpochEnd(epoch=1, train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=0.5, val_top5=0.9, lr=0.1,
                    epoch_seconds=1.0, images_per_second=1.0))
    assert len(posted) == 1  # an epoch does, and the steps before it drain with it, in order
    events = bridge.drain()
    assert [e["type"] for e in events] == ["step"] * 100 + ["epoch"] and len(bridge) == 0


def test_halfblock_rendering():
    img = np.zeros((32, 32, 3), np.uint8)
    img[:16] = (255, 0, 0)
    img[16:] = (0, 0, 255)
    strips = halfblock_strips(img, 16)
    assert len(strips) == 8 and all(s.cell_length == 16 for s in strips)
    top = list(strips[0])[0]
    assert top.text.startswith("▀") and top.style.color.triplet == (255, 0, 0)
    bottom = list(strips[-1])[0]
    assert bottom.style.bgcolor.triplet == (0, 0, 255)
    assert resize(np.zeros((64, 64, 3), np.uint8), 16).shape == (16, 16, 3)
    assert resize(np.zeros((30, 20, 3), np.uint8), 8).shape == (8, 8, 3)


def test_form_fields_follow_the_schema():
    specs = {s.path: s for s in schema_fields()}
    assert specs["train.optimizer"].kind == "choice" and set(specs["train.optimizer"].choices) == {"adam", "adamw", "sgd"}
    assert specs["data.download"].kind == "bool"
    assert specs["train.lr"].kind == "float" and "> 0" in specs["train.lr"].hint
    assert specs["model.checkpoint"].optional
    assert specs["model.pretrained"].kind == "boolstr"
    assert parse_text(specs["train.lr"], "3e-4") == pytest.approx(3e-4)
    assert parse_text(specs["train.epochs"], "10") == 10
    assert parse_text(specs["model.checkpoint"], "") is None
    assert parse_text(specs["model.pretrained"], "False") is False
    assert parse_text(specs["model.pretrained"], "a1_in1k") == "a1_in1k"
    assert parse_text(specs["data.classes"], "boy, girl") == ["boy", "girl"]
    with pytest.raises(FieldError):
        parse_text(specs["train.epochs"], "2.5")
    with pytest.raises(FieldError):
        parse_text(specs["train.lr"], "fast")


def test_fine_tune_config(tmp_path):
    from cifartui.tui.app import fine_tune_config

    base = Config().with_overrides(**{"name": "c100", "train.lr": 1e-3, "model.pretrained": True})
    cfg = fine_tune_config(base, tmp_path / "run1")
    assert cfg.model.checkpoint == str(tmp_path / "run1" / "best.pt")
    assert cfg.model.pretrained is False
    assert cfg.train.lr == pytest.approx(1e-4)
    assert cfg.name == "c100-ft"
