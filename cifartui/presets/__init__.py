"""Ready recipes shipped inside the package, and the one resolver from a config argument to a file.

The YAML files beside this module are what a wheel carries; ``configs/`` in the repository holds the same
files for people working from a checkout (tests/test_presets.py keeps the two identical). Every command that
takes a config accepts a preset name too: :func:`resolve` decides, once, what an argument means.
Plain pathlib on purpose: the app lists presets before its first frame, so nothing heavy loads here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cifartui.errors import UserError

PRESET_DIR = Path(__file__).resolve().parent
SUFFIXES = (".yaml", ".yml")


class UnknownConfig(UserError):
    """A config argument that is neither an existing file nor a preset name."""


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    description: str


def _description(path: Path) -> str:
    """The first comment line of the file: every preset opens with one saying what it is for."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                text = line.strip()
                if text.startswith("#"):
                    return text.lstrip("#").strip()
                if text:
                    break
    except (OSError, UnicodeDecodeError):
        pass
    return ""


def presets() -> list[Preset]:
    """The shipped presets, sorted by name."""
    files = sorted(p for p in PRESET_DIR.iterdir() if p.suffix in SUFFIXES and p.is_file())
    return [Preset(p.stem, p, _description(p)) for p in files]


def listing(found: list[Preset] | None = None) -> list[tuple[str, Preset]]:
    """(line, preset) for each preset: its name, padded to the longest, then its description (``cifartui
    configs`` and the app's Open dialog show these lines)."""
    found = presets() if found is None else found
    width = max((len(p.name) for p in found), default=0)
    return [(f"{p.name.ljust(width)}  {p.description}", p) for p in found]


def names() -> list[str]:
    return [p.name for p in presets()]


def find(name: str) -> Preset | None:
    """The preset called ``name`` (``demo`` or ``demo.yaml``), or None."""
    stem = name[: -len(Path(name).suffix)] if Path(name).suffix in SUFFIXES else name
    return next((p for p in presets() if p.name == stem), None)


def _is_bare_name(text: str) -> bool:
    return bool(text) and os.sep not in text and (os.altsep is None or os.altsep not in text)


def resolve(source: str | os.PathLike) -> Path:
    """What a config argument names: a path that exists wins; else a preset name; else UnknownConfig (exit 2)
    listing the presets."""
    path = Path(source).expanduser()
    if path.exists() and not path.is_dir():  # a folder is no config: a folder named like a preset hides nothing
        return path
    text = os.fspath(source)
    preset = find(text) if _is_bare_name(text) else None
    if preset is not None:
        return preset.path
    if path.exists():
        return path  # a folder: reading it says what is wrong
    listing = ", ".join(names()) or "(none installed)"
    if _is_bare_name(text):
        raise UnknownConfig(f"{text}: no such config file, and no preset of that name.\n  Presets: {listing} "
                            "(`cifartui configs` describes them); or give the path of a YAML file.")
    raise UnknownConfig(f"{text}: config file not found.\n  Give the path of a YAML file, or a preset name: "
                        f"{listing} (`cifartui configs` describes them).")
