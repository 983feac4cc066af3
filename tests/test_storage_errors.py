"""Storage errors that say what happened: the first failing write is the one reported, the run ends failed
with that reason, last.pt stays the last good one (a real training subprocess whose run folder breaks)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cifartui.record.events import RunEnded
from cifartui.record.store import RunStore, StorageError, read_run

from support import REPO, tiny_overrides, wait_until


@pytest.mark.slow
def test_a_write_that_fails_mid_run_is_named_and_ends_the_run_failed(tmp_path):
    root = tmp_path / "runs"
    args = [sys.executable, "-m", "cifartui", "--headless", "train", "configs/demo.yaml"]
    for item in tiny_overrides(root, **{"train.epochs": 30}):
        args += ["--set", item]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        found = wait_until(lambda: [p for p in root.glob("*/events.jsonl") if '"type":"epoch"' in p.read_text()],
                           120, what="the first epoch to end")
        run = found[0].parent
        shutil.rmtree(run / "eval")  # the folder for the evaluation arrays is gone, and a file took its name
        (run / "eval").write_text("not a folder")
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert f"cannot write {run / 'eval'}" in err and "errno" in err and "--resume" in err, err
    assert ".tmp" not in err and "Traceback" not in err and err.count("error:") == 1
    summary = read_run(run)
    assert summary.status == "failed" and "cannot write" in summary.reason
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=True)  # the last good one loads
    assert state["epoch"] >= 2


def test_an_end_that_cannot_be_summarised_leaves_the_events_to_say_why(tmp_path):
    store = RunStore.create(tmp_path, "x")
    (store.path / "summary.json").mkdir()  # summary.json cannot be replaced (a folder took its name)
    store(RunEnded(status="failed", reason="cannot write /somewhere (No space left on device, errno 28)"))
    store.close()
    last = json.loads((store.path / "events.jsonl").read_text().splitlines()[-1])
    assert last["type"] == "run_ended" and last["status"] == "failed"
    with pytest.raises(StorageError):  # any other event: the first failing write is raised, named
        RunStore.open(store.path)(_epoch_with_arrays(store.path))


def _epoch_with_arrays(run: Path):
    import numpy as np

    from cifartui.record.events import Evaluation

    (run / "eval").rmdir()
    (run / "eval").write_text("not a folder")
    return Evaluation(split="val", epoch=1, loss=1.0, top1=0.5, top5=1.0, num_samples=2,
                      arrays={"confusion": np.zeros((2, 2), dtype=np.int32)})
