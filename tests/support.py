"""Helpers shared by the tests. A module of its own (not conftest) because two conftest.py files exist and
``from conftest import ...`` would get whichever pytest imported last."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "cifar100-real"
PYTHON = sys.executable


def tiny_overrides(root, **extra):
    """--set items for a few-second synthetic run."""
    values = {
        "data.source": "synthetic", "data.num_classes": 4, "data.train_size": 320, "data.test_size": 80,
        "data.synthetic_size": 16, "model.name": "test_resnet", "train.epochs": 1, "train.batch_size": 32,
        "train.log_interval": 2, "output.root": str(root), "device": "cpu",
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def wait_until(predicate, timeout: float = 60.0, what: str = "the condition", every: float = 0.05):
    """Poll ``predicate`` until it returns something true (returned), or fail after ``timeout`` seconds."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    value = predicate()
    if value:
        return value
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
