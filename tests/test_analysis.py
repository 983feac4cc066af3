"""Findings on fixture runs whose figures are known by hand (testkit.runs.write_reference_run and
write_cifar100_run, no training)."""

import math
import os

import numpy as np
import pytest

from cifartui import analysis
from cifartui.record import metrics
from testkit.runs import (REFERENCE_CONFUSION, RunWriter, cifar100_confusion, write_cifar100_run,
                          write_reference_run)


@pytest.fixture
def ref_run(tmp_path):
    return write_reference_run(tmp_path / "runs")


def by_kind(found):
    return {f.kind: f for f in found}


# -- metrics additions --------------------------------------------------------------------------------
def test_group_figures_by_hand():
    groups = np.array([0, 0, 1, 1, 2, 3])  # people, people, trees, trees, fruit, vehicles
    g = {s.group: s for s in metrics.grouped(REFERENCE_CONFUSION, groups)}
    assert g[0].support == 40 and g[0].accuracy == pytest.approx(27 / 40) and g[0].group_accuracy == pytest.approx(37 / 40)
    assert g[1].accuracy == pytest.approx(31 / 40) and g[1].group_accuracy == pytest.approx(38 / 40)
    assert g[2].accuracy == 1.0 and g[3].classes == [5]
    # errors: 22; within people 6 + 4, within trees 5 + 2
    assert metrics.errors_within_groups(REFERENCE_CONFUSION, groups) == (17, 5)
    # classes in no group count as their own group: nothing is "within" then
    assert metrics.errors_within_groups(REFERENCE_CONFUSION, np.full(6, -1)) == (0, 22)


# -- findings -----------------------------------------------------------------------------------------
def test_findings_of_the_reference_run_equal_hand_figures(ref_run):
    found = analysis.findings(ref_run)
    f = by_kind(found)
    assert found[0].kind == "overfitting" and found[0].severity == "warning"  # warnings first
    assert [x.severity for x in found] == sorted((x.severity for x in found), key=analysis.SEVERITIES.index)

    ov = f["overfitting"].figures
    assert ov["gap"] == pytest.approx(0.99 - 0.78) and ov["threshold"] == 0.10 and ov["epoch"] == 5
    assert (ov["min_val_loss"], ov["min_val_loss_epoch"], ov["last_val_loss"]) == (0.8, 3, 0.95)
    assert "99.0%" in f["overfitting"].text and "78.0%" in f["overfitting"].text and "21.0 points" in f["overfitting"].text

    gap = f["generalisation_gap"].figures
    assert gap["train_val_gap"] == pytest.approx(0.21) and gap["test_acc"] == pytest.approx(98 / 120)
    assert gap["test_epoch"] == 3

    es = f["early_stopping"].figures
    assert es == {"stopped_after_epoch": 5, "epochs": 10, "patience": 2, "best_epoch": 3, "best_val_acc": 0.80,
                  "epochs_skipped": 5}
    assert "after epoch 5 of 10" in f["early_stopping"].text

    be = f["best_epoch"].figures
    assert (be["best_epoch"], be["last_epoch"]) == (3, 5) and be["drop"] == pytest.approx(0.02)
    assert "still_improving" not in f and "lr_too_high_for_fine_tuning" not in f and "status" not in f

    # per-class figures come from the test evaluation, not the (later) val ones
    assert f["near_perfect_classes"].figures["classes"] == {"orange": 1.0, "motorcycle": 1.0}
    assert f["near_perfect_classes"].figures["split"] == "test" and f["near_perfect_classes"].severity == "good"
    assert f["weak_classes"].figures["classes"] == pytest.approx({"boy": 0.60, "maple_tree": 0.70, "girl": 0.75})

    pairs = f["confused_pairs"].figures["pairs"]  # a pair and its reverse count once
    assert pairs == [
        {"true": "boy", "pred": "girl", "count": 6, "share": 0.30, "reverse": 4},
        {"true": "maple_tree", "pred": "oak_tree", "count": 5, "share": 0.25, "reverse": 2},
        {"true": "boy", "pred": "orange", "count": 1, "share": 0.05, "reverse": 0},
    ]
    sc = f["superclass_confusions"].figures
    assert (sc["errors"], sc["within"], sc["across"]) == (22, 17, 5)
    assert sc["within_share"] == pytest.approx(17 / 22) and sc["top_superclasses"] == ["people", "trees"]
    assert "17 (77.3%)" in f["superclass_confusions"].text


def test_most_confused_pairs_of_the_fixture():
    pairs = metrics.most_confused(REFERENCE_CONFUSION, 15)
    assert [(p.true, p.pred, p.count, p.reverse) for p in pairs] == [
        (0, 1, 6, 4), (2, 3, 5, 2), (1, 0, 4, 6), (3, 2, 2, 5),
        (0, 4, 1, 0), (0, 5, 1, 0), (1, 5, 1, 0), (2, 4, 1, 0), (3, 5, 1, 0)]
    assert pairs[0].share == pytest.approx(6 / 20)


def test_split_can_be_chosen(ref_run):
    f = by_kind(analysis.findings(ref_run, split="val"))
    assert f["confused_pairs"].figures["pairs"] == [{"true": "boy", "pred": "girl", "count": 1, "share": 1 / 21,
                                                     "reverse": 0}]
    assert "superclass_confusions" in f and f["superclass_confusions"].figures["within"] == 1


def test_no_overfitting_below_the_threshold_and_still_improving(tmp_path):
    epochs = [(1, 0.50, 0.48, 1.5, 1.5), (2, 0.60, 0.55, 1.2, 1.3), (3, 0.68, 0.60, 1.0, 1.1)]
    run = write_reference_run(tmp_path, epochs=epochs, status="completed", planned=3)
    f = by_kind(analysis.findings(run))
    assert "overfitting" not in f  # gap 8 points < 10
    assert f["generalisation_gap"].figures["train_val_gap"] == pytest.approx(0.08)
    assert f["still_improving"].figures["gain"] == pytest.approx(0.05)
    assert "early_stopping" not in f and "best_epoch" not in f


def test_fine_tuning_lr_against_the_checkpoint_runs_accuracy(tmp_path):
    root = tmp_path / "runs"
    src = write_reference_run(root, "src")  # best val 80.0%
    ck = {"model.checkpoint": str(src / "best.pt"), "train.lr": 1e-4}
    # val set of 120: tolerance = 2 * sqrt(0.8 * 0.2 / 120) = 7.30 points
    tol = 2 * math.sqrt(0.8 * 0.2 / 120)
    hurt = write_reference_run(root, "ft", epochs=[(1, 0.9, 0.70, 0.3, 0.9), (2, 0.95, 0.74, 0.2, 0.85)],
                               extra_cfg=ck, status="completed", planned=2)
    f = by_kind(analysis.findings(hurt))["lr_too_high_for_fine_tuning"]
    assert f.severity == "warning"
    assert f.figures["reference"] == "checkpoint_run" and f.figures["reference_run"] == src.name
    assert f.figures["reference_acc"] == 0.80 and f.figures["reference_epoch"] == 3
    assert f.figures["drop"] == pytest.approx(0.10) and f.figures["tolerance"] == pytest.approx(tol)
    assert f.figures["lr"] == 1e-4
    assert "0.0001" in f.text and "1e-05 to 1e-06" in f.text and "10.0 points" in f.text
    # a 5-point dip on 120 images is noise
    noise = write_reference_run(root, "ft2", epochs=[(1, 0.9, 0.75, 0.3, 0.9)], extra_cfg=ck, status="completed",
                                planned=1)
    assert "lr_too_high_for_fine_tuning" not in by_kind(analysis.findings(noise))
    # ... but not on 5000: tolerance max(1 point, 2 * sqrt(.16 / 5000) = 1.13 points)
    big = write_reference_run(root, "ft3", epochs=[(1, 0.9, 0.78, 0.3, 0.9)], extra_cfg=ck, status="completed",
                              planned=1, val_size=5000)
    f = by_kind(analysis.findings(big))["lr_too_high_for_fine_tuning"]
    assert f.figures["tolerance"] == pytest.approx(2 * math.sqrt(0.16 / 5000)) and f.figures["drop"] == pytest.approx(0.02)


def test_fine_tuning_lr_without_a_reference_uses_epoch_one(tmp_path):
    pre = {"model.pretrained": True, "train.lr": 1e-3}
    # no accuracy before training: epoch 1 is the reference; 1000 val images -> tolerance 2 * sqrt(.24 / 1000)
    run = write_reference_run(tmp_path, epochs=[(1, 0.5, 0.60, 1.0, 1.0), (2, 0.6, 0.50, 0.9, 1.2)],
                              extra_cfg=pre, status="completed", planned=2, val_size=1000)
    f = by_kind(analysis.findings(run))["lr_too_high_for_fine_tuning"]
    assert f.figures["reference"] == "epoch_1" and f.figures["drop"] == pytest.approx(0.10)
    assert f.figures["tolerance"] == pytest.approx(2 * math.sqrt(0.24 / 1000))
    steady = write_reference_run(tmp_path, "b", epochs=[(1, 0.5, 0.60, 1.0, 1.0), (2, 0.6, 0.59, 0.9, 1.2)],
                                 extra_cfg=pre, status="completed", planned=2, val_size=1000)
    assert "lr_too_high_for_fine_tuning" not in by_kind(analysis.findings(steady))
    # from scratch, the same dip says nothing about fine-tuning
    scratch = write_reference_run(tmp_path, "c", epochs=[(1, 0.5, 0.60, 1.0, 1.0), (2, 0.6, 0.50, 0.9, 1.2)],
                                  status="completed", planned=2, val_size=1000)
    assert "lr_too_high_for_fine_tuning" not in by_kind(analysis.findings(scratch))


def test_partial_runs_never_raise(tmp_path):
    with RunWriter.create(tmp_path, "empty") as writer:
        writer.start(["a", "b"], name="empty", epochs=3, steps_per_epoch=1, train_size=2, val_size=1, test_size=1,
                     pid=os.getpid())
    found = analysis.findings(writer.path)
    assert [f.kind for f in found] == ["status"] and "still running" in found[0].text
    with open(writer.path / "events.jsonl", "a") as fh:
        fh.write('{"type":"epoch","epo')  # a writer mid-line
    assert [f.kind for f in analysis.findings(writer.path)] == ["status"]
    failed = write_reference_run(tmp_path, "bad", status="failed", test=False)
    f = by_kind(analysis.findings(failed))
    assert f["status"].severity == "warning" and "failed after 5 epoch(s)" in f["status"].text
    assert "confused_pairs" in f  # from the last val evaluation


def test_findings_of_a_100_class_run_count_every_error(tmp_path):
    """The size of a real CIFAR-100 run (its cost is bench `findings`): the superclass figures account for
    every error of the test confusion matrix."""
    from cifartui.classes import CIFAR100_SUPERCLASSES, SUPERCLASS_OF

    run = write_cifar100_run(tmp_path)
    names = [n for fines in CIFAR100_SUPERCLASSES.values() for n in fines]
    conf = cifar100_confusion()
    f = by_kind(analysis.findings(run))
    errors = int(conf.sum() - np.trace(conf))
    same = np.array([[SUPERCLASS_OF[a] == SUPERCLASS_OF[b] for b in names] for a in names]) & ~np.eye(100, dtype=bool)
    figures = f["superclass_confusions"].figures
    assert (figures["errors"], figures["within"]) == (errors, int(conf[same].sum()))
    assert figures["within"] + figures["across"] == errors
    assert f["overfitting"].figures["epoch"] == 20


def test_analysis_imports_no_torch_or_ui():
    import subprocess
    import sys

    code = ("import sys, cifartui.analysis, cifartui.report, cifartui.commands.export; "
            "bad = [m for m in ('torch', 'textual', 'rich', 'timm') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
