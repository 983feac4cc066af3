"""GPU benchmark (H100/H200): our loader + Trainer on CUDA against the standard torchvision pipeline.

    python -m bench.gpu [--json] [--no-compile]

Ours: ``Trainer.train_epoch`` (BatchLoader on the GPU: crop/flip/resize/normalise on whole batches; AMP
bf16, channels_last, fused AdamW, cudnn.benchmark), eager, and at batch 256 also with ``train.compile``
(torch.compile; ``--compile-all`` for batch 32 too).
Baseline: torchvision DataLoader with PIL transforms (RandomCrop(32, padding=4), RandomHorizontalFlip,
[Resize(224)], ToTensor, Normalize), num_workers = cores, pin_memory, non_blocking copies, and a plain
fp32 loop (PyTorch's default precision settings, AdamW for-each, ``loss.item()`` each step as most
training scripts log). resnet34 at 32 px and 224 px, batch 32 and 256, synthetic data only (no network).
Prints img/s and ratios (ours / baseline); under 5 minutes on an H100/H200. Where NVML answers, also how busy
the GPU was during each timed part (the mean of NVML's utilisation, sampled every 0.2 s by
:mod:`cifartui.gpustats`, the reader behind the dashboard's GPU panel): an input-bound loop shows as a low figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from bench.common import cores

CASES = [(32, 32), (32, 256), (224, 32), (224, 256)]  # (image size, batch)


class Busy:
    """Mean NVML utilisation of the benchmark's GPU (cuda:0) between start() and stop(); None without NVML."""

    def __init__(self, interval: float = 0.2):
        import threading

        from cifartui.gpustats import Nvml

        self.interval, self.nvml, self.indices = interval, Nvml.open(), []
        self._stop, self._thread, self._samples = threading.Event(), None, []
        self.last: float | None = None  # the mean of the last start()..stop()
        if self.nvml is not None:
            import torch

            from cifartui.core.environment import torch_environment

            gpus = torch_environment(torch.device("cuda", 0)).get("gpus") or []
            self.indices = self.nvml.indices_for([g["uuid"] for g in gpus if g.get("uuid")], cuda=True)

    def start(self) -> None:
        import threading

        if not self.indices:
            return
        self._stop.clear()
        self._samples = []
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._samples += [r.util for r in self.nvml.read_all(self.indices) if r.util is not None]

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self.last = round(sum(self._samples) / len(self._samples), 1) if self._samples else None


BUSY: Busy | None = None  # set in main() on a CUDA machine
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _trainer(size: int, batch: int, steps: int, compile_: bool, device: str, root: str, amp: str):
    from cifartui.config import Config
    from cifartui.core.engine import Trainer

    cfg = Config().with_overrides(**{
        "name": "gpu-bench", "device": device, "data.source": "synthetic", "data.num_classes": 100,
        "data.train_size": int(steps * batch / 0.9) + 200, "data.test_size": 100, "data.synthetic_size": 32,
        "data.image_size": None if size == 32 else size, "data.augment": "standard",
        "model.name": "resnet34", "model.pretrained": False, "train.batch_size": batch, "train.epochs": 100,
        "train.optimizer": "adamw", "train.amp": amp, "train.channels_last": True, "train.compile": compile_,
        "train.log_interval": 50, "output.root": root,
    })
    trainer = Trainer(cfg, None, [])
    trainer.setup()
    return trainer


def ours(size: int, batch: int, steps: int, compile_: bool, device: str, amp: str) -> tuple[float, float]:
    """(img/s over one timed epoch, seconds of the first epoch: warm-up and compilation)."""
    import torch

    with tempfile.TemporaryDirectory() as root:
        trainer = _trainer(size, batch, steps, compile_, device, root, amp)
        sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
        t0 = time.perf_counter()
        trainer.train_epoch(1, 0)  # warm-up: cudnn autotuning, compilation
        sync()
        warm = time.perf_counter() - t0
        n = len(trainer.train_loader)
        if BUSY is not None:
            BUSY.start()
        t0 = time.perf_counter()
        trainer.train_epoch(2, 0)
        sync()
        rate = n * batch / (time.perf_counter() - t0)
        if BUSY is not None:
            BUSY.stop()
        del trainer
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return rate, warm


class _PILDataset:
    def __init__(self, hwc, labels, transform):
        self.hwc, self.labels, self.transform = hwc, labels, transform

    def __len__(self) -> int:
        return len(self.hwc)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.hwc[i])), int(self.labels[i])


def baseline(size: int, batch: int, steps: int, device: str, warmup: int = 5) -> float:
    import timm
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader
    from torchvision import transforms as T

    from cifartui.core.data import make_synthetic

    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    # PyTorch's defaults (our Trainer changed them process-wide): what a plain script runs with
    torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = False, True, False
    try:
        x, y = make_synthetic(100, (steps + warmup + 1) * batch, 32, 0)
        tf = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] + ([T.Resize(size)] if size != 32 else [])
        tf += [T.ToTensor(), T.Normalize(MEAN, STD)]
        ds = _PILDataset(x.permute(0, 2, 3, 1).contiguous().numpy(), y.numpy(), T.Compose(tf))
        dl = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=cores(), pin_memory=device == "cuda",
                        drop_last=True, persistent_workers=False)
        dev = torch.device(device)
        model = timm.create_model("resnet34", num_classes=100).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model.train()
        total, done, t0 = 0.0, 0, None
        for xb, yb in dl:
            if done == warmup:
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                if BUSY is not None:
                    BUSY.start()
                t0 = time.perf_counter()
            xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            done += 1
            if done == warmup + steps:
                break
        if dev.type == "cuda":
            torch.cuda.synchronize()
        rate = steps * batch / (time.perf_counter() - t0)
        if BUSY is not None:
            BUSY.stop()
        return rate
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile runs")
    p.add_argument("--compile-all", action="store_true", help="compile at batch 32 too (by default only batch 256: time)")
    p.add_argument("--cpu-smoke", action="store_true",
                   help="check the script itself on a machine without a GPU: tiny sizes, no AMP, no compile; figures mean nothing")
    args = p.parse_args(argv)
    import torch

    if args.cpu_smoke:
        device, amp, compile_ok, cases = "cpu", "off", False, [(32, 8), (64, 8)]
        steps_for = lambda size, batch: 2  # noqa: E731
    else:
        if not torch.cuda.is_available():
            print("bench.gpu: no CUDA GPU is visible here (torch.cuda.is_available() is False); "
                  "run it on an H100/H200 machine. `python -m bench` holds the CPU benchmarks.", file=sys.stderr)
            return 2
        device, amp, compile_ok, cases = "cuda", "bf16", not args.no_compile, CASES
        # fixed work per case: enough steps to time, few enough for 5 minutes in all
        steps_for = lambda size, batch: {32: 150, 256: 40}[batch] if size == 32 else {32: 100, 256: 25}[batch]  # noqa: E731

    global BUSY
    BUSY = Busy() if device == "cuda" else None
    started = time.perf_counter()
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke check)"
    if not args.json:
        print(f"device: {name}; torch {torch.__version__}; {cores()} CPU cores for the baseline's workers", flush=True)
    rows = {}
    for size, batch in cases:
        steps = steps_for(size, batch)
        base = baseline(size, batch, steps, device)
        base_busy = BUSY.last if BUSY is not None else None
        eager, eager_warm = ours(size, batch, steps, False, device, amp)
        eager_busy = BUSY.last if BUSY is not None else None
        row = {"baseline_img_s": round(base, 1), "ours_img_s": round(eager, 1), "ratio": round(eager / base, 2),
               "ours_first_epoch_s": round(eager_warm, 1)}
        if base_busy is not None and eager_busy is not None:
            row.update(baseline_gpu_busy_pct=base_busy, ours_gpu_busy_pct=eager_busy)  # NVML utilisation
        if compile_ok and (batch >= 256 or args.compile_all):  # compiling takes a minute a shape
            comp, comp_warm = ours(size, batch, steps, True, device, amp)
            row.update(ours_compiled_img_s=round(comp, 1), ratio_compiled=round(comp / base, 2),
                       compile_first_epoch_s=round(comp_warm, 1))
        rows[f"resnet34_{size}px_b{batch}"] = row
        if not args.json:
            extra = (f"  compiled {row['ours_compiled_img_s']:>9.1f} img/s  x{row['ratio_compiled']:<6} "
                     f"(first epoch {row['compile_first_epoch_s']} s)") if "ratio_compiled" in row else ""
            busy = (f"  GPU busy {row['baseline_gpu_busy_pct']:.0f}% -> {row['ours_gpu_busy_pct']:.0f}%"
                    if "ours_gpu_busy_pct" in row else "")
            print(f"resnet34 {size:>3}px b{batch:<3}  baseline {base:>9.1f} img/s  ours {eager:>9.1f} img/s  "
                  f"x{row['ratio']:<6}{extra}{busy}", flush=True)
    total = time.perf_counter() - started
    if args.json:
        print(json.dumps({"device": name, "seconds": round(total, 1), "results": rows}, indent=1))
    else:
        print(f"total {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
