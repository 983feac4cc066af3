"""Fixtures for the app's tests: fixture runs on disk (no torch), a tiny training config, app factory."""

from __future__ import annotations

import asyncio
import inspect
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tui_fixtures import build_fixture_root  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "inputs"

# A few seconds of real training on the CPU: synthetic data, timm's smallest ResNet.
TINY = {
    "data.source": "synthetic", "data.num_classes": 4, "data.train_size": 400, "data.test_size": 100,
    "data.synthetic_size": 16, "model.name": "test_resnet", "model.pretrained": False, "train.epochs": 1,
    "train.batch_size": 64, "train.log_interval": 1, "train.warmup_epochs": 0, "device": "cpu", "name": "tiny",
}


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run ``async def`` tests (Pilot) in a fresh event loop, without an async plugin."""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        asyncio.run(pyfuncitem.obj(**args))
        return True
    return None


@pytest.fixture(scope="session")
def fixture_root(tmp_path_factory) -> Path:
    """``<tmp>/runs`` with four finished fixture runs; read-only for the tests."""
    root = tmp_path_factory.mktemp("fx") / "runs"
    build_fixture_root(root)
    return root


@pytest.fixture
def tiny_config(tmp_path):
    from cifartui.config import Config

    def make(**extra):
        values = dict(TINY)
        values["output.root"] = str(tmp_path / "runs")
        values.update(extra)
        return Config().with_overrides(**values)

    return make


def make_app(root, **kwargs):
    from cifartui.tui.app import CifarApp

    kwargs.setdefault("redraw_interval", 0.0)
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
