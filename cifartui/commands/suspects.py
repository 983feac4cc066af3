"""``cifartui suspects RUN``: the images whose given label the run's best weights contradict most confidently.

cleanlab (``cleanlab.filter.find_label_issues``, the analysis extra) flags them from the labels and the
best weights' per-class probabilities, which evaluations store as ``probs`` (float16, N x C; with ``refs``,
each image's stable reference). The test split has them from training; the best epoch's validation, or
the training images, are evaluated with best.pt (``cifartui eval``'s machinery, stored as evaluation
``<split>-e<epoch>``) the first time, and the command says so.
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cifartui.errors import UserError

SPLITS = ("train", "val", "test")


class SuspectsError(UserError):
    """Nothing to rank (no best.pt, a running run); the message says what to do."""


@dataclass
class Suspect:
    index: int  # sample number in the evaluation (as in eval/*.npz, the drilldown, `cam`)
    ref: str  # stable image reference: what data.exclude lists
    label: str  # the given label
    pred: str  # what the best weights say
    label_prob: float  # the best weights' probability of the given label
    pred_prob: float


@dataclass
class Suspects:
    run_dir: Path
    split: str
    evaluation: str  # the evaluation ranked (its thumbnails are samples_<evaluation>.npz)
    epoch: int
    num_samples: int
    flagged: int  # how many cleanlab flags in all
    items: list[Suspect] = field(default_factory=list)  # the first n, most suspect first
    evaluated_now: bool = False


def best_epoch(record) -> int | None:
    """The epoch best.pt holds: the latest ``best`` checkpoint's."""
    best = [c for c in record.checkpoints if c.kind == "best"]
    if best:
        return int(best[-1].epoch)
    return record.best.epoch if record.best is not None else None


def stored_probabilities(run_dir: Path, split: str, record=None):
    """(evaluation, arrays) with every class's probability from best.pt's epoch for ``split``, or None.
    ``record``: the run's RunRecord when the caller has read it (else it is read here)."""
    from cifartui.record.read_model import RunRecord
    from cifartui.record.store import load_evaluation

    record = RunRecord.read(run_dir) if record is None else record
    epoch = best_epoch(record)
    if epoch is None:
        return None
    names = (split, f"{split}-e{epoch:03d}")
    for ev in reversed(record.evaluations):
        if ev.split in names and int(ev.epoch) == epoch:
            arrays = load_evaluation(run_dir, ev.file, required=("targets",), keys=("targets", "probs", "refs"))
            if "probs" in arrays and "refs" in arrays:
                return ev, arrays
    return None


def evaluate_split(run_dir: Path, split: str, root: str, say: Callable[[str], None], record=None):
    """Evaluate ``split`` with best.pt and store it (probabilities and references included). ``record``: the
    run's RunRecord as read before (else read here); the evaluation's own is read after it."""
    from cifartui.commands.evaluate import evaluate
    from cifartui.record.read_model import RunRecord

    record = RunRecord.read(run_dir) if record is None else record
    epoch = best_epoch(record)
    if epoch is None or not (run_dir / "best.pt").exists():
        raise SuspectsError(f"suspects: {run_dir.name} has no best.pt (it ended before its first epoch); nothing ranks labels.")
    size = getattr(record.started, f"{split}_size", None) if record.started else None
    say(f"suspects: the {split} split has no stored probabilities from best.pt (epoch {epoch}); evaluating its "
        f"{size or ''} images now, as cifartui eval {run_dir} --split {split} would ...")
    out = evaluate(str(run_dir), [], root, split, name=f"{split}-e{epoch:03d}")
    say(f"suspects: stored as evaluation {out['evaluation']} (top-1 {100 * out['top1']:.2f}%, {out['seconds']:.0f}s)")
    found = stored_probabilities(run_dir, split)
    if found is None:
        raise SuspectsError(f"suspects: the new evaluation {out['evaluation']} of {run_dir.name} does not match "
                            f"best.pt's epoch {epoch}; run cifartui eval {run_dir} --split {split} and try again.")
    return found


def rank(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Indices cleanlab flags as label issues, most suspect first (lowest probability of the given label)."""
    from cifartui.extras import require

    filter_mod = require("cleanlab.filter", "cleanlab", "suspects")
    p = probs.astype(np.float32)
    p = p / np.clip(p.sum(1, keepdims=True), 1e-12, None)  # float16 rounding: rows sum to 1 again
    with warnings.catch_warnings():  # "too few examples in class k": a tiny split, said by the counts we print
        warnings.simplefilter("ignore")
        return np.asarray(filter_mod.find_label_issues(labels.astype(np.int64), p, return_indices_ranked_by="self_confidence",
                                                       n_jobs=1), dtype=np.int64)  # n_jobs=1: no processes forked


def find_suspects(run: str | Path, split: str = "train", top: int = 50, root: str = "runs", evaluate: bool = True,
                  say: Callable[[str], None] = lambda _m: None) -> Suspects | None:
    """The ``top`` most suspect labels of ``split``. Without stored probabilities: evaluate first when
    ``evaluate``, else None (the app asks before it evaluates thousands of images)."""
    from cifartui.extras import require
    from cifartui.record.read_model import RunRecord
    from cifartui.record.store import resolve_run

    require("cleanlab.filter", "cleanlab", "suspects")  # before any evaluation: say it at once
    if split not in SPLITS:
        raise SuspectsError(f"suspects --split: {split!r}; choose one of {', '.join(SPLITS)}.")
    if top < 1:
        raise SuspectsError(f"suspects -n: {top}; give 1 or more.")
    run_dir = resolve_run(run, root) if not isinstance(run, Path) else run
    record = RunRecord.read(run_dir)  # read once: an evaluation below adds events, never classes
    found = stored_probabilities(run_dir, split, record)
    evaluated = False
    if found is None:
        if not evaluate:
            return None
        found, evaluated = evaluate_split(run_dir, split, root, say, record), True
    ev, arrays = found
    names = record.class_names
    labels, probs, refs = arrays["targets"], arrays["probs"], arrays["refs"]
    order = rank(labels, probs)
    name = lambda i: names[i] if i < len(names) else str(i)  # noqa: E731
    items = []
    for i in order[:top].tolist():
        pred = int(probs[i].argmax())
        items.append(Suspect(index=i, ref=str(refs[i]), label=name(int(labels[i])), pred=name(pred),
                             label_prob=round(float(probs[i, labels[i]]), 4), pred_prob=round(float(probs[i, pred]), 4)))
    return Suspects(run_dir=run_dir, split=split, evaluation=ev.split, epoch=int(ev.epoch), num_samples=len(labels),
                    flagged=len(order), items=items, evaluated_now=evaluated)


def cmd_suspects(args) -> int:
    from cifartui.commands import root_of

    found = find_suspects(args.run, args.split, args.top, root_of(args), say=lambda m: print(m, file=sys.stderr))
    if args.refs:
        print("".join(f"{s.ref}\n" for s in found.items), end="")
        return 0
    if args.json:
        print(json.dumps([asdict(s) for s in found.items], indent=1))
        return 0
    print(f"{found.run_dir.name} {found.split} (evaluation {found.evaluation}, best.pt epoch {found.epoch}): cleanlab "
          f"flags {found.flagged} of {found.num_samples} labels; the {len(found.items)} most suspect:")
    width = max((len(s.ref) for s in found.items), default=3)
    for s in found.items:
        print(f"  #{s.index:<6} {s.ref:<{width}}  label {s.label} (p={s.label_prob:.3f})  model says {s.pred} "
              f"(p={s.pred_prob:.3f})")
    print(f"  leave them out of the next run: cifartui suspects {found.run_dir} --split {found.split} -n {len(found.items)} "
          "--refs > exclude.txt, then --set data.exclude=exclude.txt")
    return 0
