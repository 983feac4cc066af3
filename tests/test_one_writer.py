"""One writer per run: a live run cannot be resumed beside itself, two resumes at once train once, and a
refused resume changes nothing in the run (real subprocesses, real run folders)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cifartui.record.control import RunBusy, WriterLock, request_stop

from support import REPO, hold_writer_lock, tiny_overrides, wait_until

pytestmark = pytest.mark.slow


def cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cifartui", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def sets(root: Path, **extra) -> list[str]:
    return [a for item in tiny_overrides(root, **extra) for a in ("--set", item)]


def the_run(root: Path) -> Path:
    (run,) = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return run


def status(run: Path) -> str:
    return json.loads((run / "summary.json").read_text())["status"]


def stepping(run_root: Path) -> bool:
    runs = [p for p in run_root.glob("*/events.jsonl")]
    return bool(runs) and '"type":"step"' in runs[0].read_text()


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path):
    lock = WriterLock.acquire(tmp_path)
    holder = subprocess.run([sys.executable, "-c", (
        "import sys; from cifartui.record.control import WriterLock, RunBusy\n"
        f"try: WriterLock.acquire({str(tmp_path)!r})\n"
        "except RunBusy as e: print(e); sys.exit(2)")], capture_output=True, text=True, cwd=REPO)
    assert holder.returncode == 2 and f"pid {os.getpid()}" in holder.stdout
    lock.release()
    again = WriterLock.acquire(tmp_path)  # released: free again
    again.release()
    # a holder killed with SIGKILL leaves no stale lock: the kernel drops it with the process
    with hold_writer_lock(tmp_path) as child:
        with pytest.raises(RunBusy):
            WriterLock.acquire(tmp_path)
        child.send_signal(signal.SIGKILL)
        child.wait()
        WriterLock.acquire(tmp_path).release()


def test_resuming_a_live_run_is_refused_and_changes_nothing(tmp_path):
    root = tmp_path / "runs"
    live = cli("--headless", "train", "configs/demo.yaml", *sets(root, **{"train.epochs": 200}))
    try:
        wait_until(lambda: stepping(root), 120, "the live run's first steps")
        run = the_run(root)
        resume = cli("--headless", "train", "--resume", str(run))
        _, err = resume.communicate(timeout=120)
        assert resume.returncode == 2, err
        assert f"pid {live.pid}" in err and "being written by" in err and "stop.request" in err
        assert err.count("error:") == 1 and "Traceback" not in err
        request_stop(run, by="the test")  # the live run goes on untouched, then stops as asked
        live.communicate(timeout=120)
    finally:
        if live.poll() is None:
            live.kill()
    assert live.returncode == 0
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert [e["status"] for e in events if e["type"] == "run_ended"] == ["stopped"]  # no "failed" from the resume
    assert len([e for e in events if e["type"] == "run_started"]) == 1 and status(run) == "stopped"


def test_two_resumes_at_once_train_once(tmp_path):
    root = tmp_path / "runs"
    first = cli("--headless", "train", "configs/demo.yaml", *sets(root, **{"train.epochs": 200}))
    wait_until(lambda: stepping(root), 120, "the first run's first steps")
    run = the_run(root)
    first.send_signal(signal.SIGINT)  # stopped mid-run: last.pt saved
    first.communicate(timeout=120)
    assert status(run) == "stopped"
    both = [cli("--headless", "train", "--resume", str(run), "--set", "train.epochs=2") for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in both]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "being written by" in refused
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    starts = [e for e in events if e["type"] == "run_started"]
    assert len(starts) == 2 and status(run) == "completed"  # the first run, then one resume


def test_a_resume_with_another_config_or_other_classes_is_refused_before_any_write(tmp_path):
    def folder(path: Path, classes: list[str]) -> Path:
        for i, name in enumerate(classes):
            (path / name).mkdir(parents=True)
            for k in range(12):
                Image.new("RGB", (16, 16), (40 * i + k, 20 * k, 200 - 30 * i)).save(path / name / f"{k}.png")
        return path

    root = tmp_path / "runs"
    data = folder(tmp_path / "data", ["cat", "dog"])
    other = folder(tmp_path / "other", ["car", "dog"])
    extra = {"data.source": "imagefolder", "data.root": str(data), "data.val_fraction": 0.25}
    done = cli("--headless", "train", "configs/demo.yaml", *sets(root, **extra))
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    run = the_run(root)
    # As if a package changed since: a resume that went ahead would write its own env.resume-N.txt
    (run / "env.txt").write_text("torch==0.0\n")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "writer.lock"}

    lr = cli("--headless", "train", "--resume", str(run), "--set", "train.lr=0.5", "--set", "train.epochs=3")
    _, err = lr.communicate(timeout=300)
    assert lr.returncode == 2 and "train.lr" in err and "differs from the run's" in err, err

    notified = tmp_path / "notified"  # a refused resume recorded no end: nothing to notify of
    classes = cli("--headless", "train", "--resume", str(run), "--set", f"data.root={other}", "--set", "train.epochs=3",
                  "--set", f"output.notify=touch {notified}")
    _, err = classes.communicate(timeout=300)
    assert classes.returncode == 2 and "classes are not the run's" in err and "'cat' -> 'car'" in err, err
    assert not notified.exists()

    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "writer.lock"}
    assert after == before and status(run) == "completed"
