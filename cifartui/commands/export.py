"""``cifartui export RUN --csv [-o FILE]``: per-epoch metrics as CSV, in the shape of timm's summary.csv.
(``--tensorboard DIR``: TensorBoard event files instead, see :mod:`cifartui.commands.tensorboard`.)

Columns: timm's first, in timm's order and with timm's names and units -- ``epoch, train_loss, eval_loss,
eval_top1, eval_top5, lr`` (``eval_*`` is our validation split; accuracies in percent, as timm writes
them, so a sheet or script comparing with timm's summary.csv needs no conversion) -- then ours:
``train_top1`` (percent, running mean over the epoch's augmented batches), ``epoch_seconds``,
``images_per_second``, ``is_best`` (1 for the best validation epoch so far).
"""

from __future__ import annotations

import csv
import io
import os
import sys
from pathlib import Path

from cifartui.record.read_model import RunRecord

COLUMNS = ("epoch", "train_loss", "eval_loss", "eval_top1", "eval_top5", "lr",
           "train_top1", "epoch_seconds", "images_per_second", "is_best")


def _percent(v) -> float | str:
    return "" if v is None else round(100.0 * float(v), 6)


def export_rows(run_dir: str | os.PathLike) -> list[dict]:
    """One row per epoch, as the read model folds them (a resumed run's redone epoch once: the last wins)."""
    rows = []
    for e in RunRecord.read(run_dir).epochs:
        rows.append({
            "epoch": e.epoch, "train_loss": e.train_loss, "eval_loss": e.val_loss,
            "eval_top1": _percent(e.val_acc), "eval_top5": _percent(e.val_top5), "lr": e.lr,
            "train_top1": _percent(e.train_acc), "epoch_seconds": e.epoch_seconds,
            "images_per_second": e.images_per_second, "is_best": int(bool(e.is_best)),
        })
    return rows


def export_csv(run_dir: str | os.PathLike) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(export_rows(run_dir))
    return buf.getvalue()


def cmd_export(args) -> int:
    from cifartui.commands import root_of
    from cifartui.record.store import StoreError, read_run, resolve_run, run_problems

    run_dir = resolve_run(args.run, root_of(args))
    summary = read_run(run_dir)
    problems = run_problems(run_dir)
    if summary.status == "unreadable":
        raise StoreError(f"run {summary.id}: nothing could be read.\n  " + "\n  ".join(problems or [summary.reason]))
    for problem in problems:  # the rows come from events.jsonl: say so when a file is damaged
        print(f"damaged: {problem}", file=sys.stderr)
    if getattr(args, "tensorboard", None):
        from cifartui.commands.tensorboard import export_tensorboard

        target, counts = export_tensorboard(run_dir, args.tensorboard)
        print(f"wrote {target}: {counts['epochs']} epochs, {counts['steps']} logged steps, {counts['classes']} "
              f"per-class accuracies, hparams\n  view: tensorboard --logdir {args.tensorboard}", file=sys.stderr)
        if not args.csv and not args.output:
            return 0
    text = export_csv(run_dir)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output} ({text.count(chr(10)) - 1} epochs)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
