"""Never lose a run: SIGKILL at any point, then --resume, ends bitwise where an uninterrupted run ends;
Ctrl-C / SIGTERM save and exit 130 / 143; SIGHUP is survived."""
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cifartui.record.store import list_runs, read_events, read_run

from support import tiny_overrides, wait_for_events

pytestmark = pytest.mark.slow

SETS = ["train.epochs=2", "data.train_size=480", "train.batch_size=32", "train.save_every_steps=2", "train.log_interval=1",
        "model.drop_rate=0.2", "data.augment=strong", "train.lr=3e-3"]


def start(root, *extra, resume=None):
    args = [sys.executable, "-m", "cifartui", "--headless", "train"]
    if resume:
        args += ["--resume", str(resume)]
    else:
        args += ["configs/demo.yaml"]
        for item in tiny_overrides(root) + SETS + list(extra):
            args += ["--set", item]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def final_state(run):
    state = torch.load(run / "last.pt", weights_only=True)
    events, _ = read_events(run / "events.jsonl")
    epochs = {e["epoch"]: e for e in events if e["type"] == "epoch"}  # a resume may repeat an epoch: last wins
    test = [e for e in events if e["type"] == "evaluation" and e["split"] == "test"][-1]
    return state["model"], epochs, test


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    proc = start(root)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return final_state(Path(list_runs(root)[0].path))


@pytest.mark.parametrize("kill_after_steps", [3, 11, 19])
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, reference, kill_after_steps):
    proc = start(tmp_path)
    run = wait_for_events(tmp_path, lambda ev: sum(e["type"] == "step" for e in ev) >= kill_after_steps, proc,
                          f"{kill_after_steps} steps")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert read_run(run).status == "crashed"
    resumed = start(tmp_path, resume=run)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "Resumed from" in out
    model, epochs, test = final_state(run)
    ref_model, ref_epochs, ref_test = reference
    assert model.keys() == ref_model.keys()
    assert all(torch.equal(model[k], ref_model[k]) for k in model), "final weights differ from the uninterrupted run"
    for k in ("train_loss", "train_acc", "val_loss", "val_acc", "val_top5"):
        assert [epochs[e][k] for e in sorted(epochs)] == [ref_epochs[e][k] for e in sorted(ref_epochs)], k
    assert test["top1"] == ref_test["top1"] and test["loss"] == ref_test["loss"]
    assert read_run(run).status == "completed"


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_saves_and_exits_with_the_signal_code(tmp_path, sig, code):
    proc = start(tmp_path, "train.save_every_steps=0")
    run = wait_for_events(tmp_path, lambda ev: sum(e["type"] == "step" for e in ev) >= 4, proc, "4 steps")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    events, _ = read_events(run / "events.jsonl")
    assert events[-1]["type"] == "run_ended" and events[-1]["status"] == "stopped"
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["step"] >= 4
    assert read_run(run).status == "stopped"
    resumed = start(tmp_path, resume=run)
    assert resumed.wait(timeout=300) == 0


def test_sighup_is_survived(tmp_path):
    proc = start(tmp_path, "train.epochs=1", "train.save_every_steps=0")
    wait_for_events(tmp_path, lambda ev: any(e["type"] == "step" for e in ev), proc, "the first step")
    proc.send_signal(signal.SIGHUP)
    proc.communicate(timeout=300)
    assert proc.returncode == 0
    assert list_runs(tmp_path)[0].status == "completed"


def test_two_trainings_in_one_root_never_collide(tmp_path):
    procs = [start(tmp_path, "train.epochs=1", "train.save_every_steps=0") for _ in range(2)]
    for p in procs:
        _out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    runs = list_runs(tmp_path)
    assert len(runs) == 2 and runs[0].id != runs[1].id
    for r in runs:
        events, _ = read_events(Path(r.path) / "events.jsonl")
        assert sum(e["type"] == "run_started" for e in events) == 1 and r.status == "completed"
