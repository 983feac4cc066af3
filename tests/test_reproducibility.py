"""What made a run (versions, host, argv, git, env.txt, git.diff) and output.notify, on a real tiny run.

One headless run in a subprocess (so ``argv`` is a real command line), started in a temporary git
repository whose tracked file is modified; its notify command writes its environment to a file and then
sleeps past the time limit, so the same run shows that a slow notify is killed without touching the run.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cifartui.cli import main
from cifartui.environment import Snapshot, git_state, installed_packages, take
from cifartui.record.read_model import RunRecord
from cifartui.record.store import list_runs

from support import tiny_yaml

NOTIFY = """env | grep '^CIFARTUI_' | sort > "$NOTIFY_OUT"
echo "notify started"
sleep 60
"""


def git(cwd, *args) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def dirty_repo_run(tmp_path_factory):
    """(run folder, repo, argv, notify output file, exit code) of one tiny run started inside a dirty git tree."""
    base = tmp_path_factory.mktemp("repro")
    repo, runs = base / "repo", base / "runs"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "train_notes.py").write_text("lr = 1e-4\n")
    git(repo, "add", ".")
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "start")
    (repo / "train_notes.py").write_text("lr = 3e-4  # tried after the first run\n")  # tracked and modified: dirty
    (base / "notify.sh").write_text(NOTIFY)
    cfg = tiny_yaml(runs, **{"output.notify": f"sh {base / 'notify.sh'}", "output.notify_timeout": 2})
    (base / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    argv = ["--headless", "train", str(base / "tiny.yaml")]
    env = {**os.environ, "NOTIFY_OUT": str(base / "notified.txt")}
    done = subprocess.run([sys.executable, "-m", "cifartui", *argv], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=300)
    (run,) = list_runs(runs)
    return Path(run.path), repo, argv, base / "notified.txt", done


def started_environment(run_dir):
    return RunRecord.read(run_dir).environment


def test_run_started_records_the_installed_versions(dirty_repo_run):
    run_dir, repo, argv, _, done = dirty_repo_run
    assert done.returncode == 0, done.stderr
    env = started_environment(run_dir)
    assert env["python"] == platform.python_version()
    for package in ("torch", "torchvision", "timm", "cifartui"):
        assert env[package] == importlib.metadata.version(package), package
    assert env["host"] == socket.gethostname()
    assert env["argv"][1:] == argv and env["argv"][0].endswith("__main__.py")  # python -m cifartui ...
    assert env["cwd"] == str(repo)
    assert env["torch_build"].startswith(env["torch"])  # torch.__version__, with the wheel's +cuXXX tag
    assert "cuda" not in env and "gpus" not in env  # a CPU run: nothing made up


def test_env_txt_lists_every_installed_package(dirty_repo_run):
    run_dir = dirty_repo_run[0]
    lines = (run_dir / "env.txt").read_text().splitlines()
    assert lines == installed_packages() and lines == sorted(lines, key=str.lower)
    for package in ("torch", "timm", "pytest"):
        assert f"{package}=={importlib.metadata.version(package)}" in lines


def test_dirty_git_tree_records_commit_and_saves_the_diff(dirty_repo_run):
    run_dir, repo = dirty_repo_run[:2]
    env = started_environment(run_dir)
    assert env["git"] == {"root": str(repo), "commit": git(repo, "rev-parse", "HEAD").strip(), "dirty": True}
    diff = (run_dir / "git.diff").read_text()
    assert "+lr = 3e-4  # tried after the first run" in diff and "-lr = 1e-4" in diff
    assert env["files"] == {"packages": "env.txt", "git_diff": "git.diff"}


def test_show_json_and_show_print_the_environment(dirty_repo_run, capsys):
    run_dir = dirty_repo_run[0]
    assert main(["show", str(run_dir), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["environment"]
    assert {"python", "torch", "timm", "host", "argv"} <= set(shown)
    assert shown == started_environment(run_dir)
    assert main(["show", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert f"torch {shown['torch']}" in text and f"git {shown['git']['commit'][:12]}" in text


def test_notify_sees_the_run_and_a_slow_one_is_killed_without_failing_the_run(dirty_repo_run):
    run_dir, _, _, notified, done = dirty_repo_run
    record = RunRecord.read(run_dir)
    seen = dict(line.split("=", 1) for line in notified.read_text().splitlines())
    assert seen["CIFARTUI_RUN"] == run_dir.name and seen["CIFARTUI_RUN_DIR"] == str(run_dir.resolve())
    assert seen["CIFARTUI_STATUS"] == "completed" == record.status
    assert float(seen["CIFARTUI_TEST_ACC"]) == record.test.top1
    assert float(seen["CIFARTUI_BEST_VAL"]) == record.best.val_acc
    assert done.returncode == 0 and record.status == "completed"  # the notify was killed; the run is untouched
    log = (run_dir / "train.log").read_text()
    assert "notify: killed after 2 s (output.notify_timeout); it said: notify started" in log
    assert "output.notify: killed after 2 s" in done.stderr


# -- the parts, without training -------------------------------------------------------------------------
def test_git_state_outside_a_repository_and_without_git(tmp_path, monkeypatch):
    assert git_state(tmp_path) == (None, "")
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable at all: no git fields, no error
    assert git_state(tmp_path) == (None, "")
    assert "git" not in take(cwd=tmp_path).environment


def test_clean_tree_is_not_dirty_and_untracked_files_do_not_count(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "a")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "new.txt").write_text("untracked\n")
    state, diff = git_state(tmp_path)
    assert state["dirty"] is False and diff == ""


def test_resume_keeps_the_first_files_and_adds_its_own_when_they_differ(tmp_path):
    first = Snapshot(environment={}, packages=["a==1", "b==2"], diff="diff one\n")
    first.write(tmp_path)
    same = Snapshot(environment={}, packages=["a==1", "b==2"], diff="")
    same.write(tmp_path, resumed_from=3)
    assert same.environment["files"] == {"packages": "env.txt"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env.txt", "git.diff"]
    changed = Snapshot(environment={}, packages=["a==1", "b==3"], diff="diff two\n")
    changed.write(tmp_path, resumed_from=4)
    assert changed.environment["files"] == {"packages": "env.resume-4.txt", "git_diff": "git.resume-4.diff"}
    assert (tmp_path / "env.txt").read_text() == "a==1\nb==2\n" and (tmp_path / "git.diff").read_text() == "diff one\n"
    assert (tmp_path / "env.resume-4.txt").read_text() == "a==1\nb==3\n"


def test_runs_written_before_the_field_read_as_an_empty_environment():
    record = RunRecord()
    record.apply({"type": "run_started", "run_id": "old", "name": "old", "device": "cpu", "num_classes": 2,
                  "class_names": ["a", "b"], "epochs": 1, "steps_per_epoch": 1, "train_size": 1, "val_size": 1,
                  "test_size": 1})
    assert record.started is not None and record.environment == {}


def test_environment_files_are_written_with_the_first_start_or_end_of_the_run(tmp_path):
    """session's sink: env.txt names itself in run_started; a new run that fails in set-up (no run_started)
    still gets it with its run_ended; a resume refused at set-up emits neither and gets nothing."""
    from cifartui.record.events import RunEnded, RunStarted
    from cifartui.session import _EnvironmentFiles

    def started() -> RunStarted:
        return RunStarted(run_id="r", name="r", device="cpu", num_classes=2, class_names=["a", "b"], epochs=1,
                          steps_per_epoch=1, train_size=1, val_size=1, test_size=1, environment={"python": "3.11"})

    for name, events in (("starts", [started(), RunEnded(status="completed")]),
                         ("fails-in-set-up", [RunEnded(status="failed", reason="RuntimeError: out of memory")]),
                         ("refused", [])):
        run = tmp_path / name
        run.mkdir()
        sink = _EnvironmentFiles(Snapshot(environment={}, packages=["a==1"]), run, resumed_at=None)
        for event in events:
            sink(event)
        assert sorted(p.name for p in run.iterdir()) == ([] if name == "refused" else ["env.txt"]), name
        if name == "starts":
            assert events[0].environment == {"python": "3.11", "files": {"packages": "env.txt"}}
