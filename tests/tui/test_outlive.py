"""Runs outlive the terminal, in a real terminal (tmux) with real processes and real run folders.

- the terminal closes mid-run (tmux kills the pane's pty: the kernel sends SIGHUP): the run still ends
  completed, with the same figures as an uninterrupted run;
- q then b: the app's process exits at once, a detached process finishes the run, same figures;
- a run trained by another process (headless), reattached by plain `cifartui`, stopped with x then y.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testkit.terminal import Tmux  # the one terminal driver of tests and benchmarks
from tui_support import REPO
from support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]

EXE = Path(sys.executable).parent / "cifartui"
# The demo (synthetic images, resnet10t), three epochs of ~2 s on a CPU: long enough to cut one short.
RUN = ["train.epochs=3", "train.log_interval=1", "device=cpu"]


def sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def events(run: Path) -> list[dict]:
    try:
        lines = (run / "events.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a line being written
    return out


def the_run(root: Path) -> Path | None:
    runs = [p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []
    return runs[0] if len(runs) == 1 else None


def reached_epoch(root: Path, epoch: int):
    run = the_run(root)
    return run if run is not None and any(e["type"] == "epoch" and e["epoch"] >= epoch for e in events(run)) else None


def summary(run: Path) -> dict:
    try:
        return json.loads((run / "summary.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def figures(run: Path) -> dict:
    """What an uninterrupted run must reproduce: every epoch's losses and accuracies, the test score."""
    ev = events(run)
    epochs = {e["epoch"]: (e["train_loss"], e["val_loss"], e["val_acc"]) for e in ev if e["type"] == "epoch"}
    test = [(e["loss"], e["top1"]) for e in ev if e["type"] == "evaluation" and e["split"] == "test"]
    return {"epochs": epochs, "test": test[-1] if test else None}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("reference") / "runs"
    done = subprocess.run([str(EXE), "--headless", "train", str(REPO / "configs" / "demo.yaml"),
                           *sets(RUN + [f"output.root={root}"])], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return figures(the_run(root))


def app_in_tmux(tmp_path: Path, root: Path, *extra: str) -> Tmux:
    args = [str(EXE), "--root", str(root), *extra]
    command = f"cd {shlex.quote(str(tmp_path))} && {shlex.join(args)}; echo EXIT=$?; sleep 120"
    tmux = Tmux(f"cifartui-outlive-{os.getpid()}-{time.monotonic_ns()}", 160, 48)
    tmux.start(command)
    return tmux


def start_demo(tmp_path: Path, root: Path) -> tuple[Tmux, Path]:
    tmux = app_in_tmux(tmp_path, root, "--config", str(REPO / "configs" / "demo.yaml"), *sets(RUN))
    tmux.wait("valid", 60)
    tmux.keys("Escape", "s")
    run = wait_until(lambda: reached_epoch(root, 1), 180, "the first epoch in the app")
    return tmux, run


def test_closing_the_terminal_mid_run_lets_the_run_complete(tmp_path, reference):
    root = tmp_path / "runs"
    tmux, run = start_demo(tmp_path, root)
    app_pid = summary(run)["pid"]
    assert summary(run)["epochs_done"] < 3, "the run ended before the terminal could be closed"
    tmux.kill()  # the terminal goes away: its pty hangs up and the app gets SIGHUP
    wait_until(lambda: not pid_alive(app_pid), 240, "the app's process to exit")
    s = summary(run)
    assert s["status"] == "completed" and s["epochs_done"] == 3 and s["pid"] == app_pid
    assert figures(run) == reference, "training after the hang-up differs from an uninterrupted run"
    log = (run / "train.log").read_text()
    assert "hung up" in log and "run completed" in log


def test_q_then_b_quits_at_once_and_a_detached_process_finishes_the_run(tmp_path, reference):
    root = tmp_path / "runs"
    tmux, run = start_demo(tmp_path, root)
    try:
        app_pid = summary(run)["pid"]
        tmux.keys("q")
        tmux.wait("Keep training in the background", 20)
        tmux.keys("b")
        screen = tmux.wait("EXIT=0", 60)  # the shell has its prompt back: the app's process is gone
        assert "trains on in the background" in screen
        assert not pid_alive(app_pid)
    finally:
        tmux.kill()
    wait_until(lambda: summary(run).get("status") == "completed", 240, "the handed-off run to complete")
    s = summary(run)
    assert s["pid"] != app_pid and s["epochs_done"] == 3
    wait_until(lambda: not pid_alive(s["pid"]), 30, "the detached process to exit")
    assert figures(run) == reference, "the handed-off run differs from an uninterrupted run"
    statuses = [e["status"] for e in events(run) if e["type"] == "run_ended"]
    assert statuses == ["stopped", "completed"]
    assert "resumed at epoch" in (run / "train.log").read_text()


def test_plain_cifartui_reattaches_to_a_headless_run_and_x_y_stops_it(tmp_path):
    root = tmp_path / "runs"
    headless = subprocess.Popen([str(EXE), "--headless", "train", str(REPO / "configs" / "demo.yaml"),
                                 *sets(["train.epochs=50", "train.log_interval=1", "device=cpu", f"output.root={root}"])],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    tmux = None
    try:
        run = wait_until(lambda: reached_epoch(root, 1), 180, "the headless run's first epoch")
        tmux = app_in_tmux(tmp_path, root)  # no --run, no --config: the one live run opens
        tmux.wait("following pid", 60)
        assert run.name in tmux.screen()
        tmux.keys("x")
        tmux.wait("Stop this run?", 20)
        tmux.keys("y")
        headless.wait(timeout=120)
    finally:
        if headless.poll() is None:
            os.killpg(headless.pid, signal.SIGKILL)
        if tmux is not None:
            tmux.kill()
    assert headless.returncode == 0, headless.stderr.read()[-2000:]
    s = summary(run)
    assert s["status"] == "stopped" and "stopped by request" in s["reason"] and s["epochs_done"] < 50
    assert (run / "last.pt").exists() and not (run / "stop.request").exists()
