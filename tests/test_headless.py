"""End to end through the public CLI: train headless, list and show runs."""
import json
import subprocess
import sys

import pytest
import timm
import torch

from cifartui.cli import main
from cifartui.record.store import list_runs, read_events

from support import REAL_DATA, tiny_overrides

REQUIRED_EPOCH_FIELDS = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "lr", "epoch_seconds", "images_per_second"}


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "cifartui", *args], capture_output=True, text=True, timeout=timeout)


def train(root, *extra_sets, config="configs/demo.yaml"):
    args = ["--headless", "train", config]
    for item in tiny_overrides(root) + list(extra_sets):
        args += ["--set", item]
    return main(args)


@pytest.mark.slow
def test_synthetic_run_learns_and_writes_the_store(runs_root, capsys):
    code = train(runs_root, "train.epochs=3", "data.train_size=1200", "train.lr=3e-3")
    assert code == 0
    (run,) = list_runs(runs_root)
    events, _ = read_events(f"{run.path}/events.jsonl")
    types = [e["type"] for e in events if e["type"] != "log"]  # setup logs (data loading) may come first
    assert types[0] == "run_started" and types[-1] == "run_ended" and types.count("epoch") == 3
    start = next(e for e in events if e["type"] == "run_started")
    assert start["world_size"] == 1 and start["device"] == "cpu" and start["num_classes"] == 4
    epochs = [e for e in events if e["type"] == "epoch"]
    assert all(REQUIRED_EPOCH_FIELDS <= set(e) for e in epochs)
    assert all(0 <= e["val_acc"] <= 1 and 0 <= e["train_acc"] <= 1 for e in epochs)
    assert max(e["val_acc"] for e in epochs) > 0.5, "4 classes: chance is 0.25"
    assert events[-1]["status"] == "completed" and run.status == "completed" and run.test_acc is not None
    evals = [e for e in events if e["type"] == "evaluation"]
    assert [e["split"] for e in evals] == ["val", "val", "val", "test"]
    for name in ("config.yaml", "events.jsonl", "last.pt", "best.pt", "classes.json", "samples_test.npz"):
        assert (runs_root / run.id / name).exists(), name
    out = capsys.readouterr().out
    assert "epoch 3/3" in out and "test: top-1" in out
    # best.pt loads with the plain timm one-liner
    model = timm.create_model("test_resnet", num_classes=4, checkpoint_path=str(runs_root / run.id / "best.pt"))
    assert model.eval()(torch.zeros(1, 3, 16, 16)).shape == (1, 4)

    listed = cli("runs", "--root", str(runs_root), "--json")
    assert listed.returncode == 0
    (row,) = json.loads(listed.stdout)
    assert {"id", "name", "status", "epochs_done", "epochs", "best_val_acc", "test_acc", "model", "dataset", "path"} <= set(row)
    assert (row["status"], row["epochs_done"], row["epochs"], row["dataset"]) == ("completed", 3, 3, "synthetic")

    shown = cli("show", run.id, "--root", str(runs_root), "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert set(data["per_class_acc"]) == {"class_0", "class_1", "class_2", "class_3"}
    for pair in data["confused_pairs"]:
        assert set(pair) >= {"true", "pred", "count"} and pair["true"] != pair["pred"]
    text = cli("show", run.id, "--root", str(runs_root))
    assert "most confused pairs" in text.stdout


@pytest.mark.slow
@pytest.mark.skipif(not REAL_DATA.exists(), reason="../shared/data/cifar100-real is not beside this checkout")
def test_real_cifar100_images_learn(runs_root):
    classes = "[apple, motorcycle, sea, sunflower, boy]"
    code = train(runs_root, "data.source=imagefolder", f"data.root={REAL_DATA}", f"data.classes={classes}",
                 "model.name=resnet10t", "train.epochs=4", "train.lr=2e-3", "train.batch_size=32", "data.val_fraction=0.2")
    assert code == 0
    (run,) = list_runs(runs_root)
    assert run.best_val_acc > 0.5 and run.test_acc > 0.5, "5 classes: chance is 0.2"
    events, _ = read_events(f"{run.path}/events.jsonl")
    start = next(e for e in events if e["type"] == "run_started")
    assert start["class_names"] == ["apple", "motorcycle", "sea", "sunflower", "boy"]


def test_bad_config_exits_2_with_a_message_and_no_traceback(tmp_path):
    bad = cli("--headless", "train", "configs/demo.yaml", "--set", "train.lr=-1", "--set", f"output.root={tmp_path}")
    assert bad.returncode == 2
    assert "train.lr: -1 is not allowed" in bad.stderr and "Traceback" not in bad.stderr
    assert not any(tmp_path.iterdir()), "nothing is created for a bad config"


def test_usage_errors_exit_2(tmp_path):
    assert cli("--headless").returncode == 2
    assert cli("--headless", "train").returncode == 2
    missing = cli("--headless", "train", str(tmp_path / "none.yaml"))
    assert missing.returncode == 2 and "config file not found" in missing.stderr
