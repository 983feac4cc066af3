"""Commands on finished runs: ``report``, ``eval``, ``predict``, ``export``; and ``queue`` (commands/queue.py).

:func:`add_parsers` registers them on the CLI's subparsers; each sets ``func`` to a lazy wrapper, so parsing
imports nothing heavy (torch loads only inside ``eval`` and ``predict``).
"""

from __future__ import annotations


def root_of(args) -> str:
    return getattr(args, "sub_root", None) or getattr(args, "root", None) or "runs"


def _report(args) -> int:
    from cifartui.report import cmd_report

    return cmd_report(args)


def _eval(args) -> int:
    from cifartui.commands.evaluate import cmd_eval

    return cmd_eval(args)


def _predict(args) -> int:
    from cifartui.commands.evaluate import cmd_predict

    return cmd_predict(args)


def _export(args) -> int:
    from cifartui.commands.export import cmd_export

    return cmd_export(args)


def add_parsers(sub) -> None:
    rp = sub.add_parser("report", help="write a Markdown report of a run (curves, confusions, findings)")
    rp.add_argument("run", metavar="RUN", help="run folder, id, or unique id prefix")
    rp.add_argument("-o", "--output", metavar="FILE.md", help="report file (default RUN/report.md); images go beside it")
    rp.add_argument("--split", help="evaluation to analyse per class (default: test, else the last val)")
    rp.add_argument("--root", dest="sub_root", metavar="DIR")
    rp.set_defaults(func=_report)

    ev = sub.add_parser("eval", help="evaluate a run's best.pt (or a checkpoint file) on a dataset; stored as a new evaluation")
    ev.add_argument("source", metavar="RUN|CHECKPOINT", help="a run (its best.pt; the result is added to it) or a "
                    ".pt/.pth/.safetensors file (a new run folder holds the result)")
    ev.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="change the data (e.g. --set data.source=imagefolder --set data.root=DIR); with a checkpoint "
                         "file also model.name=ARCH")
    ev.add_argument("--split", choices=("test", "val", "train"), default="test", help="which split of the data (default test)")
    ev.add_argument("--name", help="name of the stored evaluation (default eval-<source>-<split>-<time>)")
    ev.add_argument("--root", dest="sub_root", metavar="DIR")
    ev.add_argument("--json", action="store_true", help="print the result as JSON")
    ev.set_defaults(func=_eval)

    pr = sub.add_parser("predict", help="top-5 classes of images with a run's best.pt")
    pr.add_argument("run", metavar="RUN", help="run folder, id, prefix, or a best.pt file")
    pr.add_argument("images", metavar="IMAGE", nargs="+", help="image files (any size; resized like the training data)")
    pr.add_argument("-k", "--top", type=int, default=5, help="how many classes to show (default 5)")
    pr.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    pr.add_argument("--root", dest="sub_root", metavar="DIR")
    pr.add_argument("--json", action="store_true", help="print JSON")
    pr.set_defaults(func=_predict)

    ex = sub.add_parser("export", help="per-epoch metrics as CSV (timm summary.csv column names)")
    ex.add_argument("run", metavar="RUN", help="run folder, id, or unique id prefix")
    ex.add_argument("--csv", action="store_true", help="CSV (the only format; the default)")
    ex.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    ex.add_argument("--root", dest="sub_root", metavar="DIR")
    ex.set_defaults(func=_export)

    from cifartui.commands.queue import add_parser as add_queue_parser  # argparse only; the queue loads when it runs

    add_queue_parser(sub)
