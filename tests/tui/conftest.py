"""Fixtures for the app's tests: fixture runs on disk (no torch), a tiny training config, app factory."""

from __future__ import annotations

import asyncio
import inspect
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tui_fixtures import build_fixture_root  # noqa: E402
from tui_support import TINY  # noqa: E402


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
