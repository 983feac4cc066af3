"""Commands on finished runs: ``report``, ``eval``, ``predict``, ``export``, ``diff``, ``cam``, ``suspects``; and
``queue`` (commands/queue.py).

:func:`add_parsers` registers them on the CLI's subparsers; each sets ``func`` to a lazy wrapper, so parsing
imports nothing heavy (torch loads only inside ``eval``, ``predict``, ``cam`` and ``suspects`` when it evaluates;
grad-cam and cleanlab, the analysis extra, only inside ``cam`` and ``suspects``).
"""

from __future__ import annotations


def root_of(args) -> str:
    return getattr(args, "sub_root", None) or getattr(args, "root", None) or "runs"


def _lazy(module: str, name: str):
    """A command's entry point that imports its module only when the command runs."""
    def run(args) -> int:
        import importlib

        return getattr(importlib.import_module(module), name)(args)

    run.__name__ = name
    return run


_report = _lazy("cifartui.report", "cmd_report")
_eval = _lazy("cifartui.commands.evaluate", "cmd_eval")
_predict = _lazy("cifartui.commands.evaluate", "cmd_predict")
_export = _lazy("cifartui.commands.export", "cmd_export")
_diff = _lazy("cifartui.commands.diff", "cmd_diff")
_configs = _lazy("cifartui.commands.configs", "cmd_configs")
_cam = _lazy("cifartui.commands.cam", "cmd_cam")
_suspects = _lazy("cifartui.commands.suspects", "cmd_suspects")


def add_parsers(sub) -> None:
    rp = sub.add_parser("report", help="write a Markdown report of a run (curves, confusions, findings)")
    rp.add_argument("run", metavar="RUN", help="run folder, id, or unique id prefix")
    rp.add_argument("-o", "--output", metavar="FILE.md", help="report file (default RUN/report.md); images go beside it")
    rp.add_argument("--split", help="evaluation to analyse per class (default: test, else the last val)")
    rp.add_argument("--against", metavar="OTHER", help="add a 'What changed' section: this run against OTHER (the "
                    "baseline), on the same split (cifartui diff OTHER RUN)")
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

    ex = sub.add_parser("export", help="per-epoch metrics as CSV (timm summary.csv column names) or TensorBoard files")
    ex.add_argument("run", metavar="RUN", help="run folder, id, or unique id prefix")
    ex.add_argument("--csv", action="store_true", help="CSV (the default; with --tensorboard, both)")
    ex.add_argument("--tensorboard", metavar="DIR", help="TensorBoard event files in DIR/<run id> (scalars, per-class "
                    "accuracy, hparams; needs pip install 'cifartui[tensorboard]'); `wandb sync DIR/<run id>` uploads them")
    ex.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    ex.add_argument("--root", dest="sub_root", metavar="DIR")
    ex.set_defaults(func=_export)

    cf = sub.add_parser("configs", help="list the presets shipped with cifartui (a name works wherever a config file does)")
    cf.add_argument("--copy", nargs=2, metavar=("NAME", "DEST"), help="write preset NAME to DEST (a .yaml file or a folder) to edit")
    cf.add_argument("--force", action="store_true", help="with --copy: replace DEST if it exists")
    cf.add_argument("--json", action="store_true", help="print JSON")
    cf.set_defaults(func=_configs)

    df = sub.add_parser("diff", help="what changed between two evaluations of the same images: per class, per "
                        "confusion cell, per image")
    df.add_argument("runs", metavar="RUN", nargs="+", help="RUN_A RUN_B (A is the baseline: changes are B - A), or "
                    "one RUN with --epochs")
    df.add_argument("--split", choices=("test", "val"), help="which split of the two runs (default test; val: the "
                    "best epoch's validation)")
    df.add_argument("--epochs", nargs=2, type=int, metavar=("E1", "E2"), help="two validation epochs of one run")
    df.add_argument("-n", "--top", type=int, default=5, help="rows per table (default 5)")
    df.add_argument("--json", action="store_true", help="print every figure as JSON")
    df.add_argument("--root", dest="sub_root", metavar="DIR")
    df.set_defaults(func=_diff)

    cp = sub.add_parser("cam", help="where the model looks: a class activation map (Grad-CAM) of one evaluated image "
                        "(the analysis extra)")
    cp.add_argument("run", metavar="RUN", help="run folder, id, or unique id prefix (its best.pt is explained)")
    cp.add_argument("index", metavar="INDEX", type=int, help="sample number in the evaluation (as in the drilldown and "
                    "suspects)")
    cp.add_argument("--split", default="test", help="the evaluation: test (default), val, or a name from `cifartui eval`")
    cp.add_argument("--target", default="pred", help="the class to explain: pred (default), true, or a class name")
    cp.add_argument("-o", "--output", metavar="FILE.png", help="the picture (default RUN/cam/SPLIT-INDEX-CLASS.png)")
    cp.add_argument("--json", action="store_true", help="print png, index, true, pred, target as JSON")
    cp.add_argument("--root", dest="sub_root", metavar="DIR")
    cp.set_defaults(func=_cam)

    sp = sub.add_parser("suspects", help="training labels that are probably wrong, ranked by cleanlab from the best "
                        "weights' probabilities (the analysis extra)")
    sp.add_argument("run", metavar="RUN", help="run folder, id, or unique id prefix")
    sp.add_argument("--split", choices=("train", "val", "test"), default="train", help="whose labels (default train: "
                    "evaluates the training images with best.pt the first time)")
    sp.add_argument("-n", "--top", type=int, default=50, help="how many to list, most suspect first (default 50)")
    sp.add_argument("--json", action="store_true", help="print a JSON list: index, ref, label, pred, label_prob")
    sp.add_argument("--refs", action="store_true", help="print only their image references, one a line (a data.exclude file)")
    sp.add_argument("--root", dest="sub_root", metavar="DIR")
    sp.set_defaults(func=_suspects)

    from cifartui.commands.queue import add_parser as add_queue_parser  # argparse only; the queue loads when it runs

    add_queue_parser(sub)
