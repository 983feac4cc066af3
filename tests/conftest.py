import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "cifar100-real"
PYTHON = sys.executable

# Deterministic and quiet: never let a test reach for the network or a GPU.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def tiny_overrides(root, **extra):
    """--set items for a few-second synthetic run."""
    values = {
        "data.source": "synthetic", "data.num_classes": 4, "data.train_size": 320, "data.test_size": 80,
        "data.synthetic_size": 16, "model.name": "test_resnet", "train.epochs": 1, "train.batch_size": 32,
        "train.log_interval": 2, "output.root": str(root), "device": "cpu",
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


@pytest.fixture
def runs_root(tmp_path):
    return tmp_path / "runs"
