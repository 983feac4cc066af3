"""One read model: ``RunRecord`` folds a run's events, and show, report and export --csv all read through it.

Unit tests on hand-built typed events (resumes, the last epoch event winning, which evaluation is analysed,
status), a resumed fixture written through ``RunStore`` that every reader must list once, and the proof: a
real training SIGKILLed in the middle of epoch 2 and resumed, whose ``events.jsonl`` really holds the
redone steps, and on which ``show --json``, the report and the CSV export agree epoch by epoch.
"""

import csv
import io
import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cifartui.analysis import pct
from cifartui.record.events import Checkpoint, EpochEnd, Evaluation, Log, RunEnded, RunStarted, Step
from cifartui.record.read_model import RunRecord
from cifartui.record.store import RunStore, read_events, read_run

from support import PYTHON, REPO, tiny_overrides, wait_for_events

CLASSES = ["cat", "dog", "ship", "frog"]


def started(resumed_from=None, epochs=3, t=None):
    return RunStarted(run_id="r", name="r", device="cpu", num_classes=len(CLASSES), class_names=CLASSES, epochs=epochs,
                      steps_per_epoch=4, train_size=100, val_size=20, test_size=30, resumed_from_epoch=resumed_from,
                      pid=os.getpid(), host=socket.gethostname(), **({} if t is None else {"time": t}))


def epoch(n, val_acc, train_acc=0.5, is_best=False):
    return EpochEnd(epoch=n, train_loss=1.0 / n, train_acc=train_acc, val_loss=1.1 / n, val_acc=val_acc, val_top5=1.0,
                    lr=1e-3, epoch_seconds=1.0, images_per_second=100.0, best_val_acc=val_acc, is_best=is_best)


def evaluation(split, n, top1, file=True):
    return Evaluation(split=split, epoch=n, loss=0.5, top1=top1, top5=1.0, num_samples=30,
                      file=f"eval/{split}_e{n:03d}.npz" if file else None)


def step(e, s):
    return Step(epoch=e, step=s, steps=4, loss=1.0, acc=0.5, lr=1e-3, images_per_second=100.0)


# -- RunRecord on typed events ------------------------------------------------------------------------
def test_a_resumed_run_started_drops_the_epochs_and_steps_it_redoes():
    r = RunRecord()
    r.apply_all([started(t=1.0), epoch(1, 0.4), epoch(2, 0.5), step(3, 1), step(3, 2), epoch(3, 0.6)])
    assert [e.epoch for e in r.epochs] == [1, 2, 3] and r.last_step.epoch == 3
    # killed before last.pt of epoch 3 was written: the resume continues from epoch 3
    r.apply(started(resumed_from=3, t=2.0))
    assert [e.epoch for e in r.epochs] == [1, 2] and r.epochs_done == 2 and r.last_step is None
    assert r.first_started.time == 1.0 and r.started.time == 2.0 and r.started.resumed_from_epoch == 3
    r.apply_all([step(3, 1), epoch(3, 0.55)])
    assert [(e.epoch, e.val_acc) for e in r.epochs] == [(1, 0.4), (2, 0.5), (3, 0.55)]
    assert r.summary()["started"] == 1.0  # a resume keeps the run's start


def test_the_last_event_of_an_epoch_wins_and_best_is_the_first_of_equals():
    r = RunRecord()
    r.apply_all([started(), epoch(1, 0.7), epoch(2, 0.3), epoch(2, 0.7), epoch(3, 0.7)])
    assert [(e.epoch, e.val_acc) for e in r.epochs] == [(1, 0.7), (2, 0.7), (3, 0.7)]  # epoch 2 once, the later one
    assert r.best.epoch == 1  # equal accuracies: the first, as the trainer's is_best
    r.apply(epoch(1, 0.2))
    assert r.best.epoch == 2 and r.epochs[0].val_acc == 0.2


def test_evaluation_picks_test_else_val_or_the_split_asked_for():
    r = RunRecord()
    assert r.evaluation() is None and r.test is None
    r.apply(evaluation("val", 1, 0.4))
    assert r.evaluation().split == "val" and r.test is None
    r.apply_all([evaluation("val", 2, 0.5), evaluation("test", 2, 0.45)])
    r.apply_all([evaluation("val", 3, 0.6), evaluation("eval-cifar10-test-x", 2, 0.3)])
    assert (r.evaluation().split, r.evaluation().top1) == ("test", 0.45)  # test even when a val one came later
    assert r.evaluation("val").epoch == 3 and r.evaluation("eval-cifar10-test-x").top1 == 0.3
    assert r.evaluation("nope") is None
    r.apply(evaluation("test", 3, 0.5))  # a later test wins
    assert r.test.epoch == 3
    r.apply(evaluation("test", 3, 0.9, file=False))  # no arrays file: nothing to analyse, not listed
    assert r.test.top1 == 0.5 and all(e.file for e in r.evaluations)
    # the same file again (a redone epoch after a resume) replaces, never lists twice
    r.apply(evaluation("val", 3, 0.65))
    assert [e.top1 for e in r.evaluations if e.split == "val"] == [0.4, 0.5, 0.65]
    only_eval = RunRecord()
    only_eval.apply(evaluation("eval-x", 0, 0.2))
    assert only_eval.evaluation().split == "eval-x"  # neither test nor val: the latest there is


def test_status_transitions():
    r = RunRecord()
    assert r.status == "unknown" and r.ended is None and r.class_names == []
    r.apply(started())
    assert r.status == "running" and r.class_names == CLASSES
    r.apply_all([epoch(1, 0.4), Checkpoint(kind="last", path="last.pt", epoch=2), Log(message="stop")])
    r.apply(RunEnded(status="stopped", reason="stopped by request", epochs_done=1))
    assert r.status == "stopped" and r.ended.reason == "stopped by request"
    r.apply(started(resumed_from=2))
    assert r.status == "running" and r.ended is None  # the resume writes again
    r.apply_all([epoch(2, 0.5), epoch(3, 0.6), evaluation("test", 3, 0.55)])
    r.apply(RunEnded(status="completed", reason="finished 3 epochs", epochs_done=3))
    s = r.summary()
    assert (s["status"], s["epochs_done"], s["best_epoch"], s["test_acc"]) == ("completed", 3, 3, 0.55)
    assert len(r.checkpoints) == 1 and [m.message for m in r.logs] == ["stop"]


def test_json_objects_fold_like_typed_events():
    events = [started(t=5.0), step(1, 1), epoch(1, 0.4), evaluation("val", 1, 0.4), epoch(1, 0.45),
              evaluation("test", 1, 0.42), RunEnded(status="completed", epochs_done=1)]
    typed, raw = RunRecord(), RunRecord()
    typed.apply_all(events)
    raw.apply_all([json.loads(json.dumps(e.to_dict())) for e in events] + [{"type": "from_the_future", "x": 1}])
    assert raw.epochs == typed.epochs and raw.evaluations == typed.evaluations and raw.summary() == typed.summary()
    assert raw.apply({"type": "epoch", "epoch": 9}) is False  # missing fields: not foldable, ignored


# -- every reader through the read model, on a resumed run written through the store --------------------
def write_resumed_run(root: Path) -> Path:
    """A run that was killed after epoch 2's event but before its last.pt: the resume redid epoch 2 (with
    other figures), so events.jsonl holds epoch 2 twice; classes: cat 10/10, dog 7/10, ship 4/10, frog 9/10 right."""
    conf = np.array([[10, 0, 0, 0], [3, 7, 0, 0], [1, 5, 4, 0], [0, 0, 1, 9]], dtype=np.int32)
    vconf = np.diag([9, 9, 9, 9]).astype(np.int32)
    store = RunStore.create(root, "resumed")
    store.write_config("name: resumed\ntrain:\n  epochs: 3\n")
    store(started(t=time.time() - 60))
    store(Evaluation(split="val", epoch=1, loss=1.0, top1=0.4, top5=1.0, num_samples=36, arrays={"confusion": vconf}))
    store(epoch(1, 0.4, is_best=True))
    store(Evaluation(split="val", epoch=2, loss=1.0, top1=0.3, top5=1.0, num_samples=36, arrays={"confusion": vconf}))
    store(epoch(2, 0.3))
    store.close()
    store = RunStore.open(store.path)
    store(started(resumed_from=2))
    store(Evaluation(split="val", epoch=2, loss=1.0, top1=0.6, top5=1.0, num_samples=36, arrays={"confusion": vconf}))
    store(epoch(2, 0.6, is_best=True))
    store(Evaluation(split="val", epoch=3, loss=1.0, top1=0.5, top5=1.0, num_samples=36, arrays={"confusion": vconf}))
    store(epoch(3, 0.5))
    store(Evaluation(split="test", epoch=2, loss=0.9, top1=0.7, top5=1.0, num_samples=40, arrays={"confusion": conf}))
    store(RunEnded(status="completed", reason="finished 3 epochs", epochs_done=3))
    store.close()
    return store.path


def readers_agree(show: dict, md: str, csv_text: str) -> dict:
    """Assert that show --json, the report and the CSV export tell the same story; returns show's epochs."""
    shown = {e["epoch"]: e["val_acc"] for e in show["epochs_table"]}
    numbers = [e["epoch"] for e in show["epochs_table"]]
    assert numbers == sorted(set(numbers)), f"show lists an epoch twice: {numbers}"

    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [int(r["epoch"]) for r in rows] == numbers
    assert [float(r["eval_top1"]) for r in rows] == pytest.approx([100 * shown[n] for n in numbers])
    assert max(int(r["epoch"]) for r in rows if r["is_best"] == "1") == show["best_epoch"]

    curves = section(md, "Learning curves")
    table = [cells(line) for line in curves.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [int(c[0].split()[0]) for c in table] == numbers
    assert [c[4] for c in table] == [pct(shown[n], 2) for n in numbers]
    assert [int(c[0].split()[0]) for c in table if c[0].endswith("*")] == [show["best_epoch"]]
    assert f"| best (validation) | {show['best_epoch']} |" in section(md, "Results")
    assert show["best_val_acc"] == shown[show["best_epoch"]] == max(shown.values())

    ev = show["evaluation"]
    assert ev["split"] == "test" and ev["top1"] == show["test_acc"]
    assert f"| test (weights of epoch {ev['epoch']}) | {pct(show['test_acc'], 2)} |" in section(md, "Generalisation gap")
    assert f"from the **test** evaluation ({ev['num_samples']} images, weights of epoch {ev['epoch']})" in md

    per_class = {}
    for c in (cells(line) for line in section(md, "Best and worst classes (test)").splitlines()
              if line.startswith("| ") and line[2].isdigit()):
        per_class[c[1]], per_class[c[5]] = c[2], c[6]
    assert per_class == {name: pct(acc) for name, acc in show["per_class_acc"].items()}
    return shown


def section(md: str, title: str) -> str:
    start = md.index(f"## {title}")
    end = md.find("\n## ", start + 3)
    return md[start:end if end > 0 else None]


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_readers_list_a_redone_epoch_once_with_its_last_figures(tmp_path):
    from cifartui.cli import show_data
    from cifartui.commands.export import export_csv
    from cifartui.report import build_report

    run = write_resumed_run(tmp_path)
    events, _ = read_events(run / "events.jsonl")
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1, 2, 2, 3]  # really twice on disk
    show = json.loads(json.dumps(show_data(run), default=str))
    shown = readers_agree(show, build_report(run).read_text(), export_csv(run))
    assert shown == {1: 0.4, 2: 0.6, 3: 0.5}  # the redone epoch 2's figures, not the lost ones
    assert show["best_epoch"] == 2 and show["test_acc"] == 0.7
    assert show["per_class_acc"] == pytest.approx({"cat": 1.0, "dog": 0.7, "ship": 0.4, "frog": 0.9})
    md = (run / "report.md").read_text()
    assert "3/3 epochs" in md and "status **completed**" in md


# -- the proof: a real run killed mid-epoch and resumed ---------------------------------------------------
def cli(*args, timeout=300):
    res = subprocess.run([PYTHON, "-m", "cifartui", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert res.returncode == 0, f"{args}: {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


@pytest.mark.slow
def test_killed_and_resumed_run_tells_one_story(tmp_path):
    root = tmp_path / "runs"
    sets = tiny_overrides(root, **{"train.epochs": 3, "train.log_interval": 1, "train.save_every_steps": 0})
    args = [PYTHON, "-m", "cifartui", "--headless", "train", str(REPO / "configs" / "demo.yaml")]
    for item in sets:
        args += ["--set", item]
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)

        def in_first_half_of_epoch_2(events):  # kill there: last.pt holds the end of epoch 1
            return any(e["type"] == "step" and e["epoch"] == 2 and e["step"] <= e["steps"] // 2 for e in events)

        try:  # polled often: epoch 2 has only a few steps
            run = wait_for_events(root, in_first_half_of_epoch_2, proc, "a step in the first half of epoch 2", 240,
                                  log=tmp_path / "first.log")
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert read_run(run).status == "crashed"
    killed_steps = [(e["epoch"], e["step"]) for e in read_events(run / "events.jsonl")[0] if e["type"] == "step"]
    assert any(ep == 2 for ep, _ in killed_steps) and RunRecord.read(run).epochs_done == 1

    resumed = cli("--headless", "train", "--resume", str(run), timeout=600)
    assert "Resumed from" in resumed.stdout + resumed.stderr

    # events.jsonl really holds epoch 2 twice: its steps before the kill, and again after the resume
    events, _ = read_events(run / "events.jsonl")
    starts = [e for e in events if e["type"] == "run_started"]
    assert len(starts) == 2 and starts[1]["resumed_from_epoch"] == 2
    redone = [k for k, n in Counter((e["epoch"], e["step"]) for e in events if e["type"] == "step").items() if n > 1]
    assert redone and {ep for ep, _ in redone} == {2}, redone
    raw_epochs = [e["epoch"] for e in events if e["type"] == "epoch"]
    assert sorted(set(raw_epochs)) == [1, 2, 3]  # (an epoch event itself twice only when killed between it and last.pt)

    record = RunRecord.read(run)
    assert [e.epoch for e in record.epochs] == [1, 2, 3] and record.status == "completed"
    assert record.first_started.time < record.started.time and record.started.resumed_from_epoch == 2

    show = json.loads(cli("show", str(run), "--json").stdout)
    cli("report", str(run), "-o", str(tmp_path / "report.md"))
    csv_text = cli("export", str(run), "--csv").stdout
    shown = readers_agree(show, (tmp_path / "report.md").read_text(), csv_text)
    assert shown == {e.epoch: e.val_acc for e in record.epochs}  # the last event of each epoch
    assert (show["status"], show["epochs_done"], show["epochs"]) == ("completed", 3, 3)
    assert show["best_epoch"] == record.best.epoch and show["test_acc"] == record.test.top1
    assert set(show["per_class_acc"]) == {"class_0", "class_1", "class_2", "class_3"}
