"""Lists of images to leave out of training: one stable image reference a line (``cifar100:train:123``, or
a path relative to data.root for image folders). The app's Suspects view keeps one per run in
``<run>/exclude.txt``; ``data.exclude: FILE`` in a config drops the listed images from the next run's
training split (core/data.py). Blank lines and lines starting with ``#`` are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from cifartui.errors import UserError
from cifartui.record.atomic import atomic_write_text

EXCLUDE_FILE = "exclude.txt"
MAX_BYTES = 64 * 2**20  # a million references is ~30 MB; anything larger is not a list of references


class ExcludeError(UserError):
    """The list cannot be read; the message names the file and why."""


def read_exclude(path: str | Path) -> list[str]:
    """The references in ``path``, in file order, each once."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ExcludeError(f"{path} does not exist. Give a file of image references, one a line "
                           "(the app's Suspects view saves <run>/exclude.txt).") from None
    except OSError as exc:
        raise ExcludeError(f"cannot read {path} ({exc.strerror or exc}).") from None
    if len(raw) > MAX_BYTES:
        raise ExcludeError(f"{path} is larger than {MAX_BYTES >> 20} MB: not a list of image references.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ExcludeError(f"{path} is not UTF-8 text: not a list of image references.") from None
    lines = (line.strip() for line in text.splitlines())
    return list(dict.fromkeys(line for line in lines if line and not line.startswith("#")))


def run_exclude(run_dir: str | Path) -> list[str]:
    """A run's own marks (``exclude.txt``), or none when it has no file yet."""
    path = Path(run_dir) / EXCLUDE_FILE
    return read_exclude(path) if path.exists() else []


def write_exclude(run_dir: str | Path, refs: Iterable[str]) -> Path:
    """Save a run's marks atomically: a crash leaves the old list or the new one, never half of one."""
    path = Path(run_dir) / EXCLUDE_FILE
    refs = list(dict.fromkeys(refs))
    header = "# images to leave out of training: data.exclude: <this file> (one reference a line)\n"
    atomic_write_text(path, header + "".join(f"{r}\n" for r in refs))
    return path
