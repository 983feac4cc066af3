"""recipe_options: what each recipe tool costs in training speed, on the demo config (resnet10t, 32 px,
batch 128, generated images) on this machine's device.

A plain training step here is: the loader's batch (``standard`` crop + flip, normalise) then forward,
backward and the optimizer step. Each option adds work to it (EMA: ``ModelEmaV3.update``; Mixup/CutMix:
``BatchMixer``; trivial / randaugment: the per-image policy in the loader) or changes it (accumulation:
four chunks of 32 instead of one batch of 128). Each piece is timed on its own, many times, interleaved,
and the fastest time of each is kept: on this shared machine the speed of a whole epoch swings 10x within
minutes (0.3 to 6 plain steps/s measured), which drowns a 5% cost in end-to-end epochs, while the fastest
of many short repetitions is the least disturbed one. The ratio of an option is the plain step's time over
the step's time with the option (steps/s with it over steps/s without it). ``eval.tta: flip``: the same on
``Trainer.evaluate`` (images/s). The reported figure is the whole recipe (EMA + Mixup/CutMix + TrivialAugment).
"""

from __future__ import annotations

import time

from bench.common import Result


def _trainer(quick: bool, extra: dict):
    from cifartui import config
    from cifartui.core.engine import Trainer

    batch = 32 if quick else 128
    sets = {"device": "auto", "data.train_size": 2 * batch + 16, "data.test_size": 64 if quick else 512,
            "train.batch_size": batch, "output.save_samples": False, **extra}
    trainer = Trainer(config.load("configs/demo.yaml", [f"{k}={v}" for k, v in sets.items()]), None)
    trainer.setup()
    return trainer


def _fastest(fns: dict, repeats: int, sync) -> dict[str, float]:
    """Seconds of the fastest call of each function, calling them in turn ``repeats`` times."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def run_recipe_options(quick: bool) -> Result:
    import torch

    repeats = 2 if quick else 20
    # one thread: on a shared CPU each op's thread barrier can wait a time slice for a descheduled thread,
    # which swings a step's time far more than the options change it (the loader runs small batches on one
    # thread too, see BatchLoader._threads); restored at the end
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(quick, repeats)
    finally:
        torch.set_num_threads(threads)


def _measure(quick: bool, repeats: int) -> Result:
    import torch

    from cifartui.core.mixing import BatchMixer
    from cifartui.core.recipe import backward_in_chunks, make_criterion, make_ema

    plain = _trainer(quick, {})
    trivial = _trainer(quick, {"data.augment": "trivial"})
    randaug = _trainer(quick, {"data.augment": "randaugment"})
    flip = _trainer(quick, {"eval.tta": "flip"})
    dev = plain.device
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)  # noqa: E731
    loader = plain.train_loader
    idx = torch.arange(loader.batch_size, device=dev)
    raw, y = loader.images.index_select(0, idx), loader.labels.index_select(0, idx)
    x = loader.transform(raw, torch.Generator(device=dev).manual_seed(1))
    ema = make_ema(plain.model, plain.cfg.with_overrides(**{"train.ema": True}))
    mixer = BatchMixer(0.8, 1.0, 1.0, 0.0, plain.data.num_classes)
    soft = torch.nn.functional.one_hot(y, plain.data.num_classes).float()
    soft_ce = make_criterion(plain.cfg.with_overrides(**{"data.mixup": 0.8}))  # timm's SoftTargetCrossEntropy
    chunk = max(1, loader.batch_size // 4)

    def step(chunk_size: int, target=y, criterion=plain.criterion):
        plain.optimizer.zero_grad(set_to_none=True)
        backward_in_chunks(plain.model, x, target, chunk_size, criterion, lambda t: t, plain.autocast)
        plain.optimizer.step()

    key = lambda l: lambda: l.transform(raw, torch.Generator(device=dev).manual_seed(2))  # noqa: E731
    t = _fastest({
        "load standard": key(loader), "load trivial": key(trivial.train_loader),
        "load randaugment": key(randaug.train_loader), "step": lambda: step(loader.batch_size),
        "step accum 4": lambda: step(chunk), "step soft targets": lambda: step(loader.batch_size, soft, soft_ce),
        "ema update": lambda: ema.update(plain.model, step=1000), "mix": lambda: mixer(x.clone(), y, (0, 1, 2, 0)),
    }, repeats, sync)
    base = t["load standard"] + t["step"]
    costs = {
        "ema": base + t["ema update"],
        "mixup+cutmix": base + t["mix"] + t["step soft targets"] - t["step"],
        "trivial": t["load trivial"] + t["step"],
        "randaugment": t["load randaugment"] + t["step"],
        "accum 4x32": t["load standard"] + t["step accum 4"],
    }
    costs["recipe"] = costs["ema"] + costs["mixup+cutmix"] + costs["trivial"] - 2 * base
    ratios = {k: base / v for k, v in costs.items()}
    ev = _fastest({"none": lambda: plain.evaluate(plain.test_loader), "flip": lambda: flip.evaluate(flip.test_loader)},
                  max(1, repeats // 3), sync)
    ratios["tta flip (eval)"] = ev["none"] / ev["flip"]
    note = "; ".join(f"{k} x{v:.2f}" for k, v in ratios.items())
    return Result(1 / costs["recipe"], 1 / base, "steps/s", 0.5, note=f"speed vs plain: {note}",
                  extra={"ratios": {k: round(v, 3) for k, v in ratios.items()},
                         "milliseconds": {k: round(1000 * v, 2) for k, v in t.items()}})
