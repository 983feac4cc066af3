"""Helpers for the app's tests. Not in conftest.py: tests/conftest.py exists too, and ``from conftest import``
would get whichever of the two pytest imported last."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "inputs"

# A few seconds of real training on the CPU: synthetic data, timm's smallest ResNet.
TINY = {
    "data.source": "synthetic", "data.num_classes": 4, "data.train_size": 400, "data.test_size": 100,
    "data.synthetic_size": 16, "model.name": "test_resnet", "model.pretrained": False, "train.epochs": 1,
    "train.batch_size": 64, "train.log_interval": 1, "train.warmup_epochs": 0, "device": "cpu", "name": "tiny",
}


def make_app(root, **kwargs):
    from cifartui.tui.app import CifarApp

    kwargs.setdefault("redraw_interval", 0.0)
    kwargs.setdefault("progressive", False)  # the form is there at the first pause (one test covers progressive)
    kwargs.setdefault("follow_interval", 0.1)
    kwargs.setdefault("runs_refresh_interval", 60.0)
    return CifarApp(root=root, **kwargs)


async def wait_for(pilot, predicate, timeout: float = 60.0, step: float = 0.1) -> bool:
    """Let the app run until ``predicate()`` holds (training, workers, follow timers)."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        await pilot.pause(step)
    return predicate()


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
