"""The runs' configs, flattened, cached in ``<root>/.cache/configs.json`` for ``cfg.KEY`` filter terms.

Reading a config.yaml costs about 1.6 ms (the bounded pure-Python YAML loader, ``bounded_yaml``): 16 s for
10,000 runs. The cache keeps each run's flattened config with the (mtime_ns, size) of the file it came from,
so a later query reads only new or changed configs. It is only a cache: unreadable or unwritable, it is
ignored (the configs are read again), and deleting it is always safe.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cifartui.record.atomic import atomic_write_text
from cifartui.record.store import CONFIG_FILE, read_config_data

CACHE_FILE = Path(".cache") / "configs.json"
_VERSION = 2


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1e-3}} -> {"train.lr": 1e-3} (lists and empty sections stay values)."""
    if not isinstance(data, dict) or (prefix and not data):
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


class ConfigIndex:
    """On disk: {"version", "schemas": [[key, ...], ...], "runs": {id: [[mtime_ns, size], schema, [value, ...]]}}.
    Runs share their few key lists (schemas), so each stores only its values: 10,000 runs, about 3 MB."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.path = self.root / CACHE_FILE
        self.schemas: list[list[str]] = []
        self.entries: dict[str, list] = {}  # id -> [stamp, schema, values] as on disk, or [stamp, flat dict]
        self.changed = False
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("version") == _VERSION:
                self.schemas, self.entries = data["schemas"], data["runs"]
                if not isinstance(self.schemas, list) or not isinstance(self.entries, dict):
                    raise ValueError("not a cache")
        except (OSError, ValueError, KeyError, RecursionError):
            self.schemas, self.entries = [], {}  # no cache yet, or a damaged one: rebuilt

    def _cached(self, run_id: str, stamp: list[int]) -> dict[str, Any] | None:
        entry = self.entries.get(run_id)
        if not isinstance(entry, list) or not entry or entry[0] != stamp:
            return None
        if len(entry) == 2 and isinstance(entry[1], dict):
            return entry[1]
        try:
            keys = self.schemas[entry[1]]
            return dict(zip(keys, entry[2], strict=True))
        except (IndexError, TypeError, ValueError):
            return None

    def get(self, run_path: str | os.PathLike) -> dict[str, Any]:
        """The run's config as {dotted key: value} ({} when it has none or it cannot be read)."""
        try:
            st = os.stat(os.path.join(run_path, CONFIG_FILE))
        except OSError:
            return {}
        run_id, stamp = os.path.basename(run_path), [st.st_mtime_ns, st.st_size]
        flat = self._cached(run_id, stamp)
        if flat is None:
            flat = flatten(read_config_data(run_path))
            self.entries[run_id] = [stamp, flat]
            self.changed = True
        return flat

    def save(self) -> None:
        """Write the cache if it changed, dropping the runs whose folder is gone (removed, or moved to the trash).
        Not "the runs this query saw": a query over the visible runs would drop the archived ones every time."""
        if not self.changed:
            return
        schemas: dict[tuple[str, ...], int] = {}
        runs = {}
        for run_id, entry in self.entries.items():
            if not isinstance(entry, list) or not entry or not os.path.isdir(os.path.join(self.root, run_id)):
                continue
            flat = entry[1] if len(entry) == 2 and isinstance(entry[1], dict) else self._cached(run_id, entry[0])
            if flat is None:
                continue
            index = schemas.setdefault(tuple(flat), len(schemas))
            runs[run_id] = [entry[0], index, list(flat.values())]
        data = {"version": _VERSION, "schemas": [list(k) for k in schemas], "runs": runs}
        try:
            self.path.parent.mkdir(exist_ok=True)
            atomic_write_text(self.path, json.dumps(data, separators=(",", ":")))
        except OSError:
            pass  # a root we may read but not write: the next query reads the configs again
        self.changed = False
