"""Helpers for the app's tests. Not in conftest.py: tests/conftest.py exists too, and ``from conftest import``
would get whichever of the two pytest imported last."""

from __future__ import annotations

import io
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


async def settle(pilot) -> None:
    """Wait for the app's workers and the messages they post, twice: handling a worker's result can start
    another worker."""
    for _ in range(2):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def text_of(widget) -> str:
    """What a widget shows, as plain text: a Static's content, else what it renders, printed 200 columns wide."""
    from rich.console import Console

    content = getattr(widget, "content", None)
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(content if content is not None else widget.render())
    return console.export_text()
