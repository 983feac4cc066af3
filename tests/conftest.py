import os
import sys
from pathlib import Path

import pytest

# Test helpers live in tests/support.py (importable as ``support``).
sys.path.insert(0, str(Path(__file__).parent))

# Deterministic and quiet: never let a test reach for the network or a GPU.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture
def runs_root(tmp_path):
    return tmp_path / "runs"


@pytest.fixture(scope="session")
def noisy_run(tmp_path_factory):
    """A real run on a tiny image folder in which every tenth training label is wrong (support.noisy_folder),
    trained once for the session: the tests of `suspects`, `cam`, data.exclude and the drilldown's g key."""
    from support import train_noisy_run

    return train_noisy_run(tmp_path_factory.mktemp("noisy"))
