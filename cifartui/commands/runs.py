"""``cifartui runs``: list (filter, archived, trash) and ``tag``, ``note``, ``archive``, ``rm``, ``restore``.

Parsing imports only argparse; each command imports the torch-free store when it runs. The listing is plain
aligned text fitted to the terminal (as ``gh`` and ``docker ps`` print): the run id, the handle users type,
is never cut; narrower columns are narrowed, then dropped, first. Rich's table took 5 s for 10,000 rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from cifartui.commands import root_of as _root  # --root after `runs` or before it, else ./runs

FILTER_HELP = ("space-separated terms, all must hold: tag:NAME status:completed model:resnet* data:cifar100 "
               "best_val>0.8 test>=80%% epochs<5 cfg.train.lr=0.0001, words of the id or name; -TERM negates")


def add_parser(sub) -> None:
    r = sub.add_parser("runs", help="list the runs under the output root; tag, note, archive, rm, restore them",
                       description="List the runs (archived ones hidden unless --all), or change one: "
                                   "cifartui runs tag|note|archive|rm|restore ... (each with -h).")
    r.add_argument("--root", dest="sub_root", metavar="DIR")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.add_argument("--filter", metavar="QUERY", default="", help=FILTER_HELP)
    r.add_argument("--all", action="store_true", help="archived runs too")
    r.add_argument("--trash", action="store_true", help="list the runs in the trash (<root>/.trash) instead")
    r.set_defaults(func=_list)
    actions = r.add_subparsers(dest="runs_command", metavar="ACTION")

    def action(name: str, help: str, func) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=help, description=help)
        # SUPPRESS: a sub-parser's default would overwrite `runs --root DIR ACTION ...`
        a.add_argument("--root", dest="sub_root", metavar="DIR", default=argparse.SUPPRESS)
        a.set_defaults(func=func)
        return a

    t = action("tag", "add tags to a run (or remove them with --remove)", _tag)
    t.add_argument("run", metavar="RUN", help="run folder, id, or unique id prefix")
    t.add_argument("tags", metavar="TAG", nargs="+")
    t.add_argument("--remove", action="store_true", help="remove these tags instead")

    n = action("note", "set a run's note (\"\" clears it)", _note)
    n.add_argument("run", metavar="RUN", help="run folder, id, or unique id prefix")
    n.add_argument("text", metavar="TEXT")

    a = action("archive", "hide runs from the listing and the Runs screen (--all shows them)", _archive)
    a.add_argument("runs", metavar="RUN", nargs="+")
    a.add_argument("--undo", action="store_true", help="unarchive")

    m = action("rm", "move runs to the trash, <root>/.trash (restore brings them back); never a live run", _rm)
    m.add_argument("runs", metavar="RUN", nargs="+")
    m.add_argument("-y", "--yes", action="store_true", help="do not ask (needed without a terminal)")

    s = action("restore", "move runs back from the trash", _restore)
    s.add_argument("runs", metavar="RUN", nargs="+", help="id, or unique id prefix, of a run in <root>/.trash")


# -- listing ------------------------------------------------------------------------------------------------
def _config_keys() -> list[str]:
    from cifartui.config import dotted_keys  # pydantic: loaded only when a cfg term asks

    return dotted_keys()


def select(root: str, text: str = "", archived: bool = False) -> tuple[list, int, int]:
    """(the runs to show, how many runs there are, how many archived ones were hidden)."""
    from cifartui.record.query import filter_runs, parse_query
    from cifartui.record.store import list_runs

    query = parse_query(text, _config_keys)  # a bad term fails before anything is read
    runs = list_runs(root)
    visible = runs if archived else [r for r in runs if not r.archived]
    return filter_runs(visible, query), len(runs), len(runs) - len(visible)


def _list(args) -> int:
    from cifartui.record.trash import trash_of

    root = _root(args)
    shown_root = str(trash_of(root)) if args.trash else root
    runs, total, hidden = select(shown_root, args.filter, archived=args.all or args.trash)
    if args.json:
        print(json.dumps([r.to_dict() for r in runs], indent=1))
        return 0
    if not total:
        print(f"the trash of {root} is empty" if args.trash else f"no runs under {root}")
        return 0
    archived = f", {hidden} archived hidden (--all shows them)" if hidden else ""
    title = f"runs in {shown_root}: {len(runs)} of {total}{archived}"
    if args.filter:
        title += f", filter {args.filter!r}"
    print(title)
    if runs:
        for line in table_lines(runs, _width()):
            print(line)
    for r in runs:
        if r.status == "unreadable":
            print(f"unreadable: {r.id}: {r.reason}")
    return 0


def _width() -> int | None:
    """The terminal's width (COLUMNS wins); None when printing into a pipe or file: every column in full."""
    import shutil

    if os.environ.get("COLUMNS") or sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _pct(v) -> str:
    return f"{100 * v:.2f}%" if v is not None else "-"


# Columns, and what gives way when the terminal is narrow, first to last: narrow (down to its header or 8
# characters, whichever is wider) or drop. The id is never touched.
NARROW_THEN_DROP = (("narrow", "note"), ("drop", "note"), ("narrow", "tags"), ("narrow", "model"), ("narrow", "data"),
                    ("drop", "tags"), ("drop", "data"), ("drop", "model"), ("drop", "epochs"), ("drop", "test"),
                    ("drop", "status"), ("drop", "best val"))
GAP = 2


def _cells(r) -> dict[str, str]:
    return {"id": r.id, "status": r.status, "epochs": f"{r.epochs_done}/{r.epochs}", "best val": _pct(r.best_val_acc),
            "test": _pct(r.test_acc), "model": r.model, "data": r.dataset, "tags": ",".join(r.tags),
            "note": r.note.splitlines()[0] if r.note else ""}


def fit_columns(widths: dict[str, int], width: int | None) -> dict[str, int]:
    """Column -> width within ``width`` characters (None: no limit), narrowing then dropping as above."""
    widths = dict(widths)
    if width is None:
        return widths

    def excess() -> int:
        return sum(widths.values()) + GAP * (len(widths) - 1) - width

    for how, col in NARROW_THEN_DROP:
        if excess() <= 0:
            break
        if col not in widths:
            continue
        if how == "drop":
            del widths[col]
        else:
            widths[col] = max(min(widths[col], max(len(col), 8)), widths[col] - excess())
    return widths


def table_lines(runs: list, width: int | None) -> list[str]:
    from rich.cells import cell_len, set_cell_size  # terminal cells, not characters: a note may be in Japanese

    rows = [_cells(r) for r in runs]
    columns = [c for c in rows[0] if c in ("id", "status", "epochs", "best val", "test") or any(row[c] for row in rows)]
    natural = {c: max(len(c), *(cell_len(row[c]) for row in rows)) for c in columns}
    widths = fit_columns(natural, width)
    right = {"epochs", "best val", "test"}

    def cell(text: str, c: str) -> str:
        w = widths[c]
        if cell_len(text) > w:
            text = set_cell_size(text, w - 1) + "…"
        return " " * (w - cell_len(text)) + text if c in right else set_cell_size(text, w)

    gap = " " * GAP
    lines = [gap.join(cell(c, c) for c in widths).rstrip()]
    lines += [gap.join(cell(row[c], c) for c in widths).rstrip() for row in rows]
    dropped = [c for c in columns if c not in widths]
    if dropped:
        lines.append(f"({', '.join(dropped)} hidden to fit {width} columns; a wider terminal or --json shows them)")
    return lines


# -- changes ------------------------------------------------------------------------------------------------
def _resolve(args, refs: list[str]) -> list:
    from cifartui.record.store import resolve_run

    return [resolve_run(ref, _root(args)) for ref in refs]  # all found before any changes


def _tag(args) -> int:
    from cifartui.record.meta import add_tags, remove_tags

    (run,) = _resolve(args, [args.run])
    if args.remove:
        meta = remove_tags(run, args.tags)
    else:
        meta = add_tags(run, args.tags)
    print(f"{run.name}: tags {', '.join(meta.tags) or '(none)'}")
    return 0


def _note(args) -> int:
    from cifartui.record.meta import set_note

    (run,) = _resolve(args, [args.run])
    meta = set_note(run, args.text)
    print(f"{run.name}: note {'saved' if meta.note else 'cleared'}")
    return 0


def _archive(args) -> int:
    from cifartui.record.meta import set_archived

    for run in _resolve(args, args.runs):
        set_archived(run, not args.undo)
        print(f"{'unarchived' if args.undo else 'archived'} {run.name}")
    if not args.undo:
        print("(hidden from `cifartui runs` and the Runs screen; `cifartui runs --all` shows them, "
              "`cifartui runs archive --undo RUN` brings one back)")
    return 0


def _rm(args) -> int:
    from cifartui.errors import UserError
    from cifartui.record.trash import check_not_live, move_to_trash, trash_of

    runs = _resolve(args, args.runs)
    for run in runs:  # refuse before anything moves
        check_not_live(run)
    trash = trash_of(runs[0].parent)
    if not args.yes:
        what = runs[0].name if len(runs) == 1 else f"{len(runs)} runs"
        if not sys.stdin.isatty():
            raise UserError(f"runs rm: moving {what} to the trash needs a yes, and there is no terminal to ask on.\n"
                            "  Pass --yes (runs restore brings them back).")
        for run in runs:
            print(f"  {run}")
        answer = input(f"Move {what} to {trash}? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("nothing moved")
            return 1
    for run in runs:
        dest = move_to_trash(run)
        print(f"moved {run.name} to {dest}")
    print(f"(`cifartui runs restore RUN` brings a run back; `rm -rf {trash}` empties the trash for good)")
    return 0


def _restore(args) -> int:
    from cifartui.record.trash import restore

    for ref in args.runs:
        dest = restore(ref, _root(args))
        print(f"restored {dest.name} to {dest}")
    return 0
