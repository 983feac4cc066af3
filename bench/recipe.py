"""recipe: the small-data preset ``cifar100_small`` against the plain script a user would write
(bench/plain_script.py), on the real CIFAR-100 images in ../shared/data/cifar100-real.

Both sides train on train/ (10,000 images, 100 a class) and are scored on test/ (3,000 images neither trained
on; tuning used a validation split carved from train/ only). Each runs as a fresh process, one after the
other in the same bench run; its wall time runs from launch to exit (imports, decoding the images, per-epoch
validation and checkpoints included).

value: our top-1, baseline: the script's, ratio = value / baseline. The goal is +5 points of top-1, in no
more wall time: ``goal`` is (baseline + 0.05) / baseline, and the verdict is MISS as well when our wall time
is longer than the script's. --quick: 10 classes, a few images each, one epoch (a smoke check: seconds).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import Result, not_available

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BENCH_RECIPE_DATA", REPO.parent / "shared" / "data" / "cifar100-real"))
PRESET = "cifar100_small"
POINTS = 0.05  # the margin to beat the script by: 5 points of top-1
QUICK = {"classes": 10, "train": 8, "test": 3}


@dataclass
class RecipeResult(Result):
    """Two conditions: top-1 (the ratio against ``goal``) and wall time (ours no longer than the script's)."""

    ours_seconds: float | None = None
    script_seconds: float | None = None

    @property
    def verdict(self) -> str:
        verdict = super().verdict
        if verdict == "PASS" and self.ours_seconds is not None and self.ours_seconds > (self.script_seconds or 0):
            return "MISS"
        return verdict


def _timed(cmd: list[str], cwd: Path, log: Path) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exited {done.returncode}:\n{tail}")
    return seconds


def run_script(data: Path, work: Path, epochs: int | None = None) -> tuple[float, float]:
    """The plain script: (top-1 on test/, wall seconds)."""
    log = work / "plain_script.log"
    cmd = [sys.executable, str(REPO / "bench" / "plain_script.py"), "--data", str(data)]
    seconds = _timed(cmd + (["--epochs", str(epochs)] if epochs else []), work, log)
    result = json.loads(log.read_text().strip().splitlines()[-1])
    return result["top1"], seconds


def run_ours(data: Path, work: Path, overrides: list[str] = (), config: str = PRESET) -> tuple[float, float, Path]:
    """``cifartui --headless train cifar100_small``: (top-1 on test/, wall seconds, the run folder)."""
    from cifartui.record.store import list_runs

    root = work / "runs"
    sets = [f"data.root={data}", f"output.root={root}", *overrides]
    cmd = [sys.executable, "-m", "cifartui", "--headless", "train", config, *[a for s in sets for a in ("--set", s)]]
    seconds = _timed(cmd, work, work / "cifartui.log")
    runs = [r for r in list_runs(root) if r.status == "completed"]
    if len(runs) != 1 or runs[0].test_acc is None:
        raise RuntimeError(f"expected one completed run with a test score under {root}, found {runs}")
    return runs[0].test_acc, seconds, Path(runs[0].path)


def tiny_copy(data: Path, dest: Path) -> Path:
    """A few images of a few classes of ``data`` (same layout), for --quick."""
    classes = sorted(p.name for p in (data / "train").iterdir() if p.is_dir())[: QUICK["classes"]]
    for split in ("train", "test"):
        for name in classes:
            (dest / split / name).mkdir(parents=True)
            for image in sorted((data / split / name).iterdir())[: QUICK[split]]:
                shutil.copy(image, dest / split / name / image.name)
    return dest


def run_recipe(quick: bool) -> Result:
    if not (DATA / "train").is_dir() or not (DATA / "test").is_dir():
        return not_available("top-1", 1.0, f"no real images at {DATA} (train/ and test/; set BENCH_RECIPE_DATA)")
    with tempfile.TemporaryDirectory(prefix="bench-recipe-") as tmp:
        work = Path(tmp)
        data = tiny_copy(DATA, work / "data") if quick else DATA
        ours_extra = ["train.epochs=1", "train.batch_size=16", "data.val_fraction=0.2"] if quick else []
        ours, ours_s, _run = run_ours(data, work, ours_extra)
        script, script_s = run_script(data, work, epochs=1 if quick else None)
    goal = (script + POINTS) / script if script else float("inf")
    note = (f"top-1 on test/ (images neither trained on): ours {100 * ours:.1f}% vs script {100 * script:.1f}% "
            f"({100 * (ours - script):+.1f} points, goal +{100 * POINTS:.0f}); wall time ours {ours_s:.0f} s vs "
            f"script {script_s:.0f} s ({ours_s / script_s:.2f}x, goal <= 1)")
    return RecipeResult(ours, script, "top-1", round(goal, 4), note=note, ours_seconds=ours_s, script_seconds=script_s,
                        extra={"ours_seconds": round(ours_s, 1), "script_seconds": round(script_s, 1),
                               "time_ratio": round(ours_s / script_s, 3)})
