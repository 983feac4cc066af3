"""``cifartui diff RUN_A RUN_B [--split test|val]`` and ``cifartui diff RUN --epochs E1 E2``: what changed
between two evaluations of the same images (the figures come from :mod:`cifartui.diff`).

Rich tables for people (the classes and confusion cells that changed most, how many images flipped and a
few of them); ``--json`` gives every figure: ``top1_a``, ``top1_b``, ``per_class``, ``pairs``,
``right_to_wrong``, ``wrong_to_right`` and more.
"""

from __future__ import annotations

import json

from cifartui.diff import DiffError, EvalDiff, diff_epochs, diff_runs, points, summary_lines


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def render(d: EvalDiff, top: int = 5) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    con = Console(highlight=False)
    con.print(Text.assemble(("A  ", "bold"), d.a.label, f"   top-1 {100 * d.top1_a:.2f}%"))
    con.print(Text.assemble(("B  ", "bold"), d.b.label, f"   top-1 {100 * d.top1_b:.2f}%   ",
                            (f"{points(d.top1_b - d.top1_a)} points", "green" if d.top1_b >= d.top1_a else "red")))
    con.print(Text(d.check.note, style="yellow" if d.check.weaker else "dim"))
    for line in summary_lines(d)[1:]:
        con.print(line)

    def classes(title: str, rows, style: str) -> None:
        if not rows:
            return
        t = Table(title=title, title_justify="left", box=None, header_style="bold", padding=(0, 1))
        for col, j in (("class", "left"), ("images", "right"), ("A", "right"), ("B", "right"), ("change", "right")):
            t.add_column(col, justify=j)
        for c in rows:
            t.add_row(c.name, str(c.images), _pct(c.acc_a), _pct(c.acc_b), Text(points(c.delta), style=style))
        con.print()
        con.print(t)

    classes("Classes that lost most (points)", d.lost(top), "red")
    classes("Classes that gained most (points)", d.gained(top), "green")
    if d.cells:
        t = Table(title="Confusion cells that changed most", title_justify="left", box=None, header_style="bold",
                  padding=(0, 1))
        for col, j in (("true", "left"), ("predicted as", "left"), ("A", "right"), ("B", "right"), ("change", "right")):
            t.add_column(col, justify=j)
        for c in d.cells[:top]:
            t.add_row(d.name(c.true), d.name(c.pred), str(c.count_a), str(c.count_b),
                      Text(f"{c.change:+d}", style="red" if c.change > 0 else "green"))
        con.print()
        con.print(t)
    shown = d.flips(top)
    if shown:
        t = Table(title="Flipped images (most confident mistake first)", title_justify="left", box=None,
                  header_style="bold", padding=(0, 1))
        for col, j in (("#", "right"), ("true", "left"), ("A predicted", "left"), ("B predicted", "left"), ("", "left")):
            t.add_column(col, justify=j)
        for kind, i in shown:
            f = d.flip(i)
            t.add_row(str(f["index"]), f["true"], f["pred_a"], f["pred_b"],
                      Text("right -> wrong", style="red") if kind == "right_to_wrong" else Text("wrong -> right", style="green"))
        con.print()
        con.print(t)
        con.print(Text("#: the image's index in the split (as in eval/*.npz). Every figure: --json", style="dim"))


def cmd_diff(args) -> int:
    from cifartui.commands import root_of
    from cifartui.record.store import resolve_run

    root = root_of(args)
    if args.top < 1:
        raise DiffError(f"diff -n: {args.top} rows; give 1 or more")
    if args.epochs is not None:
        if len(args.runs) != 1:
            raise DiffError("diff --epochs E1 E2: give one run (its validation epochs are compared), e.g. "
                            "cifartui diff RUN --epochs 3 10")
        if args.split not in (None, "val"):
            raise DiffError("diff --epochs compares validation epochs; drop --split test (or diff two runs' test sets)")
        d = diff_epochs(resolve_run(args.runs[0], root), *args.epochs)
    else:
        if len(args.runs) != 2:
            raise DiffError(f"diff: give two runs (A, the baseline, then B), or one run with --epochs E1 E2; "
                            f"got {len(args.runs)}.")
        d = diff_runs(resolve_run(args.runs[0], root), resolve_run(args.runs[1], root), args.split or "test")
    if args.json:
        print(json.dumps(d.to_json(), indent=1))
        return 0
    render(d, args.top)
    return 0
