"""Command line: ``cifartui`` (the app), ``--headless train``, ``runs``, ``show``.

Heavy imports (torch, timm, textual) happen inside the commands that need them, so ``cifartui runs``
answers at once and the app paints its first frame before torch is loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cifartui.errors import UserError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep its message short
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


# The subcommands' names, so a start of the app (no command given) skips building their parsers (~6 ms of the
# first frame; bench first_frame_bare). tests/test_bad_input.py checks this list against build_parser().
COMMANDS = ("train", "runs", "show", "report", "eval", "predict", "export", "configs", "diff", "cam", "suspects",
            "queue")


class _NotTheAppAlone(Exception):
    """What the app's own parser cannot take: the full parser parses it again, and says what is wrong."""


class _AppParser(_Parser):
    def error(self, message: str) -> None:
        raise _NotTheAppAlone(message)


def app_parser(parser_class: type[_Parser] = _Parser) -> argparse.ArgumentParser:
    """The options of the app itself (``cifartui [--config F] [--run R] ...``), without the subcommands."""
    p = parser_class(prog="cifartui", description="Train timm image classifiers from the terminal and browse the runs.")
    p.add_argument("--headless", action="store_true", help="no app: run a command (train) with plain/Rich output")
    p.add_argument("--config", metavar="FILE|PRESET", help="open the app with this config file or preset (cifartui configs) loaded")
    p.add_argument("--run", metavar="RUN", help="open the app on this run")
    p.add_argument("--root", metavar="DIR", default=None, help="output root holding the runs (default ./runs)")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks")
    p.add_argument("--set", dest="app_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="app: override a value of the config it opens, e.g. --set train.epochs=1 (repeatable)")
    p.set_defaults(command=None)
    return p


def build_parser() -> argparse.ArgumentParser:
    p = app_parser()
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    t = sub.add_parser("train", help="train from a YAML config (headless)")
    t.add_argument("config", nargs="?", help="config YAML or preset name, see `cifartui configs` (optional with --resume: the run's own config)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.lr=3e-4 (repeatable)")
    t.add_argument("--resume", metavar="RUN", help="continue a stopped or crashed run from its last.pt")
    t.add_argument("--root", dest="sub_root", metavar="DIR", help="output root to find --resume runs in")

    from cifartui.commands.runs import add_parser as add_runs_parser  # list, tag, note, archive, rm, restore

    add_runs_parser(sub)

    s = sub.add_parser("show", help="summary of one run: metrics, per-class accuracy, confused pairs")
    s.add_argument("run", metavar="RUN", help="run folder, id, or unique id prefix")
    s.add_argument("--root", dest="sub_root", metavar="DIR")
    s.add_argument("--json", action="store_true", help="print JSON")

    from cifartui.commands import add_parsers  # report, eval, predict, export (each sets args.func)

    add_parsers(sub)
    return p


def _root(args) -> str:
    return getattr(args, "sub_root", None) or args.root or "runs"


def cmd_train(args) -> int:
    from cifartui import config as config_mod
    from cifartui.headless import run_headless
    from cifartui.record.store import resolve_run

    if args.resume:
        run_dir = resolve_run(args.resume, _root(args))
        from cifartui.session import resume_config

        cfg = resume_config(run_dir, args.overrides, args.config)
        return run_headless(cfg, resume_dir=run_dir)
    if not args.config:
        raise UserError("train: give a config YAML or a preset name (`cifartui configs` lists them), e.g. cifartui --headless train demo")
    cfg = config_mod.load(args.config, args.overrides)
    if args.root or args.sub_root:
        cfg = cfg.with_overrides(**{"output.root": _root(args)})
    return run_headless(cfg)


def show_data(run_dir: Path) -> dict:
    """What `show` prints, as data (also the JSON form). The events are folded by the one read model: one row per
    epoch (a resumed run's redone epoch once, the last wins); the evaluation is ``RunRecord.evaluation()``."""
    from cifartui.record import metrics
    from cifartui.record.read_model import RunRecord
    from cifartui.record.store import StoreError, load_classes, load_config_text, load_evaluation, read_run, run_problems

    summary = read_run(run_dir)
    record = RunRecord.read(run_dir)
    names = load_classes(run_dir) or record.class_names
    chosen = record.evaluation()
    out = summary.to_dict()
    out["problems"] = run_problems(run_dir)  # files that could not be read, and why: the rest is shown
    try:
        out["config"] = load_config_text(run_dir)
    except StoreError:
        out["config"] = ""  # missing, or named in problems
    out["epochs_table"] = [e.to_dict() for e in record.epochs]
    out["environment"] = record.environment  # what made it: versions, host, argv, git ({} for older runs)
    out["evaluation"] = None
    out["per_class_acc"], out["confused_pairs"] = {}, []
    conf = None
    if chosen is not None:
        try:
            conf = load_evaluation(run_dir, chosen.file, keys=("confusion",))["confusion"]
        except StoreError as exc:
            if str(exc) not in out["problems"]:
                out["problems"].append(str(exc))
    if chosen is not None and conf is not None:
        name = lambda i: names[i] if i < len(names) else str(i)  # noqa: E731
        acc = metrics.per_class_accuracy(conf)
        figures = chosen.to_dict()
        out["evaluation"] = {k: figures[k] for k in ("split", "epoch", "top1", "top5", "loss", "num_samples")}
        out["per_class_acc"] = {name(i): float(a) for i, a in enumerate(acc) if a == a}
        out["confused_pairs"] = [{"true": name(p.true), "pred": name(p.pred), "count": p.count, "share": p.share,
                                  "reverse": p.reverse} for p in metrics.most_confused(conf, 10)]
    return out


def cmd_show(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from cifartui.record.store import StoreError, resolve_run

    run_dir = resolve_run(args.run, _root(args))
    data = show_data(run_dir)
    if data["status"] == "unreadable":
        raise StoreError(f"run {data['id']}: nothing could be read.\n  " + "\n  ".join(data["problems"] or [data["reason"]]))
    if args.json:  # epochs_table: one row per epoch, the figures report and export --csv show
        print(json.dumps(data, indent=1, default=str))
        return 0
    con = Console()
    pct = lambda v: f"{100 * v:.2f}%" if v is not None else "-"  # noqa: E731
    con.print(f"[bold]{data['id']}[/]  {data['status']}  {data['model']} on {data['dataset']}  "
              f"epochs {data['epochs_done']}/{data['epochs']}  best val {pct(data['best_val_acc'])} "
              f"(epoch {data['best_epoch']})  test {pct(data['test_acc'])}")
    if data["tags"] or data["archived"]:  # the user's own words about the run (cifartui runs tag/note/archive)
        con.print("  tags: " + (", ".join(data["tags"]) or "-") + ("  (archived)" if data["archived"] else ""),
                  markup=False, highlight=False)
    if data["note"]:
        con.print("  note: " + data["note"].replace("\n", "\n        "), markup=False, highlight=False)
    if data["reason"]:
        con.print(f"  {data['reason']}", markup=False)
    from cifartui.environment import describe

    for line in describe(data["environment"]):
        con.print(f"  {line}", markup=False, highlight=False, style="dim")
    for problem in data["problems"]:
        con.print(f"damaged: {problem}", markup=False, highlight=False)
    ev = data["evaluation"]
    if ev is None:
        con.print("no evaluation recorded yet")
        return 0
    con.print(f"\nper-class accuracy on {ev['split']} (epoch {ev['epoch']}, {ev['num_samples']} images):")
    ranked = sorted(data["per_class_acc"].items(), key=lambda kv: -kv[1])
    table = Table(show_header=True)
    table.add_column("best classes")
    table.add_column("acc", justify="right")
    table.add_column("worst classes")
    table.add_column("acc", justify="right")
    for (bn, ba), (wn, wa) in zip(ranked[:5], list(reversed(ranked))[:5]):
        table.add_row(bn, pct(ba), wn, pct(wa))
    con.print(table)
    pairs = Table(title="most confused pairs (true -> predicted)")
    for col in ("true", "predicted", "count", "share of true", "reverse"):
        pairs.add_column(col)
    for p in data["confused_pairs"]:
        pairs.add_row(p["true"], p["pred"], str(p["count"]), pct(p["share"]), str(p["reverse"]))
    con.print(pairs)
    return 0


def cmd_app(args) -> int:
    try:
        from cifartui.tui.app import run_app
    except ImportError as exc:
        raise UserError(f"the app could not start ({exc}); use --headless train CFG meanwhile.") from None
    return run_app(config_path=args.config, run=args.run, root=args.root or "runs",
                   overrides=getattr(args, "app_overrides", [])) or 0


def _rank_prefix() -> str:
    """``[rank N] `` under torchrun for ranks other than 0 (their errors still show, but say whose they are)."""
    import os

    rank = os.environ.get("RANK", "0")
    return "" if rank == "0" else f"[rank {rank}] "


def _parse_app_options(argv: list[str]) -> argparse.Namespace | None:
    """The app's options, or None for anything else: a command, --headless, help (the full list of commands),
    a word or a mistake the app's parser cannot take (the full parser says what is wrong, with every command
    in its usage line)."""
    if any(a in COMMANDS or a == "-h" or a.startswith("--h") for a in argv):  # --h... also abbreviates --help
        return None
    try:
        args, unknown = app_parser(_AppParser).parse_known_args(argv)
    except _NotTheAppAlone:
        return None
    return None if unknown else args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = None
    args = _parse_app_options(argv)
    if args is None:
        parser = build_parser()
        args = parser.parse_args(argv)
    commands = {"train": cmd_train, "show": cmd_show}  # runs and the rest: args.func (cifartui.commands)
    if args.headless and args.command is None:
        parser.error("--headless needs a command, e.g. cifartui --headless train configs/demo.yaml")
    try:
        if args.command is None:
            return cmd_app(args)
        return commands[args.command](args) if args.command in commands else args.func(args)
    except UserError as exc:
        if args.debug:
            raise
        print(f"{_rank_prefix()}error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a failure in training: the run is recorded as failed
        if args.debug:
            raise
        from cifartui.core.engine import TrainingError
        from cifartui.record.store import StorageError

        if isinstance(exc, (TrainingError, StorageError)):
            print(f"{_rank_prefix()}error: {exc}", file=sys.stderr)
        else:
            print(f"{_rank_prefix()}error: {type(exc).__name__}: {exc}\n  (run with --debug for the traceback)", file=sys.stderr)
        return 1
