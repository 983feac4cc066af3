"""The optimizer (timm's create_optimizer_v2: no weight decay on norm layers and biases unless asked) and the
lr schedule (a pure function of the global optimizer step: LambdaLR's values, nothing to restore on resume)."""
import threading

import pytest
import torch

from cifartui import config
from cifartui.core import checkpoint as ckpt
from cifartui.core.engine import Trainer, lr_factor

from support import tiny_overrides


def trainer_for(tmp_path, run_dir=None, resume=False, stop=None, **sets):
    cfg = config.load(None, tiny_overrides(tmp_path, **sets))
    trainer = Trainer(cfg, run_dir, stop=stop or threading.Event(), resume=resume)
    trainer.setup()
    return trainer


def decay_by_name(trainer):
    groups = {id(p): g for g in trainer.optimizer.param_groups for p in g["params"]}
    named = dict(trainer.model.named_parameters())
    assert len(groups) == len(named), "every parameter in exactly one group"
    return {name: groups[id(p)]["weight_decay"] for name, p in named.items()}, named


def test_norm_weights_and_biases_get_no_weight_decay_by_default(tmp_path):
    trainer = trainer_for(tmp_path, **{"train.weight_decay": 0.05})
    decay, named = decay_by_name(trainer)
    norm = [n for n, p in named.items() if p.ndim == 1]
    assert any(".bn" in n or "norm" in n for n in norm) and any(n.endswith(".bias") for n in norm)
    assert all(decay[n] == 0.0 for n in norm)
    assert all(decay[n] == 0.05 for n, p in named.items() if p.ndim > 1)
    assert len({g["lr"] for g in trainer.optimizer.param_groups}) == 1  # the groups share one base lr
    assert trainer.scheduler.base_lr == trainer.cfg.train.lr


def test_decay_norm_and_bias_puts_weight_decay_on_every_parameter(tmp_path):
    trainer = trainer_for(tmp_path, **{"train.weight_decay": 0.05, "train.decay_norm_and_bias": True})
    decay, _named = decay_by_name(trainer)
    assert set(decay.values()) == {0.05}


@pytest.mark.parametrize("name, momentum, cls, nesterov", [
    ("sgd", 0.9, torch.optim.SGD, True), ("sgd", 0.0, torch.optim.SGD, False),
    ("adam", 0.9, torch.optim.Adam, None), ("adamw", 0.9, torch.optim.AdamW, None)])
def test_the_configured_optimizer(tmp_path, name, momentum, cls, nesterov):
    trainer = trainer_for(tmp_path, **{"train.optimizer": name, "train.momentum": momentum, "train.weight_decay": 1e-4})
    opt = trainer.optimizer
    assert type(opt) is cls
    for group in opt.param_groups:
        if nesterov is not None:
            assert group["nesterov"] is nesterov and group["momentum"] == momentum
        assert group["lr"] == trainer.cfg.train.lr  # cosine without warmup: factor(0) = 1


def record_lrs(trainer, after=None, stop=None):
    """The lr of every param group at each optimizer step; sets ``stop`` once ``after`` steps are taken."""
    lrs, real = [], trainer.optimizer.step

    def step(*args, **kwargs):
        lrs.append(tuple(g["lr"] for g in trainer.optimizer.param_groups))
        if after is not None and len(lrs) == after:
            stop.set()
        return real(*args, **kwargs)

    trainer.optimizer.step = step
    return lrs


SCHEDULE = {"train.epochs": 2, "train.weight_decay": 1e-3, "train.warmup_epochs": 0.5, "train.scheduler": "cosine",
            "train.log_interval": 1}


def test_the_lr_is_base_times_lr_factor_of_the_step_as_lambda_lr_gives_it(tmp_path):
    trainer = trainer_for(tmp_path, **SCHEDULE)
    lrs = record_lrs(trainer)
    trainer.fit()
    steps = len(trainer.train_loader)
    total, warmup, base = 2 * steps, int(0.5 * steps), trainer.cfg.train.lr
    assert warmup > 0 and len(lrs) == total
    fn = lambda s: lr_factor(s, total, warmup, "cosine", steps)  # noqa: E731
    assert [set(x) for x in lrs] == [{base * fn(k)} for k in range(total)]  # every group, every step, exactly

    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=base)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, fn)
    reference = []
    for _ in range(total):
        reference.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert [x[0] for x in lrs] == reference


def test_the_schedule_continues_exactly_after_a_resume_from_mid_epoch(tmp_path):
    whole_dir, cut_dir = tmp_path / "whole", tmp_path / "cut"
    whole_dir.mkdir(), cut_dir.mkdir()
    whole = trainer_for(tmp_path, whole_dir, **SCHEDULE)
    expected = record_lrs(whole)
    whole.fit()
    steps = len(whole.train_loader)

    stop = threading.Event()
    first = trainer_for(tmp_path, cut_dir, stop=stop, **SCHEDULE)
    before = record_lrs(first, after=steps + 3, stop=stop)
    assert first.fit().status == "stopped"
    state = ckpt.load(cut_dir / "last.pt")
    assert (state["epoch"], state["step"]) == (2, 3)
    state["scheduler"] = {"last_epoch": 999, "base_lrs": [1.0], "_last_lr": [1.0]}  # an older last.pt's entry: ignored
    ckpt.save(state, cut_dir / "last.pt")

    second = trainer_for(tmp_path, cut_dir, resume=True, **SCHEDULE)
    base, k = second.cfg.train.lr, steps + 3
    assert second.scheduler.step == k
    assert second.optimizer.param_groups[0]["lr"] == base * lr_factor(k, 2 * steps, int(0.5 * steps), "cosine", steps)
    after = record_lrs(second)
    assert second.fit().status == "completed"
    assert before + after == expected
    final, reference = second.model.state_dict(), whole.model.state_dict()
    assert all(torch.equal(final[n], reference[n]) for n in reference), "resumed weights differ"


def test_a_last_pt_whose_optimizer_had_one_param_group_is_refused_with_a_reason(tmp_path):
    """Before timm's factory, weight decay went on every parameter: one group where there are now two."""
    from cifartui.core.engine import SetupError

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    sets = {"train.weight_decay": 1e-3}
    trainer_for(tmp_path, run_dir, **sets).save_last(1, 0)
    state = ckpt.load(run_dir / "last.pt")
    old = trainer_for(tmp_path, **sets)
    state["optimizer"] = torch.optim.AdamW(old.model.parameters(), lr=1e-3, weight_decay=1e-3).state_dict()
    ckpt.save(state, run_dir / "last.pt")
    with pytest.raises(SetupError, match="does not fit this optimizer.*older cifartui"):
        trainer_for(tmp_path, run_dir, resume=True, **sets)
