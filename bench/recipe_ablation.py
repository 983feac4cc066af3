"""What each option of the ``cifar100_small`` preset contributes, on VALIDATION images only.

    python -m bench.recipe_ablation                      # the preset, then each variant below, one at a time
    python -m bench.recipe_ablation --only preset,no_tta # some of them
    python -m bench.recipe_ablation --try "lr=train.lr=0.1" --try "wide=model.name=resnet18,train.epochs=6"

Each line trains the preset (with one option taken away, or the overrides given) on train/ less a seeded
validation split (``data.val_fraction``, carved from the training images) and reports the best validation
top-1 of the run (the better of the raw and EMA weights, with the preset's test-time flip unless taken
away), the epochs, and the wall time. The trainer still scores test/ at the end of each run (it always
does); this script never reads that figure: the preset was tuned on the validation figures, and test/ is for
``python -m bench --only recipe`` alone. Appends one JSON line per run to --out.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench.recipe import DATA, PRESET, _timed

VAL_FRACTION = 0.1  # 1,000 validation images (10 a class): a standard error of about 1.4 points at 30%

# name -> overrides of the preset (the preset's own values: configs/cifar100_small.yaml)
VARIANTS: dict[str, list[str]] = {
    "preset": [],
    "no_tta": ["eval.tta=none"],
    "no_label_smoothing": ["train.label_smoothing=0"],
    "wd_5e-4": ["train.weight_decay=5e-4"],
    "lr_0.2": ["train.lr=0.2"],
    "adam_1e-3_cosine": ["train.optimizer=adam", "train.lr=1e-3", "train.weight_decay=1e-4", "train.scheduler=cosine"],
    "resnet18": ["model.name=resnet18"],  # the script's model: 1.6x the time
    "7_epochs": ["train.epochs=7"],
    # options the preset leaves off, and what they do within its 10 epochs
    "plus_ema": ["train.ema=true"],
    "plus_trivial": ["data.augment=trivial"],
    "plus_mixup": ["data.mixup=0.2"],
}


def val_curve(run: Path) -> list[float]:
    """Validation top-1 after each epoch (the better of the raw and EMA weights), from the run's events."""
    from cifartui.record.read_model import RunRecord

    return [e.best_acc for e in RunRecord.read(run).epochs]


def train_variant(name: str, overrides: list[str], config: str = PRESET) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"ablation-{name}-") as tmp:
        work, root = Path(tmp), Path(tmp) / "runs"
        sets = [f"data.root={DATA}", f"output.root={root}", f"data.val_fraction={VAL_FRACTION}",
                "output.save_samples=false", *overrides]
        cmd = [sys.executable, "-m", "cifartui", "--headless", "train", config, *[a for s in sets for a in ("--set", s)]]
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds = _timed(cmd, work, work / "cifartui.log")
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        [run] = [p for p in root.iterdir() if p.is_dir()]
        curve = val_curve(run)
    val = max(curve)
    return {"variant": name, "overrides": overrides, "val_top1": round(val, 4), "best_epoch": curve.index(val) + 1,
            "epochs": len(curve), "val_curve": [round(v, 4) for v in curve], "seconds": round(seconds, 1),
            # CPU seconds: on a shared machine a steadier measure of the work than the wall clock
            "cpu_seconds": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 1), "time": time.strftime("%Y-%m-%d %H:%M")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.recipe_ablation", description=__doc__.split("\n")[0])
    p.add_argument("--only", default="", help=f"comma-separated variants: {', '.join(VARIANTS)}")
    p.add_argument("--try", dest="tries", action="append", default=[], metavar="NAME=KEY=V[,KEY=V...]",
                   help="a variant of your own: overrides of the preset")
    p.add_argument("--config", default=PRESET, help="the preset or YAML to vary (default cifar100_small)")
    p.add_argument("--out", default="runs/recipe_ablation.jsonl", help="append one JSON line per run here")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"--only {unknown[0]!r}: no such variant; choose from {', '.join(VARIANTS)}")
    chosen = {n: VARIANTS[n] for n in names} if names else ({} if args.tries else dict(VARIANTS))
    for item in args.tries:
        name, _, sets = item.partition("=")
        chosen[name] = [s for s in sets.split(",") if s]
    print(f"{'variant':24s} {'val top-1':>9s} {'epoch':>7s} {'wall s':>7s} {'cpu s':>7s}", flush=True)
    for name, overrides in chosen.items():
        row = train_variant(name, overrides, args.config)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{name:24s} {100 * row['val_top1']:8.1f}% {row['best_epoch']:>3d}/{row['epochs']:<3d} {row['seconds']:7.0f} {row['cpu_seconds']:7.0f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
