"""The app in a real terminal (tmux) on a root with damaged runs: it starts, lists them (one as
`unreadable`), opens a damaged one and its confusion view, and quits cleanly (exit 0)."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import pytest

from testkit.terminal import Tmux
C100 = "20250601-101500-cifar100-resnet34"  # fixture runs (tui_fixtures.build_fixture_root)
C10 = "20250602-093000-cifar10-resnet18"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_app_in_a_terminal_survives_damaged_runs(fixture_root, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(fixture_root, root)
    c10, c100 = root / C10, root / C100
    for npz in (c10 / "eval").glob("*.npz"):  # every evaluation array of one run truncated
        npz.write_bytes(npz.read_bytes()[:100])
    (c10 / "summary.json").write_text("[1, 2, 3]")
    (c10 / "config.yaml").write_bytes(b"\xff\xfe not utf-8")
    for rel in ("summary.json", "events.jsonl"):  # another one: nothing can be read
        p = c100 / rel
        p.unlink()
        p.mkdir()
    exe = Path(sys.executable).parent / "cifartui"
    command = (f"cd {shlex.quote(str(tmp_path))} && env -u COLUMNS -u LINES {shlex.quote(str(exe))} "
               f"--root {shlex.quote(str(root))} --run {C10}; echo EXIT=$?; sleep 60")
    tmux = Tmux(f"cifartui-damaged-{os.getpid()}")
    try:
        tmux.start(command)
        tmux.wait(lambda: "EXIT=" in tmux.screen() or "epoch" in tmux.screen().lower(), 60, "the dashboard")
        assert "EXIT=" not in tmux.screen() and "Traceback" not in tmux.screen()
        tmux.keys("c")
        time.sleep(1.0)
        assert "EXIT=" not in tmux.screen() and "Traceback" not in tmux.screen()
        tmux.keys("r")
        screen = tmux.wait("unreadable", 30)
        assert "EXIT=" not in screen
        tmux.keys("q")
        screen = tmux.wait("EXIT=", 30)
        assert "EXIT=0" in screen and "Traceback" not in screen
    finally:
        tmux.kill()
