import json
import os

import numpy as np
import pytest

from cifartui.record.events import EpochEnd, Evaluation, RunEnded, RunStarted, event_from_dict
from cifartui.record.store import (EventFollower, RunStore, StoreError, list_runs, load_evaluation, read_events, read_run,
                            resolve_run)


def started(run_id="r", pid=None, **kw):
    return RunStarted(run_id=run_id, name="demo", device="cpu", num_classes=3, class_names=["a", "b", "c"], epochs=2,
                      steps_per_epoch=5, train_size=10, val_size=3, test_size=3, pid=pid or os.getpid(),
                      host=__import__("socket").gethostname(), model="resnet18", dataset="synthetic", **kw)


def test_run_ids_are_unique_sortable_and_safe(tmp_path):
    a = RunStore.create(tmp_path, "demo")
    b = RunStore.create(tmp_path, "demo")
    assert a.id != b.id and a.id[:15] == b.id[:15] and a.id.endswith("demo")
    for bad in ("../x", "a/b", "..", "", "x" * 200):
        with pytest.raises(StoreError, match="name"):
            RunStore.create(tmp_path, bad)


def test_events_summary_and_arrays_round_trip(tmp_path):
    s = RunStore.create(tmp_path, "demo")
    s(started())
    conf = np.array([[3, 1, 0], [0, 2, 2], [1, 0, 3]], dtype=np.int32)
    s(Evaluation(split="val", epoch=1, loss=0.5, top1=8 / 12, top5=1.0, num_samples=12, arrays={"confusion": conf}))
    s(EpochEnd(epoch=1, train_loss=1, train_acc=0.5, val_loss=0.5, val_acc=8 / 12, val_top5=1, lr=0.1,
               epoch_seconds=1, images_per_second=10, is_best=True))
    s(RunEnded(status="completed", reason="done", epochs_done=1))
    s.close()
    events, _ = read_events(s.path / "events.jsonl")
    assert [e["type"] for e in events] == ["run_started", "evaluation", "epoch", "run_ended"]
    assert all("time" in e for e in events)
    ev = events[1]
    assert ev["file"] == "eval/val_e001.npz" and "arrays" not in ev
    assert np.array_equal(load_evaluation(s.path, ev["file"])["confusion"], conf)
    assert json.loads((s.path / "classes.json").read_text()) == ["a", "b", "c"]
    assert isinstance(event_from_dict(events[2]), EpochEnd)
    r = read_run(s.path)
    assert (r.status, r.epochs_done, r.best_val_acc, r.model) == ("completed", 1, pytest.approx(8 / 12), "resnet18")


def test_reader_tolerates_a_half_written_and_a_garbled_line(tmp_path):
    p = tmp_path / "events.jsonl"
    p.write_text('{"type":"log","time":1,"message":"a"}\nnot json\n{"type":"log","time":2,"mess')
    events, offset = read_events(p)
    assert [e["message"] for e in events] == ["a"]
    with open(p, "a") as f:
        f.write('age":"b"}\n')
    more, _ = read_events(p, offset)
    assert [e["message"] for e in more] == ["b"]


def test_follower_sees_only_new_whole_lines(tmp_path):
    s = RunStore.create(tmp_path, "live")
    f = EventFollower(s.path)
    assert f.poll() == []
    s(started())
    assert [e["type"] for e in f.poll()] == ["run_started"]
    assert f.poll() == []


def test_a_dead_writer_shows_as_crashed_not_running(tmp_path):
    s = RunStore.create(tmp_path, "dead")
    s(started(pid=2**22 + 12345))  # no such process
    assert read_run(s.path).status == "crashed"
    live = RunStore.create(tmp_path, "live")
    live(started())
    assert read_run(live.path).status == "running"


def test_list_and_resolve(tmp_path):
    a = RunStore.create(tmp_path, "alpha")
    a(started())
    b = RunStore.create(tmp_path, "beta")
    b(started())
    assert [r.id for r in list_runs(tmp_path)] == sorted([a.id, b.id], reverse=True)
    assert resolve_run("beta", tmp_path) == b.path and resolve_run(str(a.path), tmp_path) == a.path
    with pytest.raises(StoreError, match="not found"):
        resolve_run("gamma", tmp_path)
    with pytest.raises(StoreError, match="not found"):
        resolve_run("../" + a.id, tmp_path / "sub")


def test_summary_rebuilt_from_events_when_missing(tmp_path):
    s = RunStore.create(tmp_path, "x")
    s(started())
    s(RunEnded(status="stopped", reason="by request"))
    (s.path / "summary.json").unlink()
    assert read_run(s.path).status == "stopped"
