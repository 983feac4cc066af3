"""Measure the app (not a test): first-frame time, and training throughput with the dashboard open
against headless, same config, same machine, runs interleaved (headless, app, headless, app ...).

    .venv/bin/python tests/tui/measure.py [--repeats 2] [--set KEY=VALUE ...]

Throughput is the trainer's own figure (images/s over the training steps of each epoch, from the
``epoch`` events), so data loading, model building and evaluation are left out of both sides.
The app runs in a real terminal (tmux, 160x48) with the Dashboard on screen the whole time.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "cifartui"
DEFAULT = ["train.epochs=2", "data.train_size=1500", "data.test_size=200", "train.log_interval=1", "device=cpu"]


def throughput(root: Path) -> tuple[float, float]:
    runs = [p for p in root.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    events = [json.loads(line) for line in (runs[0] / "events.jsonl").read_text().splitlines() if line.strip()]
    epochs = [e for e in events if e["type"] == "epoch"]
    ended = [e for e in events if e["type"] == "run_ended"]
    assert ended and ended[-1]["status"] == "completed", ended
    seen = sum(e["images_per_second"] * e["epoch_seconds"] for e in epochs)  # weight by time
    return seen / sum(e["epoch_seconds"] for e in epochs), sum(e["epoch_seconds"] for e in epochs)


def headless(overrides: list[str], root: Path) -> tuple[float, float]:
    args = [str(EXE), "--headless", "train", str(REPO / "configs" / "demo.yaml"), "--root", str(root)]
    for o in overrides:
        args += ["--set", o]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800)
    return throughput(root)


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", f"measure-{os.getpid()}", "-f", "/dev/null", *args],
                          capture_output=True, text=True, timeout=60).stdout


def _app_pid() -> int | None:
    """The cifartui process under the tmux pane's shell."""
    shell = tmux("display", "-p", "-t", "m", "#{pane_pid}").strip()
    for child in Path("/proc").glob("[0-9]*"):
        try:
            stat = (child / "stat").read_text().split()
            if stat[3] == shell and "cifartui" in (child / "cmdline").read_text():
                return int(child.name)
        except OSError:
            continue
    return None


def _cpu_seconds(pid: int, tid: int | None = None) -> float:
    """CPU time (user + system) of a process, or of one of its threads."""
    path = Path(f"/proc/{pid}/task/{tid}/stat") if tid else Path(f"/proc/{pid}/stat")
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def app(overrides: list[str], root: Path) -> tuple[float, float, float, float]:
    paint = root.parent / f"paint-{root.name}.json"
    args = [str(EXE), "--root", str(root), "--config", str(REPO / "configs" / "demo.yaml")]
    for o in overrides:
        args += ["--set", o]
    cmd = f"env -u COLUMNS -u LINES CIFARTUI_FIRST_PAINT_FILE={shlex.quote(str(paint))} {shlex.join(args)}; sleep 600"
    start = time.time()
    tmux("new-session", "-d", "-s", "m", "-x", "160", "-y", "48", cmd)
    try:
        while "valid" not in tmux("capture-pane", "-p", "-t", "m"):
            time.sleep(0.2)
            if time.time() - start > 120:
                raise RuntimeError("the app did not show its config")
        while not (paint.exists() and paint.read_text()):
            time.sleep(0.05)
        first = json.loads(paint.read_text())
        assert not first["torch"]
        pid = _app_pid()
        ui0 = all0 = 0.0
        for key in ("Escape", "s"):
            tmux("send-keys", "-t", "m", key)
            time.sleep(0.3)
        while "epoch 1/" not in tmux("capture-pane", "-p", "-t", "m"):  # training started
            time.sleep(0.1)
        if pid:
            ui0, all0 = _cpu_seconds(pid, pid), _cpu_seconds(pid)
        ui_share = float("nan")
        while "completed" not in (screen := tmux("capture-pane", "-p", "-t", "m")):
            if pid and "test (best weights" not in screen:
                ui_share = (_cpu_seconds(pid, pid) - ui0) / max(1e-9, _cpu_seconds(pid) - all0)
            time.sleep(0.5)
            if time.time() - start > 1800:
                raise RuntimeError("training in the app did not finish")
        tmux("send-keys", "-t", "m", "q")
        time.sleep(1.0)
    finally:
        tmux("kill-server")
    ips, secs = throughput(root)
    return ips, secs, first["time"] - start, ui_share


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--set", dest="overrides", action="append", default=None)
    a = p.parse_args()
    overrides = a.overrides or DEFAULT
    head, dash, frames, shares = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeats):
            h = headless(overrides, Path(tmp) / f"h{i}")
            d = app(overrides, Path(tmp) / f"a{i}")
            head.append(h[0])
            dash.append(d[0])
            frames.append(d[2])
            shares.append(d[3])
            print(f"round {i + 1}: headless {h[0]:.1f} img/s ({h[1]:.1f}s training), "
                  f"dashboard {d[0]:.1f} img/s ({d[1]:.1f}s training), first frame {d[2]:.2f}s, "
                  f"UI thread {100 * d[3]:.1f}% of the app's CPU while training, load {os.getloadavg()[0]:.2f}", flush=True)
    print(f"config: configs/demo.yaml --set {' --set '.join(overrides)}")
    print(f"headless   median {statistics.median(head):.1f} img/s")
    print(f"dashboard  median {statistics.median(dash):.1f} img/s  (ratio {statistics.median(dash) / statistics.median(head):.3f})")
    print(f"UI thread  median {100 * statistics.median(shares):.1f}% of the app process's CPU time while training")
    print(f"first frame median {statistics.median(frames):.2f}s (process start to first paint, torch not loaded)")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
