"""The local queue and sweeps: real `cifartui queue` subprocesses, real run folders, tiny CPU runs."""
import json
import multiprocessing
import random
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from cifartui import queue
from cifartui.cli import main
from cifartui.config import Config
from cifartui.record.store import list_runs, read_events, read_run

from support import PYTHON, REPO, tiny_overrides, wait_until


def cli(*args, timeout=120):
    return subprocess.run([PYTHON, "-m", "cifartui", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def worker(root, *extra):
    return subprocess.Popen([PYTHON, "-m", "cifartui", "queue", "run", "--root", str(root), *extra], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout=120):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def add(root, *args, config="configs/demo.yaml", **tiny):
    sets = [a for item in tiny_overrides(root, **tiny) for a in ("--set", item)]
    result = cli("queue", "add", config, "--root", str(root), *sets, *args)
    assert result.returncode == 0, result.stderr
    return result


def entries(root):
    result = cli("queue", "--root", str(root), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def first_epoch_done(root):
    """The run folder of the running entry, once its first epoch is recorded (last.pt is on disk then)."""
    def check():
        running = [e for e in queue.list_entries(root) if e.state == "running" and e.run]
        if running and any(e["type"] == "epoch" for e in read_events(Path(running[0].run) / "events.jsonl")[0]):
            return running[0].run
        return None
    return wait_until(check, what="the first epoch of the first entry")


def run_names(root):
    return sorted(r.id.split("-", 2)[-1] for r in list_runs(root))


# -- (1) two workers, one sweep ----------------------------------------------------------------------
@pytest.mark.slow
def test_two_workers_started_together_train_each_entry_exactly_once(runs_root):
    add(runs_root, "--sweep", "train.lr=0.001,0.002")
    workers = [worker(runs_root), worker(runs_root)]
    results = [finish(w) for w in workers]
    assert all(code == 0 for code, _ in results), results
    started = [line.split()[1] for _, out in results for line in out.splitlines() if line.startswith("queue:") and " -> " in line]
    listed = entries(runs_root)
    assert sorted(started) == sorted(e["id"] for e in listed), "each entry started exactly once"
    assert [e["state"] for e in listed] == ["done", "done"] and len({e["sweep"] for e in listed}) == 1
    assert [e["overrides"]["train.lr"] for e in listed] == [0.001, 0.002]
    assert run_names(runs_root) == ["tiny-lr0.001", "tiny-lr0.002"]
    for e in listed:
        run = read_run(e["run"])
        assert run.status == "completed" and Path(e["run"]).parent == runs_root
        assert f"lr: {e['overrides']['train.lr']}" in (Path(e["run"]) / "config.yaml").read_text()
    assert not queue.worker_alive(runs_root), "workers remove their file on exit"
    compared = json.loads(cli("queue", "compare", listed[0]["sweep"], "--root", str(runs_root), "--json").stdout)
    accs = [r["best_val_acc"] for r in compared]
    assert accs == sorted(accs, reverse=True) and {r["values"]["train.lr"] for r in compared} == {0.001, 0.002}


# -- (2) bad input -----------------------------------------------------------------------------------
BAD = {
    "unknown sweep key": (["queue", "add", "configs/demo.yaml", "--sweep", "train.lrr=0.1,0.2"],
                          "train.lrr: unknown key. Did you mean 'lr'?"),
    "refused value mid-grid": (["queue", "add", "configs/demo.yaml", "--sweep", "train.lr=0.001,-1"],
                               "train.lr: -1 is not allowed: input should be greater than 0"),
    "empty sweep": (["queue", "add", "configs/demo.yaml", "--sweep", "train.lr="], "no values for train.lr"),
    "empty sweep item": (["queue", "add", "configs/demo.yaml", "--sweep", "train.lr=0.1,,0.2"], "comma-separated list"),
    "swept twice": (["queue", "add", "configs/demo.yaml", "--sweep", "seed=1,2", "--sweep", "seed=3"], "given twice"),
    "unknown --set key": (["queue", "add", "configs/demo.yaml", "--set", "train.epoch=2"], "train.epoch: unknown key. Did you mean 'epochs'?"),
    "missing config": (["queue", "add", "configs/nope.yaml"], "configs/nope.yaml: config file not found"),
    "invalid config": (["queue", "add", "{bad_config}"], "train.epochs: 0 is not allowed"),
    "rm unknown id": (["queue", "rm", "20000101-000000-0001"], "no entry '20000101-000000-0001'"),
    "rm not pending": (["queue", "rm", "{cancelled}"], "is cancelled; only pending entries can be removed"),
    "bad --devices": (["queue", "run", "--devices", "gpu0"], "--devices 'gpu0': give cpu or distinct GPU numbers"),
    "compare unknown sweep": (["queue", "compare", "nope"], "no sweep 'nope'"),
}


def snapshot(root):
    return {p.name: p.read_bytes() for p in (root / ".queue").iterdir()}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_and_queues_nothing(tmp_path, capsys, case):
    root = tmp_path / "runs"
    (cancelled,) = queue.add_entries(root, "configs/demo.yaml")
    queue.cancel(root, cancelled.id)
    queue.add_entries(root, "configs/demo.yaml")  # one pending entry that must stay as it is
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("name: bad\ntrain:\n  epochs: 0\n")
    before = snapshot(root)
    args, expected = BAD[case]
    args = [a.format(bad_config=bad_config, cancelled=cancelled.id) for a in args]
    code = main(args + ["--root", str(root)])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and err.startswith("error: ") and "Traceback" not in err, err
    assert snapshot(root) == before


def test_bad_input_through_the_real_cli(runs_root):
    result = cli("queue", "add", "configs/demo.yaml", "--root", str(runs_root), "--sweep", "train.lr=0.001,-1")
    assert result.returncode == 2 and "train.lr: -1 is not allowed" in result.stderr and "Nothing was queued" in result.stderr
    assert not (runs_root / ".queue").exists() or not any((runs_root / ".queue").glob("*.json"))


# -- (3) cancel ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_rm_cancels_a_pending_entry_and_the_worker_skips_it(runs_root):
    add(runs_root, "--sweep", "train.lr=0.001,0.002")
    first, second = entries(runs_root)
    removed = cli("queue", "rm", first["id"], "--root", str(runs_root))
    assert removed.returncode == 0 and f"cancelled {first['id']}" in removed.stdout
    assert cli("queue", "rm", first["id"], "--root", str(runs_root)).returncode == 2, "already cancelled"
    code, out = finish(worker(runs_root))
    assert code == 0, out
    first, second = entries(runs_root)
    assert (first["state"], first["run"]) == ("cancelled", None) and "cancelled by" in first["reason"]
    assert second["state"] == "done" and run_names(runs_root) == ["tiny-lr0.002"]


# -- (4) signals and stop requests -------------------------------------------------------------------
@pytest.mark.slow
def test_sigterm_stops_the_current_run_and_leaves_the_rest_pending(runs_root):
    add(runs_root, "--sweep", "seed=1,2", **{"train.epochs": 200})
    proc = worker(runs_root)
    run_dir = first_epoch_done(runs_root)
    proc.send_signal(signal.SIGTERM)
    code, out = finish(proc)
    assert code == 143, out
    first, second = entries(runs_root)
    assert first["state"] == "stopped" and "--resume" in first["reason"] and first["run"] == run_dir
    assert read_run(run_dir).status == "stopped" and (Path(run_dir) / "last.pt").exists()
    assert second["state"] == "pending" and second["run"] is None and len(list_runs(runs_root)) == 1
    assert not queue.worker_alive(runs_root)


@pytest.mark.slow
def test_a_stop_request_stops_that_run_and_the_worker_goes_on(runs_root):
    from cifartui.record.control import request_stop

    add(runs_root, "--sweep", "train.epochs=200,1")
    proc = worker(runs_root)
    request_stop(first_epoch_done(runs_root))
    code, out = finish(proc)
    assert code == 0, out
    assert [e["state"] for e in entries(runs_root)] == ["stopped", "done"]


# -- (5) failures --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_failed_entry_does_not_stop_the_queue(runs_root, tmp_path):
    add(runs_root, "--set", "data.source=imagefolder", "--set", f"data.root={tmp_path / 'no-such-folder'}")
    add(runs_root)
    code, out = finish(worker(runs_root, "--devices", "cpu"))
    assert code == 0, out
    failed, done = entries(runs_root)
    assert failed["state"] == "failed" and "data.root" in failed["reason"] and "does not exist" in failed["reason"]
    assert failed["run"] is None and done["state"] == "done" and read_run(done["run"]).status == "completed"


def test_a_running_entry_whose_worker_died_reads_failed(runs_root):
    (entry,) = queue.add_entries(runs_root, Config(name="x"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    entry.state, entry.run, entry.worker = "running", str(runs_root / "r"), {"host": queue.HOST, "pid": dead.pid}
    queue._save(runs_root, entry)
    (seen,) = queue.list_entries(runs_root)
    assert seen.state == "failed" and "died" in seen.reason
    assert json.loads((runs_root / ".queue" / f"{entry.id}.json").read_text())["state"] == "running", "computed, not written"


# -- several GPUs (on the CPU here: one child worker per "device") -----------------------------------
@pytest.mark.slow
def test_devices_spawns_one_worker_per_device(runs_root):
    add(runs_root, "--sweep", "seed=1,2")
    code, out = finish(worker(runs_root, "--devices", "0,1"))
    assert code == 0, out
    assert [e["state"] for e in entries(runs_root)] == ["done", "done"]


# -- (6) the claim itself, without training ----------------------------------------------------------
def _race(root, ids, mode, barrier, results):
    won = []
    lock = threading.Lock()

    def contend():
        mine = []
        if mode == "take":
            for entry_id in random.sample(ids, len(ids)):
                if queue.take(root, entry_id):
                    mine.append(entry_id)
        else:  # whole workers: scan, take, finish
            while (entry := queue.take_next(root)) is not None:
                queue._finish(root, entry, "done")
                mine.append(entry.id)
        with lock:
            won.extend(mine)

    threads = [threading.Thread(target=contend) for _ in range(4)]
    barrier.wait()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put(won)


@pytest.mark.parametrize("mode", ["take", "take_next"])
def test_racing_claims_never_double_take_and_never_skip(runs_root, mode):
    added = queue.add_entries(runs_root, Config(name="race"), sweeps=["seed=" + ",".join(map(str, range(60)))])
    ids = [e.id for e in added]
    assert ids == sorted(ids) and len(set(ids)) == 60 and {e.sweep for e in added} == {ids[0]}
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(runs_root), ids, mode, barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    won = [entry_id for _ in procs for entry_id in results.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
    assert sorted(won) == ids, "every entry taken exactly once"
    if mode == "take_next":
        assert {e.state for e in queue.list_entries(runs_root)} == {"done"}


def test_run_names_and_ids():
    assert queue.run_name("demo", {"train.lr": 0.001}) == "demo-lr0.001"
    assert queue.run_name("demo", {"train.lr": 0.001, "train.batch_size": 64}) == "demo-lr0.001-batch_size64"
    assert queue.run_name("demo", {"data.classes": ["cat", "dog"], "model.pretrained": True}) == "demo-classescat+dog-pretrainedtrue"
    assert queue.run_name("demo", {"model.name": "a/b c"}) == "demo-namea_b_c"
    assert len(queue.run_name("x" * 70, {"train.lr": 0.000123456789})) == 80


def test_detached_worker_logs_and_is_seen_while_alive(runs_root):
    pid = queue.start_detached_worker(runs_root)  # an empty queue: it starts, says so, and ends
    log = runs_root / ".queue" / "worker.log"
    wait_until(lambda: "no pending entry left" in log.read_text(), what="the detached worker's log line")
    wait_until(lambda: not queue.worker_alive(runs_root), what="the worker's file to go")
    (proc,) = [p for p in queue._detached if p.pid == pid]
    assert proc.wait(timeout=30) == 0


def test_the_queue_imports_without_torch():
    code = "import sys, cifartui.queue, cifartui.commands.queue; assert 'torch' not in sys.modules"
    assert subprocess.run([PYTHON, "-c", code], cwd=REPO).returncode == 0
