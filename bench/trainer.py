"""trainer_overhead / eval_overhead: our Trainer's step loop and evaluation against bare PyTorch loops
doing the same work on the same batches (resnet18, batch 64, 32 px, synthetic data, this machine's device).

trainer_overhead: ``Trainer.train_epoch`` (with a run store as its sink, as in real use) against
forward / cross-entropy / zero_grad / backward / AdamW step / lr schedule step, nothing else.
eval_overhead: ``Trainer.evaluate`` (loss, top-1/top-5, confusion matrix, per-sample predictions and
probabilities) against a ``no_grad`` forward with an accuracy count.
Both sides iterate the same BatchLoader, so the loader's cost (measured by ``loader``) is on both.
"""

from __future__ import annotations

import tempfile
import time

from bench.common import Result, interleave

BATCH = 64


def _setup(quick: bool, root: str):
    import torch  # noqa: F401

    from cifartui.config import Config
    from cifartui.core.engine import Trainer
    from cifartui.record.store import RunStore

    # short epochs, many of them, alternating: on a shared machine, bursts of load then hit both sides
    steps = 2 if quick else 4
    batch = 16 if quick else BATCH
    n = int(steps * batch / 0.9) + 20  # 10% is carved off for validation
    cfg = Config().with_overrides(**{
        "name": "bench", "device": "auto", "data.source": "synthetic", "data.num_classes": 10,
        "data.train_size": n, "data.test_size": 64, "data.synthetic_size": 32, "data.augment": "standard",
        "model.name": "resnet18", "model.pretrained": False, "train.batch_size": batch, "train.epochs": 100,
        "train.optimizer": "adamw", "train.scheduler": "cosine", "output.root": root,
    })
    store = RunStore.create(root, "bench")
    trainer = Trainer(cfg, store.path, [store], run_id=store.id)
    trainer.setup()
    return trainer, store


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def run_trainer_overhead(quick: bool) -> Result:
    import timm
    import torch
    import torch.nn.functional as F

    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as root:
        trainer, store = _setup(quick, root)
        dev, loader = trainer.device, trainer.train_loader
        t = trainer.cfg.train
        model = timm.create_model("resnet18", num_classes=trainer.data.num_classes).to(dev)
        if trainer.channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay,
                                **({"fused": True} if dev.type == "cuda" else {}))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100 * len(loader))
        epoch = [0]

        def ours() -> float:
            epoch[0] += 1
            _sync(dev)
            t0 = time.perf_counter()
            trainer.train_epoch(epoch[0], 0)
            _sync(dev)
            return len(loader) / (time.perf_counter() - t0)

        def bare() -> float:
            loader.set_epoch(epoch[0])  # the batches ours just had
            model.train()
            _sync(dev)
            t0 = time.perf_counter()
            steps = 0
            for _step, x, y, _idx in loader.batches():
                with torch.autocast(dev.type, dtype=trainer.amp_dtype, enabled=trainer.amp_dtype is not None):
                    loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                steps += 1
            _sync(dev)
            return steps / (time.perf_counter() - t0)

        if not quick:
            ours(), bare()  # warm-up: allocator, kernels
        value, baseline = interleave(ours, bare, 1 if quick else 11)
        store.close()
    return Result(value, baseline, "steps/s", 0.97)


def run_eval_overhead(quick: bool) -> Result:
    import torch

    from cifartui.core.loader import BatchLoader

    with tempfile.TemporaryDirectory(prefix="bench-eval-") as root:
        trainer, store = _setup(quick, root)
        data, dev, model = trainer.data, trainer.device, trainer.model
        # an evaluation set as large as the training split, in the trainer's eval batch size
        loader = BatchLoader(trainer.train_loader.images, trainer.train_loader.labels, trainer.val_loader.batch_size,
                             mean=data.mean, std=data.std, image_size=trainer.image_size,
                             channels_last=trainer.channels_last)

        def ours() -> float:
            _sync(dev)
            t0 = time.perf_counter()
            result = trainer.evaluate(loader)
            _sync(dev)
            assert result.preds.shape[0] == len(loader.labels)
            return len(loader) / (time.perf_counter() - t0)

        @torch.no_grad()
        def bare() -> float:
            model.eval()
            _sync(dev)
            t0 = time.perf_counter()
            correct = torch.zeros((), dtype=torch.int64, device=dev)
            for _step, x, y, _idx in loader.batches():
                with torch.autocast(dev.type, dtype=trainer.amp_dtype, enabled=trainer.amp_dtype is not None):
                    logits = model(x)
                correct += (logits.argmax(1) == y).sum()
            int(correct)
            _sync(dev)
            model.train()
            return len(loader) / (time.perf_counter() - t0)

        if not quick:
            ours(), bare()
        value, baseline = interleave(ours, bare, 1 if quick else 11)
        store.close()
    return Result(value, baseline, "batches/s", 0.97)
