"""``python -m bench [--quick] [--json] [--only NAME[,NAME...]]``: run the benchmarks, print a table
(or one JSON object with --json). Exit status 1 when a benchmark crashed; a missed goal is not an error
(benchmarks are not tests), and neither is one that cannot run here (reported "not available")."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback

from bench.common import Result

# name -> (module, function, what it measures)
BENCHMARKS: dict[str, tuple[str, str, str]] = {
    "loader": ("bench.loader", "run_loader", "BatchLoader vs DataLoader+PIL, 32 px, batch 128"),
    "loader_224": ("bench.loader", "run_loader_224", "same, resized to 224 px"),
    "trainer_overhead": ("bench.trainer", "run_trainer_overhead", "Trainer.train_epoch vs bare loop, resnet18 b64 32 px"),
    "eval_overhead": ("bench.trainer", "run_eval_overhead", "Trainer.evaluate vs bare no_grad loop"),
    "runs_list": ("bench.runs", "run_runs_list", "10,000 runs listed, filtered and sorted; budget 1 s"),
    "runs_screen": ("bench.runs", "run_runs_screen", "the app opened on 10,000 runs, to the table's first rows; budget 2 s"),
    "curve_redraw": ("bench.runs", "run_curve_redraw", "100,000-point curve redrawn; budget 50 ms"),
    "ui_overhead": ("bench.ui", "run_ui_overhead", "training img/s with the dashboard live vs headless"),
    "first_frame": ("bench.ui", "run_first_frame", "app's first frame vs `python -c 'import torch'`"),
    "first_frame_bare": ("bench.ui", "run_first_frame_bare", "app's first frame vs a bare Textual app's (Static + Footer)"),
    "confusion_nav": ("bench.ui", "run_confusion_nav", "100x100 matrix, keypress to updated screen; budget 16 ms"),
    "recipe_options": ("bench.recipe_options", "run_recipe_options", "train steps/s of the demo config with EMA, Mixup/CutMix, policies, accumulation vs without"),
    "recipe": ("bench.recipe", "run_recipe", "configs/cifar100_small vs the plain script, real CIFAR-100 images, top-1 + wall time"),
    "cam_32": ("bench.analysis", "run_cam_32", "one Grad-CAM map, resnet34 32 px, CPU, vs one forward pass"),
    "cam_224": ("bench.analysis", "run_cam_224", "one Grad-CAM map, resnet34 224 px, CPU, vs one forward pass"),
    "probs_size": ("bench.analysis", "run_probs_size", "eval npz of 50,000 x 100 with float16 probabilities vs without"),
    "findings": ("bench.analysis", "run_findings", "findings of a 100-class, 20-epoch run vs reading that run"),
}


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v == 0 or 0.01 <= abs(v) < 10000:
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return f"{v:.2e}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke check that each benchmark runs")
    p.add_argument("--json", action="store_true", help="print one JSON object {name: {value, baseline, ratio, unit, goal}}")
    p.add_argument("--only", metavar="NAME", action="append", default=[],
                   help=f"run only these (repeat or comma-separate): {', '.join(BENCHMARKS)}")
    args = p.parse_args(argv)
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")

    results: dict[str, Result] = {}
    crashed = []
    for name in names:
        module, func, what = BENCHMARKS[name]
        if not args.json:
            print(f"{name}: {what} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            results[name] = getattr(importlib.import_module(module), func)(args.quick)
        except Exception as exc:  # report the others anyway
            traceback.print_exc()
            crashed.append(name)
            results[name] = Result(None, None, "", float("nan"), note=f"crashed: {type(exc).__name__}: {exc}")
        if not args.json:
            print(f"  {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

    if args.json:
        out = {n: r.to_json() for n, r in results.items()}
        for n in crashed:
            out[n]["goal"] = None
        print(json.dumps(out, indent=1))
    else:
        rows = [("benchmark", "ours", "baseline", "unit", "ratio", "goal", "")]
        for n, r in results.items():
            goal = f">= {r.goal:g}"
            rows.append((n, _fmt(r.value), _fmt(r.baseline), r.unit, _fmt(r.ratio), goal,
                         "CRASH" if n in crashed else r.verdict))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        for n, r in results.items():
            if r.note:
                print(f"{n}: {r.note}")
        if args.quick:
            print("(--quick: tiny sizes, the figures mean nothing)")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
