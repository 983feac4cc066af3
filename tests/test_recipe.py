"""timm's recipe tools in the trainer: model EMA, Mixup/CutMix, per-sample augmentation policies, gradient
accumulation and test-time flips. Real trainers on tiny synthetic data on the CPU; nothing mocked."""
import json
import threading

import numpy as np
import pytest
import torch

from cifartui import config
from cifartui.core import checkpoint as ckpt
from cifartui.core.engine import Trainer, evaluate
from cifartui.core.loader import BatchLoader
from cifartui.core.mixing import BatchMixer
from cifartui.record.events import Checkpoint, EpochEnd, Evaluation
from cifartui.record.read_model import RunRecord

from support import tiny_overrides


def trainer_for(tmp_path, run_dir=None, resume=False, stop=None, sinks=(), **sets):
    cfg = config.load(None, tiny_overrides(tmp_path, **sets))
    trainer = Trainer(cfg, run_dir, sinks=sinks, stop=stop or threading.Event(), resume=resume)
    trainer.setup()
    return trainer


def snapshot_each_step(trainer, stop=None, after=None):
    """The model's state (parameters and buffers) right after each optimizer step, before the EMA update."""
    states = []

    def hook(_optimizer, _args, _kwargs):
        states.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})
        if after is not None and len(states) == after:
            stop.set()

    trainer.optimizer.register_step_post_hook(hook)
    return states


# -- EMA ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("warmup", [False, True])
def test_the_ema_is_a_hand_fold_of_the_weights_after_each_step(tmp_path, warmup):
    cap = 0.6
    stop = threading.Event()
    trainer = trainer_for(tmp_path, stop=stop, **{"train.ema": True, "train.ema_decay": cap,
                                                   "train.ema_warmup": warmup})
    states = snapshot_each_step(trainer, stop, after=2)
    assert trainer.fit().status == "stopped" and len(states) == 2

    def decay(k):  # update k (1-based): the first copies the weights; timm's warmup 1 - (1 + k-1)^-2/3
        if k == 1:
            return 0.0
        return min(cap, 1 - k ** (-2 / 3)) if warmup else cap

    fold = {}
    for k, state in enumerate(states, start=1):
        for name, w in state.items():
            if not w.is_floating_point():
                fold[name] = w
            else:
                fold[name] = w.clone() if k == 1 else decay(k) * fold[name] + (1 - decay(k)) * w
    ema = trainer.ema.module.state_dict()
    assert ema.keys() == fold.keys()
    for name in fold:
        torch.testing.assert_close(ema[name], fold[name], rtol=1e-5, atol=1e-6, msg=name)
    moved = [n for n in fold if fold[n].is_floating_point() and not torch.equal(states[1][n], states[0][n])]
    assert moved and any(not torch.allclose(ema[n], states[1][n]) for n in moved)  # it averages, not copies


RECIPE = {"train.epochs": 2, "train.ema": True, "train.ema_decay": 0.9, "data.augment": "trivial",
          "data.mixup": 0.4, "data.cutmix": 1.0, "data.mix_prob": 0.8, "train.label_smoothing": 0.1,
          "train.batch_size": 31, "eval.tta": "flip", "model.drop_rate": 0.2, "data.train_size": 160,
          "data.test_size": 20, "output.save_samples": False}


def test_ema_mixing_and_policies_resume_exactly_from_mid_epoch(tmp_path):
    whole_dir, cut_dir = tmp_path / "whole", tmp_path / "cut"
    whole_dir.mkdir(), cut_dir.mkdir()
    whole_events: list = []
    whole = trainer_for(tmp_path, whole_dir, sinks=[whole_events.append], **RECIPE)
    assert whole.fit().status == "completed"
    steps = len(whole.train_loader)

    stop = threading.Event()
    cut_events: list = []
    first = trainer_for(tmp_path, cut_dir, stop=stop, sinks=[cut_events.append], **RECIPE)
    snapshot_each_step(first, stop, after=steps + 2)
    assert first.fit().status == "stopped"
    assert "ema" in ckpt.load(cut_dir / "last.pt")
    second = trainer_for(tmp_path, cut_dir, resume=True, sinks=[cut_events.append], **RECIPE)
    assert second.fit().status == "completed"

    for got, want in ((second.model, whole.model), (second.ema.module, whole.ema.module)):
        got, want = got.state_dict(), want.state_dict()
        assert all(torch.equal(got[n], want[n]) for n in want), "resumed weights differ"
    epochs = lambda events: {e.epoch: e for e in events if isinstance(e, EpochEnd)}  # noqa: E731 - last wins
    assert epochs(cut_events) == {n: _same_time(e, epochs(cut_events)[n]) for n, e in epochs(whole_events).items()}
    # the figures the run records: EMA beside the raw weights, no train accuracy under mixing, the TTA used
    last = epochs(whole_events)[2]
    assert last.val_acc_ema is not None and last.train_acc is None
    assert {e.tta for e in whole_events if isinstance(e, Evaluation)} == {"flip"}
    # best.pt holds whichever scored better, and says which
    best = [e for e in whole_events if isinstance(e, Checkpoint) and e.kind == "best"][-1]
    best_epoch = epochs(whole_events)[best.epoch]
    assert best.weights == ("ema" if best_epoch.val_acc_ema > best_epoch.val_acc else "raw")
    assert ckpt.load(whole_dir / "best.pt")["weights"] == best.weights
    assert best.metric == best_epoch.best_acc == max(e.best_acc for e in epochs(whole_events).values())
    test = [e for e in whole_events if isinstance(e, Evaluation) and e.split == "test"][-1]
    assert test.weights == best.weights


def _same_time(event, like):
    """``event`` with ``like``'s timings (wall-clock figures differ between any two runs)."""
    import dataclasses

    return dataclasses.replace(event, time=like.time, epoch_seconds=like.epoch_seconds,
                               images_per_second=like.images_per_second)


def test_the_read_model_ranks_epochs_by_the_better_of_raw_and_ema():
    record = RunRecord()
    common = dict(train_loss=1.0, train_acc=None, val_loss=1.0, val_top5=1.0, lr=0.1, epoch_seconds=1.0,
                  images_per_second=1.0)
    for event in (EpochEnd(epoch=1, val_acc=0.5, val_acc_ema=0.4, **common),
                  EpochEnd(epoch=2, val_acc=0.45, val_acc_ema=0.6, **common),
                  EpochEnd(epoch=3, val_acc=0.55, val_acc_ema=None, **common)):
        record.apply(json.loads(json.dumps(event.to_dict())))  # as events.jsonl holds them
    assert record.best.epoch == 2 and record.summary()["best_val_acc"] == 0.6
    assert record.epochs[0].train_acc is None  # a null train accuracy survives the JSON round trip


# -- Mixup / CutMix -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mixup, cutmix", [(0.4, 0.0), (0.0, 1.0), (0.4, 1.0)])
@pytest.mark.parametrize("batch", [8, 7, 1])
def test_mixed_targets_sum_to_one_and_depend_on_the_key_alone(mixup, cutmix, batch):
    classes, smoothing = 5, 0.1
    mixer = BatchMixer(mixup, cutmix, 1.0, smoothing, classes)
    x = torch.rand(batch, 3, 8, 8)
    y = torch.arange(batch) % classes
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    mixed, target = mixer(x.clone(), y, (0, 1, 2, 0))
    assert np.array_equal(np.random.get_state()[1], before)  # the caller's numpy stream is untouched
    assert target.shape == (batch, classes)
    torch.testing.assert_close(target.sum(1), torch.ones(batch))
    assert (target >= 0).all()
    smoothed = torch.full((classes,), smoothing / classes)
    if batch % 2:  # the odd one out keeps its own (smoothed) label and its image
        last = smoothed.clone()
        last[y[-1]] += 1 - smoothing
        torch.testing.assert_close(target[-1], last)
        assert torch.equal(mixed[-1], x[-1])
    if batch > 1:
        assert not torch.equal(mixed[:-1], x[:-1])
        again, target2 = mixer(x.clone(), y, (0, 1, 2, 0))
        assert torch.equal(again, mixed) and torch.equal(target2, target)
        other, _ = mixer(x.clone(), y, (0, 1, 3, 0))
        assert not torch.equal(other, mixed)


# -- per-sample augmentation ----------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["trivial", "randaugment"])
def test_policies_give_each_image_its_own_op_and_repeat_for_the_same_step(policy):
    image = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    images = image.repeat(16, 1, 1, 1)  # one image, sixteen times
    labels = torch.zeros(16, dtype=torch.int64)
    loader = lambda: BatchLoader(images, labels, 8, mean=(0.5,) * 3, std=(0.25,) * 3, augment=policy,  # noqa: E731
                                 padding=0, shuffle=True, seed=3)
    torch.manual_seed(0)
    rng = torch.get_rng_state()
    first = loader()
    first.set_epoch(2)
    batches = [x for _s, x, _y, _i in first.batches()]
    assert torch.equal(torch.get_rng_state(), rng)  # the global stream (dropout, ...) is untouched
    distinct = {tuple(b.flatten().tolist()) for b in batches[0]}
    assert len(distinct) > 4, "one op for the whole batch"  # flips alone could give at most 2
    resumed = loader()
    resumed.set_epoch(2)
    _step, x, _y, _i = next(iter(resumed.batches(start_step=1)))  # a resume at step 1
    assert torch.equal(x, batches[1])
    resumed.set_epoch(3)
    assert not torch.equal(next(iter(resumed.batches()))[1], batches[0])


# -- gradient accumulation ------------------------------------------------------------------------------
def test_accumulation_gives_the_weights_of_a_batch_that_many_times_larger(tmp_path):
    # GroupNorm, no BatchNorm: with BatchNorm each chunk would normalise by its own statistics
    common = {"model.name": "test_efficientnet_gn", "data.augment": "none", "train.weight_decay": 1e-2,
              "train.lr": 3e-3, "data.train_size": 200, "data.test_size": 20, "output.save_samples": False}
    events, finals = {}, {}
    for batch, accum in ((48, 1), (16, 3)):
        got = events[accum] = []
        trainer = trainer_for(tmp_path, sinks=[got.append], **common, **{"train.batch_size": batch,
                                                                         "train.accum_steps": accum})
        assert trainer.train_loader.batch_size == 48 and len(trainer.train_loader) == 3
        start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        trainer.fit()
        finals[accum] = trainer.model.state_dict()
    assert finals[1].keys() == finals[3].keys()
    for name, want in finals[1].items():
        torch.testing.assert_close(finals[3][name], want, rtol=1e-4, atol=1e-5, msg=name)
    losses = {a: [e.train_loss for e in ev if isinstance(e, EpochEnd)] for a, ev in events.items()}
    assert losses[3] == pytest.approx(losses[1], rel=1e-5)
    moved = sum(not torch.allclose(start[n], finals[1][n]) for n in start)
    assert moved > len(start) // 2  # the weights did move: the two runs agree on real training


# -- test-time flip -------------------------------------------------------------------------------------
def test_flip_tta_changes_nothing_on_mirror_symmetric_images_and_something_otherwise():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=4).eval()
    half = torch.randint(0, 256, (12, 3, 16, 8), dtype=torch.uint8)
    symmetric = torch.cat([half, half.flip(3)], dim=3)
    asymmetric = torch.randint(0, 256, (12, 3, 16, 16), dtype=torch.uint8)
    labels = torch.arange(12) % 4
    results = {}
    for name, images in (("symmetric", symmetric), ("asymmetric", asymmetric)):
        loader = BatchLoader(images, labels, 5, mean=(0.5,) * 3, std=(0.25,) * 3)
        for tta in ("none", "flip"):
            results[name, tta] = evaluate(model, loader, 4, torch.device("cpu"), tta=tta)
    plain, flipped = results["symmetric", "none"], results["symmetric", "flip"]
    assert np.array_equal(plain.preds, flipped.preds) and np.array_equal(plain.pred_prob, flipped.pred_prob)
    assert plain.loss == pytest.approx(flipped.loss, rel=1e-6)
    assert not np.array_equal(results["asymmetric", "none"].pred_prob, results["asymmetric", "flip"].pred_prob)


# -- config ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key, value, words", [
    ("train.accum_steps", 0, "greater than or equal to 1"), ("data.mix_prob", 1.5, "less than or equal to 1"),
    ("data.augment", "autoaugment", "'trivial' or 'randaugment'"), ("eval.tta", "five_crop", "'none' or 'flip'"),
    ("train.ema_decay", 1.0, "less than 1")])
def test_bad_recipe_values_name_the_field_and_what_is_allowed(key, value, words):
    with pytest.raises(config.ConfigError) as err:
        config.load(None, [f"{key}={value}"])
    assert key in str(err.value) and words in str(err.value)


def test_eval_tta_may_change_on_resume_but_the_training_recipe_may_not():
    saved = config.load(None, ["train.ema=true"])
    config.check_resume(saved, saved.with_overrides(**{"eval.tta": "flip"}))
    for key, value in (("train.ema", False), ("train.accum_steps", 2), ("data.mixup", 0.2), ("data.augment", "trivial")):
        with pytest.raises(config.ConfigError, match=key.replace(".", r"\.")):
            config.check_resume(saved, saved.with_overrides(**{key: value}))


# -- readers of a run trained with mixing ---------------------------------------------------------------
def test_readers_of_a_mixed_run_show_no_train_accuracy_and_no_gap(tmp_path):
    """A run whose epochs have no train accuracy (Mixup/CutMix): findings, the report and the export read it."""
    from cifartui.analysis import findings
    from cifartui.commands.export import export_rows
    from cifartui.report import build_report
    from testkit.runs import RunWriter

    with RunWriter.create(tmp_path, "mixed", config.load(None, ["data.mixup=0.2", "train.ema=true"])) as run:
        run.start(["a", "b"], name="mixed", epochs=2, steps_per_epoch=1, train_size=8, val_size=4, test_size=4)
        for epoch in (1, 2):
            run.end_epoch(epoch, val_acc=0.25 * epoch, train_loss=1.0, train_acc=None, val_loss=0.9, val_top5=1.0,
                          lr=0.1, epoch_seconds=1.0, images_per_second=8.0, val_acc_ema=0.3 * epoch)
        run.end("completed", epochs_done=2)
    kinds = {f.kind for f in findings(run.path)}
    assert kinds and not kinds & {"overfitting", "generalisation_gap"}
    text = build_report(run.path).read_text()
    assert "No train accuracy: Mixup/CutMix" in text
    rows = export_rows(run.path)
    assert [r["train_top1"] for r in rows] == ["", ""] and [r["eval_top1"] for r in rows] == [25.0, 50.0]


def test_readers_agree_on_the_best_validation_accuracy_under_ema(tmp_path):
    """The trainer ranks epochs by the better of the raw and the EMA accuracy: so do the summary, findings and
    the notify command's environment (epoch 1's EMA 0.70 beats epoch 2's raw 0.60 and EMA 0.65)."""
    from cifartui.analysis import findings
    from cifartui.notify import run_environment
    from cifartui.record.store import read_run
    from testkit.runs import RunWriter

    with RunWriter.create(tmp_path, "ema", config.load(None, ["train.ema=true"])) as run:
        run.start(["a", "b"], name="ema", epochs=2, steps_per_epoch=1, train_size=8, val_size=4, test_size=4)
        for epoch, raw, ema in ((1, 0.50, 0.70), (2, 0.60, 0.65)):
            run.end_epoch(epoch, val_acc=raw, train_loss=1.0, train_acc=0.9, val_loss=0.9, val_top5=1.0,
                          lr=0.1, epoch_seconds=1.0, images_per_second=8.0, val_acc_ema=ema)
        run.end("completed", epochs_done=2)
    assert read_run(run.path).best_val_acc == 0.70
    assert run_environment(run.path)["CIFARTUI_BEST_VAL"] == repr(0.70)
    best = {f.kind: f for f in findings(run.path)}["best_epoch"]
    assert (best.figures["best_epoch"], best.figures["best_val_acc"], best.figures["last_val_acc"]) == (1, 0.70, 0.65)
