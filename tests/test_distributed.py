"""Distributed training (torchrun, DDP) on the CPU with gloo.

Fast tests: the loader's sharding rules and the collective helpers (alone and in a one-process gloo group).
Slow tests: real ``torchrun --nproc_per_node=2`` runs on tiny synthetic data, checked against a single-process
evaluation of the saved weights; a stop request reaching one rank stops both, and the run resumes at world
size 1; a rank that fails does not leave the other waiting.
"""
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cifartui.core import distributed as ddp
from cifartui.core.loader import BatchLoader
from cifartui.record.read_model import RunRecord
from cifartui.record.store import list_runs, load_evaluation, read_events, read_run

from support import PYTHON, REPO, wait_until

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
TORCHRUN_TIMEOUT = 240


# -- sharding rules (no processes) ------------------------------------------------------------------
def _loader(n, bs, rank, world, shuffle, drop_last=False):
    x = torch.zeros(n, 3, 4, 4, dtype=torch.uint8)
    return BatchLoader(x, torch.arange(n), bs, mean=MEAN, std=STD, shuffle=shuffle, drop_last=drop_last,
                       seed=3, rank=rank, world_size=world)


def _indices(loader, epoch=1):
    loader.set_epoch(epoch)
    return [idx.tolist() for _s, _x, _y, idx in loader.batches()]


@pytest.mark.parametrize("n,world", [(103, 2), (103, 3), (64, 4)])
def test_train_shards_are_disjoint_equal_and_a_prefix_of_the_order(n, world):
    bs = 8
    ranks = [_indices(_loader(n, bs, r, world, shuffle=True, drop_last=True)) for r in range(world)]
    assert len({len(b) for b in ranks}) == 1, "every rank must run the same number of steps"
    flat = [sum(b, []) for b in ranks]
    assert all(len(set(a) & set(b)) == 0 for i, a in enumerate(flat) for b in flat[i + 1:])
    order = torch.randperm(n, generator=torch.Generator().manual_seed(3 * 100003 + 1)).tolist()
    for k in range(len(ranks[0]) + 1):  # after k steps: exactly the first k x bs x world samples of the order
        seen = set().union(*[set(sum(b[:k], [])) for b in ranks])
        assert seen == set(order[: k * bs * world])


@pytest.mark.parametrize("n,world", [(10, 4), (5, 4), (127, 2), (3, 1)])
def test_eval_shards_are_contiguous_and_cover_everything_in_order(n, world):
    parts = [sum(_indices(_loader(n, 4, r, world, shuffle=False)), []) for r in range(world)]
    assert sum(parts, []) == list(range(n))


def test_a_position_maps_between_world_sizes():
    """The resume rule of Trainer._adapt_to_world_size: step k at world size 2 = step 2k at world size 1."""
    n, bs = 96, 8
    two = [_indices(_loader(n, bs, r, 2, shuffle=True, drop_last=True), epoch=4) for r in range(2)]
    one = _indices(_loader(n, bs, 0, 1, shuffle=True, drop_last=True), epoch=4)
    for k in range(len(two[0]) + 1):
        assert set(sum(two[0][:k] + two[1][:k], [])) == set(sum(one[: 2 * k], []))


def test_augmentation_differs_between_ranks_and_rank_0_keeps_the_single_process_stream():
    one = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    x = one.expand(64, -1, -1, -1).contiguous()  # every sample the same image: batches differ only by augmentation
    make = lambda rank, world: BatchLoader(x, torch.zeros(64, dtype=torch.int64), 8, mean=MEAN, std=STD,  # noqa: E731
                                           augment="standard", shuffle=True, drop_last=True, seed=1, rank=rank,
                                           world_size=world)
    first = lambda ld: next(ld.batches())[1]  # noqa: E731
    single, rank0, rank1 = first(make(0, 1)), first(make(0, 2)), first(make(1, 2))
    assert torch.equal(single, rank0) and not torch.equal(rank0, rank1)


# -- collective helpers ----------------------------------------------------------------------------
def test_helpers_are_no_ops_in_a_single_process():
    t = torch.tensor([1.0, 2.0])
    assert ddp.all_sum(t) is t and ddp.any_true(True, t.device) and not ddp.any_true(False, t.device)
    assert ddp.first_flagged(torch.tensor(-1)) == -1 and ddp.first_flagged(torch.tensor(7)) == 7
    assert torch.equal(ddp.gather_cat(t), t)
    with ddp.main_first(ddp.DistInfo(0, 0, 1)):
        pass


def test_helpers_in_a_one_process_gloo_group(tmp_path, monkeypatch):
    """The collective code paths themselves (init with a timeout, gather, min, buffers) with gloo."""
    monkeypatch.setenv("CIFARTUI_DIST_TIMEOUT_MIN", "0.5")
    assert ddp.timeout().total_seconds() == 30
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1,
                                         timeout=ddp.timeout())
    try:
        assert ddp.first_flagged(torch.tensor(-1)) == -1 and ddp.first_flagged(torch.tensor(4)) == 4
        assert ddp.gather_cat(torch.arange(5)).tolist() == [0, 1, 2, 3, 4]
        assert ddp.gather_cat(torch.zeros(0, dtype=torch.int64)).numel() == 0
        bn = torch.nn.BatchNorm2d(3)
        bn.running_mean.fill_(2.0)
        ddp.average_buffers(bn)
        ddp.broadcast_state(bn)
        assert torch.allclose(bn.running_mean, torch.full((3,), 2.0)) and int(bn.num_batches_tracked) == 0
        with ddp.main_first(ddp.DistInfo(0, 0, 2)):  # barriers run (a group of one passes them at once)
            pass
    finally:
        torch.distributed.destroy_process_group()


def test_schema_has_the_ddp_options():
    from cifartui.config import load

    cfg = load(None, ["train.sync_bn=true", "train.scale_lr=true"])
    assert cfg.train.sync_bn and cfg.train.scale_lr
    assert not load(None).train.sync_bn and not load(None).train.scale_lr


def test_a_resume_position_and_lr_map_to_another_world_size(tmp_path, monkeypatch):
    """Trainer._adapt_to_world_size: last.pt of a 2-process run (scale_lr) resumed by one process."""
    from cifartui.config import load
    from cifartui.core.engine import Trainer, lr_factor

    from support import tiny_overrides

    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    trainer = Trainer(load(None, tiny_overrides(tmp_path, **{"train.epochs": 3, "train.scale_lr": True, "train.batch_size": 32})), None)
    trainer.setup()
    steps, lr = len(trainer.train_loader), trainer.cfg.train.lr
    trainer.epoch, trainer.step = 2, 3  # 3 steps of 2 processes into epoch 2 (their lr was 2x: scale_lr)
    trainer._adapt_to_world_size(2)
    assert trainer.step == 6 and trainer.scheduler.step == steps + 6
    for group in trainer.optimizer.param_groups:  # the lr of one process at that point, in every group
        assert group["lr"] == pytest.approx(lr * lr_factor(steps + 6, 3 * steps, 0, "cosine", steps))


# -- torchrun end to end -----------------------------------------------------------------------------
def _config(tmp_path, **extra) -> Path:
    values = {
        "name": "ddp", "seed": 0, "device": "cpu",
        "data.source": "synthetic", "data.num_classes": 10, "data.train_size": 512, "data.test_size": 127,
        "data.val_fraction": 0.2, "data.augment": "standard",
        "model.name": "resnet10t", "train.epochs": 2, "train.batch_size": 32, "train.eval_batch_size": 24,
        "train.lr": 2e-3, "train.log_interval": 4, "output.root": str(tmp_path / "runs"),
    }
    values.update(extra)
    import yaml

    tree: dict = {}
    for key, value in values.items():
        node = tree
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def _env():
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", CIFARTUI_DIST_TIMEOUT_MIN="2")
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _torchrun(*args, nproc=2, script=None):
    """Start ``torchrun --standalone --nproc_per_node=N`` in its own process group (to clean up on failure)."""
    target = [str(script)] if script else ["-m", "cifartui"]
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *target, *args]
    return subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _finish(proc, timeout=TORCHRUN_TIMEOUT):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and its workers: the group this test started
        out, err = proc.communicate()
        pytest.fail(f"torchrun did not finish in {timeout}s\n{out[-3000:]}\n{err[-3000:]}")
    return proc.returncode, out, err


def single_process_eval(run_dir: Path) -> dict:
    """Evaluate best.pt the way a single process would: a Trainer at world size 1, its own loaders."""
    from cifartui import config
    from cifartui.core import checkpoint as ckpt
    from cifartui.core.engine import Trainer
    from cifartui.core.model import load_exact_weights

    trainer = Trainer(config.load(run_dir / "config.yaml"), None)
    assert trainer.dist.world_size == 1
    trainer.setup()
    best = run_dir / "best.pt"
    load_exact_weights(trainer.model, ckpt.state_dict_of(ckpt.load(best)), str(best), "best.pt")
    return {"val": trainer.evaluate(trainer.val_loader), "test": trainer.evaluate(trainer.test_loader)}


@pytest.mark.slow
def test_torchrun_two_processes_equal_a_single_process_evaluation(tmp_path, monkeypatch):
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    cfg = _config(tmp_path)
    t0 = time.monotonic()
    code, out, err = _finish(_torchrun("--headless", "train", str(cfg)))
    took = time.monotonic() - t0
    assert code == 0, out[-3000:] + err[-3000:]
    (run,) = list_runs(tmp_path / "runs")  # rank 0 alone made the run folder
    run_dir = Path(run.path)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [run.id]
    events, _ = read_events(run_dir / "events.jsonl")
    (start,) = [e for e in events if e["type"] == "run_started"]
    assert start["world_size"] == 2 and read_run(run_dir).world_size == 2
    assert events[-1]["type"] == "run_ended" and events[-1]["status"] == "completed"
    # rank 1 printed nothing: one line per epoch and one end line in the whole output
    assert out.count("run completed") == 1 and out.count("epoch 2/2 ") == 1, out

    best_epoch = max((e for e in events if e["type"] == "epoch"), key=lambda e: (e["val_acc"], -e["epoch"]))["epoch"]
    evals = RunRecord.read(run_dir).evaluations
    vals = {e.epoch: e for e in evals if e.split == "val"}
    (test_ev,) = [e for e in evals if e.split == "test"]
    reference = single_process_eval(run_dir)
    for split, ev in (("val", vals[best_epoch]), ("test", test_ev)):
        stored = load_evaluation(run_dir, ev.file)
        size = start["val_size"] if split == "val" else start["test_size"]
        assert stored["confusion"].sum() == size == ev.num_samples == len(stored["preds"])
        ref = reference[split]
        np.testing.assert_array_equal(stored["confusion"], ref.confusion)
        np.testing.assert_array_equal(stored["targets"], ref.targets)
        np.testing.assert_array_equal(stored["preds"], ref.preds)
        assert ev.top1 == pytest.approx(ref.top1, abs=1e-12) and ev.top5 == pytest.approx(ref.top5, abs=1e-12)
        assert ev.loss == pytest.approx(ref.loss, rel=1e-5)
        np.testing.assert_allclose(stored["true_prob"].astype(np.float32), ref.true_prob.astype(np.float32), atol=2e-3)
    # the test split's every-class probabilities (for `suspects`): gathered from both ranks in dataset order
    stored = load_evaluation(run_dir, test_ev.file)
    probs = stored["probs"].astype(np.float32)
    assert probs.shape == (start["test_size"], start["num_classes"])
    np.testing.assert_allclose(probs[np.arange(len(probs)), stored["targets"]], reference["test"].true_prob.astype(np.float32),
                               atol=2e-3)
    print(f"\ntorchrun 2 x CPU run: {took:.1f}s")


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _rank_pid(torchrun_pid: int, rank: int) -> int | None:
    for pid in _descendants(torchrun_pid):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return pid
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds rank 1's pid through /proc")
def test_a_stop_request_on_one_rank_stops_both_and_the_run_resumes_in_one_process(tmp_path):
    cfg = _config(tmp_path, **{"train.epochs": 40, "train.log_interval": 1})
    proc = _torchrun("--headless", "train", str(cfg))
    try:
        events_file = lambda: next((tmp_path / "runs").glob("*/events.jsonl"), None)  # noqa: E731
        # signal in the middle of epoch 2 (best.pt exists by then; the resume has to map a mid-epoch position)
        mid_epoch_2 = lambda: events_file() and any(  # noqa: E731
            e["type"] == "step" and e["epoch"] >= 2 and e["step"] >= 2 for e in read_events(events_file())[0])
        wait_until(mid_epoch_2, 150, "epoch 2 of the torchrun run", every=0.2)
        live = read_run(events_file().parent)  # what `cifartui runs` and the app see: a live run like any other
        assert live.status == "running" and live.world_size == 2
        rank1 = _rank_pid(proc.pid, 1)
        assert rank1 is not None
        os.kill(rank1, signal.SIGTERM)  # only rank 1 is asked to stop: rank 0 must follow at its next step
        # rank 0 follows within a step; a rank left waiting would hang until this timeout fails the test
        code, out, err = _finish(proc, timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert code != 0  # a stopped run is not a finished one
    (run,) = list_runs(tmp_path / "runs")
    run_dir = Path(run.path)
    events, _ = read_events(run_dir / "events.jsonl")
    assert events[-1]["type"] == "run_ended" and events[-1]["status"] == "stopped", events[-1]
    state = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    assert state["world_size"] == 2
    epoch, step = int(state["epoch"]), int(state["step"])
    # rank 1 stops without a word; rank 0 says why it stopped, once
    assert out.count("stop requested in another process") == 1 and "SIGTERM: stopping" not in err, out[-2000:]

    # resume the two-process run in a single process (world size 1), finishing the interrupted epoch
    resumed = subprocess.run([PYTHON, "-m", "cifartui", "--headless", "train", "--resume", str(run_dir),
                              "--set", f"train.epochs={epoch}"], cwd=REPO, env=_env(), capture_output=True,
                             text=True, timeout=TORCHRUN_TIMEOUT)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    events, _ = read_events(run_dir / "events.jsonl")
    starts = [e for e in events if e["type"] == "run_started"]
    assert [s["world_size"] for s in starts] == [2, 1] and starts[1]["resumed_from_epoch"] == epoch
    logs = " ".join(e.get("message", "") for e in events if e["type"] == "log")
    assert "written by 2 process(es), this run has 1" in logs
    assert step > 0 and f"step {step} -> step {2 * step}" in logs  # k steps of 2 ranks = 2k steps of one
    assert events[-1]["status"] == "completed" and read_run(run_dir).status == "completed"


@pytest.mark.slow
def test_a_stop_request_file_stops_every_rank_of_a_torchrun_job(tmp_path):
    """What x in the app does to a run another process trains: a file in the run folder, no signal, no pid."""
    from cifartui.record.control import request_stop

    cfg = _config(tmp_path, **{"train.epochs": 40, "train.log_interval": 1})
    proc = _torchrun("--headless", "train", str(cfg))
    try:
        events_file = lambda: next((tmp_path / "runs").glob("*/events.jsonl"), None)  # noqa: E731
        stepping = lambda: events_file() and any(e["type"] == "step" for e in read_events(events_file())[0])  # noqa: E731
        wait_until(stepping, 150, "the first steps of the torchrun run", every=0.2)
        request_stop(events_file().parent, by="a test")
        code, out, err = _finish(proc, timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert code == 0, err[-2000:]  # both ranks stopped as asked
    (run,) = list_runs(tmp_path / "runs")
    assert run.status == "stopped" and "stopped by request from a test" in run.reason and run.epochs_done < 40
    assert (Path(run.path) / "last.pt").exists() and not (Path(run.path) / "stop.request").exists()


FAILING_RANK = """
import sys
from cifartui.core import engine

def boom(self, loader):
    raise RuntimeError("injected failure on rank 1")

import os
if os.environ.get("RANK") == "1":
    engine.Trainer.evaluate = boom
from cifartui.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_failing_rank_does_not_leave_the_other_waiting(tmp_path):
    script = tmp_path / "failing_rank.py"
    script.write_text(FAILING_RANK)
    cfg = _config(tmp_path, **{"train.epochs": 1})
    # the surviving rank must not sit out the 2-minute collective timeout: this timeout fails the test first
    code, out, err = _finish(_torchrun("--headless", "train", str(cfg), script=script), timeout=90)
    assert code != 0
    assert "[rank 1] error: RuntimeError: injected failure on rank 1" in err
    (run,) = list_runs(tmp_path / "runs")
    assert run.status in ("failed", "crashed"), run.status  # never left "running"
