"""`cifartui` in a real terminal (tmux): first frame before torch, train the demo, quit cleanly."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tui_support import REPO

DEMO_OVERRIDES = [  # the demo, cut to a few seconds on a CPU
    "train.epochs=1", "data.train_size=400", "data.test_size=100", "data.synthetic_size=16",
    "model.name=test_resnet", "train.batch_size=64", "train.log_interval=1", "device=cpu",
]


class Tmux:
    def __init__(self, name: str, width: int = 120, height: int = 40):
        self.base = ["tmux", "-L", name, "-f", "/dev/null"]
        self.width, self.height = width, height

    def run(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=30).stdout

    def start(self, command: str) -> None:
        subprocess.run([*self.base, "new-session", "-d", "-s", "t", "-x", str(self.width), "-y", str(self.height),
                        command], check=True, timeout=30)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        for key in keys:  # one at a time: Escape then s must not arrive as alt+s
            self.run("send-keys", "-t", "t", key)
            time.sleep(0.3)

    def wait(self, text: str, timeout: float) -> str:
        end = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < end:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} did not appear within {timeout}s; the screen:\n{screen}")

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=30)


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
        for _ in range(50):
            if paint.exists() and paint.read_text():
                break
            time.sleep(0.1)
        info = json.loads(paint.read_text())
        first_frame = info["time"] - started
        assert info["torch"] is False, "the first frame must come before torch is imported"
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
