"""cam_32 / cam_224 / probs_size / findings: what the analysis costs.

cam_32, cam_224: one Grad-CAM map (``core.gradcam.Explainer``, the drilldown's ``g`` after the first) of a
ResNet34 with random weights on this machine's CPU, at 32 and 224 px, against one plain ``no_grad`` forward
pass of the same model and image (the baseline): the ratio is how many forward passes a map costs (a map
is a forward and a backward pass plus the map's arithmetic, so a few).
probs_size: the compressed ``eval/*.npz`` of a 50,000-image, 100-class evaluation with every class's
probability stored (float16, as ``suspects`` needs them) against the same file without them; the
probabilities are a confident classifier's (top-1 ~0.8 on average), generated, not a trained model's.
findings: ``analysis.findings`` (what the dashboard's findings panel and the report show) on a 100-class,
20-epoch run with 1,560 step events and a 100x100 test confusion, against ``analysis.load_run`` of the same
run (the reading every reader pays; the baseline): the ratio is the share of the time that is reading, so
0.5 means the analysis costs no more than the reading it needs.
"""

from __future__ import annotations

import io
import time

from bench.common import Result, interleave


def _cam(size: int, quick: bool) -> Result:
    import timm
    import torch

    from cifartui.core.gradcam import Explainer

    torch.manual_seed(0)
    model = timm.create_model("resnet34", pretrained=False, num_classes=100)
    explainer = Explainer(model, "resnet34", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), size)
    image = torch.randint(0, 256, (3, size, size), dtype=torch.uint8)
    x = explainer._prep.transform(image[None], None)
    explainer(image)  # warm-up: first-call allocations

    def one_map() -> float:
        t0 = time.perf_counter()
        explainer(image, 7)
        return time.perf_counter() - t0

    @torch.no_grad()
    def one_forward() -> float:
        t0 = time.perf_counter()
        model(x)
        return time.perf_counter() - t0

    value, baseline = interleave(one_map, one_forward, 2 if quick else 7)
    explainer.close()
    return Result(value * 1000, baseline * 1000, "ms per map", 0.1, higher_is_better=False,
                  note=f"{explainer.layer_name}; baseline: one no_grad forward pass", extra={"px": size})


def run_cam_32(quick: bool) -> Result:
    return _cam(32, quick)


def run_cam_224(quick: bool) -> Result:
    return _cam(224, quick)


def run_probs_size(quick: bool) -> Result:
    import numpy as np

    from cifartui.diff import confusion_of

    n, c = (5_000 if quick else 50_000), 100
    rng = np.random.default_rng(0)
    targets = rng.integers(0, c, n)
    logits = rng.normal(0, 1.5, (n, c)).astype(np.float32)
    logits[np.arange(n), targets] += rng.normal(8, 2, n).astype(np.float32)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    preds = probs.argmax(1)
    conf = confusion_of(targets, preds, c).astype(np.int32)
    arrays = {"confusion": conf, "targets": targets.astype(np.int32), "preds": preds.astype(np.int32),
              "pred_prob": probs.max(1).astype(np.float16), "true_prob": probs[np.arange(n), targets].astype(np.float16)}

    def size(**extra) -> int:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays, **extra)
        return buf.tell()

    without, with_probs = size(), size(probs=probs.astype(np.float16))
    return Result(with_probs / 2**20, without / 2**20, "MB", 0.0, higher_is_better=False,
                  note=f"{n} x {c} float16 probabilities ({n * c * 2 / 2**20:.1f} MB raw); baseline: the same "
                       f"evaluation without them; mean top-1 probability {probs.max(1).mean():.2f}",
                  extra={"images": n, "classes": c})


def run_findings(quick: bool) -> Result:
    import shutil
    import tempfile
    from pathlib import Path

    from cifartui import analysis
    from testkit.runs import write_cifar100_run

    tmp = Path(tempfile.mkdtemp(prefix="bench-findings-"))
    try:
        run = write_cifar100_run(tmp)
        analysis.findings(run)  # first call: imports, page cache

        def timed(fn):
            def once() -> float:
                t0 = time.perf_counter()
                fn(run)
                return time.perf_counter() - t0
            return once

        value, baseline = interleave(timed(analysis.findings), timed(analysis.load_run), 3 if quick else 15)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Result(value * 1000, baseline * 1000, "ms", 0.5, higher_is_better=False,
                  note="baseline: analysis.load_run of the same run (its reading)")
