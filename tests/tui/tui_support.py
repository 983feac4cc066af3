"""Helpers for the app's tests. Not in conftest.py: tests/conftest.py exists too, and ``from conftest import``
would get whichever of the two pytest imported last."""

from __future__ import annotations

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

