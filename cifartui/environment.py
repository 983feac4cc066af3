"""What made a run, recorded when it starts: library versions, host, command line, git state, packages.

:func:`take` collects it without torch (versions come from the installed packages' metadata, so ``show``
matches ``pip list`` exactly); the trainer adds what only torch knows (CUDA, cuDNN, the GPUs) when it emits
``run_started`` (:func:`cifartui.core.environment.torch_environment`). :meth:`Snapshot.write` puts
``env.txt`` (every installed package, ``name==version``, a ``pip freeze`` read from ``importlib.metadata``:
no subprocess into pip) and, when the working tree has uncommitted changes, ``git.diff`` in the run folder.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifartui.record.atomic import atomic_write_text

ENV_FILE = "env.txt"
GIT_DIFF_FILE = "git.diff"
VERSIONED = ("torch", "torchvision", "timm", "cifartui")  # the packages a result depends on most
GIT_TIMEOUT = 5.0  # seconds per git call: a slow network filesystem must not hold the run's start


@dataclass
class Snapshot:
    environment: dict[str, Any]  # what run_started carries (small)
    packages: list[str] = field(default_factory=list)  # env.txt's lines
    diff: str = ""  # `git diff HEAD` when the tree is dirty

    def write(self, run_dir: str | os.PathLike, resumed_from: int | None = None) -> None:
        """``env.txt`` (and ``git.diff`` when dirty) in the run folder; names them in ``environment["files"]``.

        A resume writes its own ``env.resume-N.txt`` / ``git.resume-N.diff`` (N: the epoch it resumes at) only
        when they differ from what the run started with: the first start's files are never overwritten."""
        run_dir = Path(run_dir)
        files: dict[str, str] = {}
        for key, name, text in (("packages", ENV_FILE, "\n".join(self.packages) + "\n"),
                                ("git_diff", GIT_DIFF_FILE, self.diff)):
            if not text.strip():
                continue
            target = run_dir / name
            if resumed_from and target.exists():
                if _read(target) == text:
                    files[key] = name
                    continue
                stem, dot, ext = name.partition(".")
                target = run_dir / f"{stem}.resume-{resumed_from}{dot}{ext}"
            atomic_write_text(target, text)
            files[key] = target.name
        if files:
            self.environment["files"] = files


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def version_of(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_packages() -> list[str]:
    """``name==version`` of every installed distribution, sorted by name (the first on sys.path wins, as import does)."""
    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if not name:
            continue
        key = name.lower().replace("_", "-").replace(".", "-")
        seen.setdefault(key, f"{name}=={dist.version}")
    return sorted(seen.values(), key=str.lower)


def _git(cwd: Path, *args: str) -> str | None:
    """stdout of one git call, or None (git missing, not a repository, too slow, any failure)."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT,
                              stdin=subprocess.DEVNULL, env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(cwd: str | os.PathLike | None = None) -> tuple[dict[str, Any] | None, str]:
    """(``{"commit", "dirty", "root"}``, the diff) when ``cwd`` is in a git work tree, else (None, "").

    Dirty means tracked files differ from HEAD (staged or not); untracked files do not count, since the
    runs folder itself is often one. The diff is ``git diff HEAD``: what a checkout of the commit lacks."""
    cwd = Path(cwd or os.getcwd())
    root = _git(cwd, "rev-parse", "--show-toplevel")
    if root is None:
        return None, ""
    state: dict[str, Any] = {"root": root.strip(), "commit": None, "dirty": False}
    head = _git(cwd, "rev-parse", "HEAD")
    if head is None:  # a repository without a commit yet
        return state, ""
    state["commit"] = head.strip()
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    state["dirty"] = bool(status and status.strip())
    diff = (_git(cwd, "diff", "HEAD", "--no-color", "--no-ext-diff") or "") if state["dirty"] else ""
    return state, diff


def describe(env: dict[str, Any]) -> list[str]:
    """Two short lines for ``show`` and ``report``: versions and where; the command line and git state."""
    if not env:
        return []
    versions = {"python": env.get("python"), "torch": env.get("torch_build") or env.get("torch"),
                "torchvision": env.get("torchvision"), "timm": env.get("timm"), "cifartui": env.get("cifartui")}
    parts = [f"{name} {version}" for name, version in versions.items() if version]
    if env.get("cuda"):
        parts.append(f"CUDA {env['cuda']}" + (f", cuDNN {env['cudnn']}" if env.get("cudnn") else ""))
    listed = env.get("gpus") if isinstance(env.get("gpus"), list) else []
    gpus = [str(g.get("name")) for g in listed if isinstance(g, dict)]
    if gpus:
        parts.append(" + ".join(sorted(set(gpus), key=gpus.index)) + (f" x{len(gpus)}" if len(gpus) > 1 else ""))
    if env.get("host"):
        parts.append(f"host {env['host']}")
    lines = [", ".join(parts)]
    second = []
    if isinstance(env.get("argv"), list) and env["argv"]:
        second.append("command: " + shlex.join(str(a) for a in env["argv"]))  # quoted as a shell would need
    git = env.get("git")
    if isinstance(git, dict):
        commit = str(git.get("commit") or "no commit")[:12]
        files = env.get("files") if isinstance(env.get("files"), dict) else {}
        dirty = ""
        if git.get("dirty"):
            dirty = " + uncommitted changes" + (f" ({files['git_diff']})" if files.get("git_diff") else "")
        second.append(f"git {commit}{dirty}")
    if second:
        lines.append("; ".join(second))
    return lines


def take(argv: list[str] | None = None, cwd: str | os.PathLike | None = None) -> Snapshot:
    """The environment of a run about to start in this process (torch-free; the trainer adds CUDA and GPUs)."""
    env: dict[str, Any] = {"python": platform.python_version()}
    for package in VERSIONED:
        env[package] = version_of(package)
    env.update(host=socket.gethostname(), platform=platform.platform(), argv=list(sys.argv if argv is None else argv),
               executable=sys.executable, cwd=str(Path(cwd or os.getcwd())))
    git, diff = git_state(cwd)
    if git is not None:
        env["git"] = git
    return Snapshot(environment=env, packages=installed_packages(), diff=diff)
