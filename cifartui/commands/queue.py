"""``cifartui queue``: add entries and sweeps, list them, run them, cancel one, compare a sweep.

Parsing imports only argparse; each command imports :mod:`cifartui.queue` (no torch) when it runs.
"""

from __future__ import annotations

import json
import os


def _root(args) -> str:
    return getattr(args, "sub_root", None) or getattr(args, "queue_root", None) or getattr(args, "root", None) or "runs"


def _pct(v) -> str:
    return f"{100 * v:.2f}%" if v is not None else "-"


def _value(v) -> str:
    return json.dumps(v) if not isinstance(v, str) else v


def cmd_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from cifartui.queue import list_entries

    root = _root(args)
    entries = list_entries(root)
    if args.json:
        print(json.dumps([e.to_dict(with_config=False) for e in entries], indent=1))
        return 0
    if not entries:
        print(f"the queue in {root} is empty (cifartui queue add CONFIG --root {root})")
        return 0
    table = Table(title=f"queue in {root}")
    table.add_column("id", no_wrap=True, min_width=max(len(e.id) for e in entries))  # never cut: `queue rm` needs it
    table.add_column("state", no_wrap=True)
    table.add_column("name", overflow="fold")
    table.add_column("overrides", overflow="fold")
    table.add_column("run / reason", overflow="fold")
    for e in entries:
        overrides = "\n".join(f"{k}={_value(v)}" for k, v in e.overrides.items())
        reason = e.reason.splitlines()[0] if e.reason and e.state != "done" else ""
        detail = "\n".join(filter(None, [os.path.basename(e.run) if e.run else "", reason]))
        table.add_row(e.id, e.state, e.name, overrides, detail)
    Console().print(table)
    return 0


def cmd_add(args) -> int:
    from cifartui.queue import add_entries

    root = _root(args)
    entries = add_entries(root, args.config, args.overrides, args.sweeps)
    for e in entries:
        print(f"queued {e.id}  {e.name}")
    sweep = f" (sweep {entries[0].sweep})" if len(entries) > 1 else ""
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} in {root}/.queue{sweep}; "
          f"train them with: cifartui queue run --root {root}")
    return 0


def cmd_run(args) -> int:
    from cifartui.queue import parse_devices, run_queue

    return run_queue(_root(args), parse_devices(args.devices))


def cmd_rm(args) -> int:
    from cifartui.queue import cancel

    entry = cancel(_root(args), args.id)
    print(f"cancelled {entry.id}  {entry.name}")
    return 0


def cmd_compare(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from cifartui.queue import sweep_table

    rows = sweep_table(_root(args), args.sweep)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    keys = list(rows[0]["values"])
    table = Table(title=f"sweep {rows[0]['sweep']}: {len(rows)} runs, best validation accuracy first")
    table.add_column("run", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for key in keys:
        table.add_column(key, justify="right")
    table.add_column("best val", justify="right")
    table.add_column("test", justify="right")
    for r in rows:
        table.add_row(r["run"] or f"(entry {r['entry']})", r["status"], *(_value(r["values"][k]) for k in keys),
                      _pct(r["best_val_acc"]), _pct(r["test_acc"]))
    Console().print(table)
    return 0


def add_parser(sub) -> None:
    q = sub.add_parser("queue", help="a local queue of runs and sweeps (add, run, rm, compare); no server")
    q.add_argument("--root", dest="queue_root", metavar="DIR", help="runs root holding the queue (default ./runs)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=cmd_list)
    qs = q.add_subparsers(dest="queue_command", parser_class=type(q))

    a = qs.add_parser("add", help="queue a config, or a grid over every --sweep")
    a.add_argument("config", help="config YAML or preset name (saved resolved into the entry: later edits change nothing queued)")
    a.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    a.add_argument("--sweep", dest="sweeps", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="one entry per value; several --sweep make a grid (repeatable)")
    a.add_argument("--root", dest="sub_root", metavar="DIR")
    a.set_defaults(func=cmd_add)

    r = qs.add_parser("run", help="train pending entries, one at a time per device; exits when none are left")
    r.add_argument("--devices", metavar="cpu|0,1,...",
                   help="cpu, or GPU numbers: one worker per GPU (default: one worker, devices as each config says)")
    r.add_argument("--root", dest="sub_root", metavar="DIR")
    r.set_defaults(func=cmd_run)

    rm = qs.add_parser("rm", help="cancel a pending entry")
    rm.add_argument("id", metavar="ID", help="entry id (or a unique prefix)")
    rm.add_argument("--root", dest="sub_root", metavar="DIR")
    rm.set_defaults(func=cmd_rm)

    c = qs.add_parser("compare", help="a sweep's runs, best validation accuracy first, swept values as columns")
    c.add_argument("sweep", metavar="SWEEP", help="sweep id (its first entry's id; `cifartui queue --json` shows it)")
    c.add_argument("--root", dest="sub_root", metavar="DIR")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=cmd_compare)
