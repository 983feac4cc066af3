"""``cifartui configs``: the presets shipped in the package, one line each; ``--copy NAME DEST`` writes one out.

A preset name works wherever a config file does (``cifartui --headless train demo``); copying one out is
for editing it.
"""

from __future__ import annotations

import json
from pathlib import Path

from cifartui import presets
from cifartui.errors import UserError


def copy_preset(name: str, dest: str, force: bool = False) -> Path:
    """Write preset ``name`` to ``dest`` (a file, or a folder to put NAME.yaml in); never overwrites unless
    ``force``. Returns the file written."""
    preset = presets.find(name)
    if preset is None:
        raise UserError(f"configs --copy {name!r}: no preset of that name. Presets: {', '.join(presets.names())}.")
    target = Path(dest).expanduser()
    if target.is_dir() or dest.endswith(("/", "\\")):
        target = target / preset.path.name
    if target.suffix not in presets.SUFFIXES:
        raise UserError(f"configs --copy {name} {dest!r}: the destination should end in .yaml (or be a folder), "
                        f"e.g. {Path(dest).with_suffix('.yaml')}")
    if target.exists() and not force:
        raise UserError(f"configs --copy: {target} exists; nothing was written. Pick another name, or add --force "
                        "to replace it.")
    from cifartui.record.atomic import atomic_write_text

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, preset.path.read_text(encoding="utf-8"))  # a crash leaves no half-written file
    except OSError as exc:
        raise UserError(f"configs --copy: cannot write {target} ({exc.strerror or exc}).") from None
    return target


def cmd_configs(args) -> int:
    if args.copy:
        name, dest = args.copy
        target = copy_preset(name, dest, args.force)
        print(f"wrote {target}: edit it, then cifartui --headless train {target}")
        return 0
    found = presets.presets()
    if args.json:
        print(json.dumps([{"name": p.name, "description": p.description, "path": str(p.path)} for p in found], indent=1))
        return 0
    for line, _preset in presets.listing(found):
        print(line)
    print("\nUse a name wherever a config file goes (cifartui --headless train NAME, cifartui --config NAME, "
          "cifartui queue add NAME); cifartui configs --copy NAME DEST writes one out to edit.")
    return 0
