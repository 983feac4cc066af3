"""Helpers for the app's tests. Not in conftest.py: tests/conftest.py exists too, and ``from conftest import``
would get whichever of the two pytest imported last."""

from __future__ import annotations

from pathlib import Path

from support import TINY  # noqa: F401 - the one tiny config of the tests (tests/support.py)

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "inputs"


def make_app(root, **kwargs):
    from cifartui.tui.app import CifarApp

    kwargs.setdefault("redraw_interval", 0.0)
    kwargs.setdefault("progressive", False)  # the form is there at the first pause (one test covers progressive)
    kwargs.setdefault("follow_interval", 0.1)
    kwargs.setdefault("runs_refresh_interval", 60.0)
    return CifarApp(root=root, **kwargs)
