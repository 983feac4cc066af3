"""`cifartui` in a real terminal (tmux): first frame before torch, train the demo, quit cleanly."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import pytest

from support import wait_until
from testkit.terminal import Tmux  # the one terminal driver of tests and benchmarks
from tui_support import REPO

DEMO_OVERRIDES = [  # the demo, cut to a few seconds on a CPU
    "train.epochs=1", "data.train_size=400", "data.test_size=100", "data.synthetic_size=16",
    "model.name=test_resnet", "train.batch_size=64", "train.log_interval=1", "device=cpu",
]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_cifartui_trains_the_demo_and_quits_in_a_terminal(tmp_path):
    root = tmp_path / "runs"
    paint = tmp_path / "paint.json"
    exe = Path(sys.executable).parent / "cifartui"
    args = [str(exe), "--root", str(root), "--config", str(REPO / "configs" / "demo.yaml")]
    for item in DEMO_OVERRIDES:
        args += ["--set", item]
    command = (f"cd {shlex.quote(str(tmp_path))} && env -u COLUMNS -u LINES CIFARTUI_FIRST_PAINT_FILE={shlex.quote(str(paint))} "
               f"{shlex.join(args)}; echo EXIT=$?; sleep 60")
    tmux = Tmux(f"cifartui-test-{os.getpid()}")
    started = time.time()
    try:
        tmux.start(command)
        screen = tmux.wait("valid", 60)
        assert "demo.yaml" in screen
        text = wait_until(lambda: paint.exists() and paint.read_text(), 30, what="the first-paint stamp")
        info = json.loads(text)
        first_frame = info["time"] - started
        assert info["torch"] is False, "the first frame must come before torch is imported"
        assert info["store"] is False, "the Config screen paints before the run store is imported"
        print(f"\nfirst frame after {first_frame:.2f}s (torch not loaded)")
        tmux.keys("Escape", "s")
        screen = tmux.wait("completed", 180)
        assert "trained here" in screen and "test (best weights" in screen
        tmux.keys("q")
        screen = tmux.wait("EXIT=0", 30)
    finally:
        tmux.kill()
    runs = [p for p in root.iterdir() if p.is_dir()]
    assert len(runs) == 1 and (runs[0] / "best.pt").exists()
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_done"] == 1
