"""``cifartui export RUN --tensorboard DIR`` read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cifartui.cli import main
from cifartui.record import metrics
from cifartui.record.read_model import RunRecord
from cifartui.record.store import load_evaluation

from testkit.runs import REFERENCE_CLASSES, REFERENCE_EPOCHS, write_reference_run

STEPS = 4


@pytest.fixture
def run(tmp_path):
    return write_reference_run(tmp_path / "runs", steps=STEPS)


def read_back(folder) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every scalar
    acc.Reload()
    return acc


def test_one_scalar_per_epoch_and_step_with_per_class_and_hparams(run, tmp_path, capsys):
    assert main(["export", str(run), "--tensorboard", str(tmp_path / "tb")]) == 0
    assert "view: tensorboard --logdir" in capsys.readouterr().err
    acc = read_back(tmp_path / "tb" / run.name)
    record = RunRecord.read(run)
    for tag, field in (("val/acc", "val_acc"), ("train/loss", "train_loss"), ("lr", "lr")):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [e.epoch * STEPS for e in record.epochs], tag
        assert np.allclose([e.value for e in events], [getattr(e, field) for e in record.epochs]), tag
    assert len(acc.Scalars("step/loss")) == len(record.steps) == STEPS * len(record.epochs)
    assert [e.step for e in acc.Scalars("step/loss")] == list(range(1, STEPS * len(record.epochs) + 1))
    test = record.test
    assert [e.value for e in acc.Scalars("test/acc")] == pytest.approx([test.top1])
    per_class = metrics.per_class_accuracy(load_evaluation(run, test.file)["confusion"])
    for name, expected in zip(REFERENCE_CLASSES, per_class):
        (event,) = acc.Scalars(f"per_class_acc/test/{name}")
        assert event.value == pytest.approx(expected)
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(acc.PluginTagToContent("hparams"))
    assert acc.Scalars("hparam/best_val_acc")[0].value == pytest.approx(record.best.val_acc)


def test_exporting_again_replaces_the_event_files(run, tmp_path):
    for _ in range(2):
        assert main(["export", str(run), "--tensorboard", str(tmp_path / "tb")]) == 0
    acc = read_back(tmp_path / "tb" / run.name)
    assert len(acc.Scalars("val/acc")) == len(RunRecord.read(run).epochs)  # not twice


def test_missing_tensorboard_says_how_to_install_it(run, tmp_path, monkeypatch, capsys):
    # tensorboard is installed here: its absence is simulated (an import of a None module raises ImportError)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    assert main(["export", str(run), "--tensorboard", str(tmp_path / "tb")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'cifartui[tensorboard]'" in err and "not installed" in err
    assert not (tmp_path / "tb").exists()


def test_a_mixup_run_exports_without_train_accuracy(tmp_path):
    # Mixup/CutMix record no train accuracy (train_acc and step acc None): those tags are left out, the rest go in
    epochs = [(e, None, va, tl, vl) for e, _tr, va, tl, vl in REFERENCE_EPOCHS]
    run = write_reference_run(tmp_path / "runs", epochs=epochs, steps=2)
    assert main(["export", str(run), "--tensorboard", str(tmp_path / "tb")]) == 0
    acc = read_back(tmp_path / "tb" / run.name)
    tags = set(acc.Tags()["scalars"])
    assert "train/acc" not in tags and "step/acc" not in tags
    assert len(acc.Scalars("train/loss")) == len(acc.Scalars("val/acc")) == len(REFERENCE_EPOCHS)
    assert len(acc.Scalars("step/loss")) == 2 * len(REFERENCE_EPOCHS)
