"""Every bad input: a short message naming what, where and the fix; exit code 2; no traceback."""
import errno
import threading

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from cifartui import config
from cifartui.cli import main
from cifartui.core import checkpoint as ckpt
from cifartui.core.checkpoint import CheckpointError
from cifartui.core.engine import Trainer, TrainingError

from support import tiny_overrides


def run_cli(capsys, root, *sets, cfg="configs/demo.yaml", extra=()):
    args = ["--headless", "train", cfg]
    for item in tiny_overrides(root) + list(sets):
        args += ["--set", item]
    code = main(args + list(extra))
    err = capsys.readouterr().err
    return code, err


def folder(root, classes, n=4):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8, 3), (i * 20) % 256, np.uint8)).save(root / c / f"{i}.png")
    return root


CASES = {
    "negative lr": (["train.lr=-0.1"], "train.lr: -0.1 is not allowed: input should be greater than 0"),
    "batch size 0": (["train.batch_size=0"], "train.batch_size: 0 is not allowed"),
    "val_fraction 1.5": (["data.val_fraction=1.5"], "data.val_fraction: 1.5 is not allowed: input should be less than 1"),
    "epochs 0": (["train.epochs=0"], "train.epochs: 0 is not allowed"),
    "wrong type": (["train.epochs=ten"], "train.epochs: 'ten' is not allowed: input should be a valid integer"),
    "unknown key": (["train.epoch=3"], "train.epoch: unknown key. Did you mean 'epochs'?"),
    "unknown source": (["data.source=imagenet"], "data.source: 'imagenet' is not allowed: input should be 'cifar10', 'cifar100', 'imagefolder' or 'synthetic'"),
    "unknown timm model": (["model.name=resnet35"], "model.name: 'resnet35' is not a timm model. Close names:"),
    "run name with slash": (["name=a/b"], "name: 'a/b' is not allowed"),
    "run name with dots": (["name=.."], "name: '..' is not allowed"),
    "missing image folder": (["data.source=imagefolder", "data.root=/nonexistent/flowers"], "data.root: '/nonexistent/flowers' does not exist"),
    "cifar offline without files": (["data.source=cifar10", "data.root=/nonexistent", "data.download=false"], "data.root: no cifar10 files in '/nonexistent'"),
    "missing checkpoint": (["model.checkpoint=/nonexistent/best.pt"], "model.checkpoint: '/nonexistent/best.pt' does not exist"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_a_clear_message(capsys, tmp_path, name):
    sets, expected = CASES[name]
    code, err = run_cli(capsys, tmp_path / "runs", *sets)
    assert code == 2 and expected in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "no run folder for bad input"


def test_malformed_yaml(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: 1: 2\n")
    assert main(["--headless", "train", str(bad)]) == 2
    assert "malformed YAML at line 2, column 8" in capsys.readouterr().err


def test_yaml_is_loaded_safely(capsys, tmp_path):
    bad = tmp_path / "evil.yaml"
    bad.write_text(f"name: !!python/object/apply:os.system ['touch {tmp_path}/PWNED']\n")
    assert main(["--headless", "train", str(bad)]) == 2
    assert not (tmp_path / "PWNED").exists()


def test_empty_and_single_class_image_folders(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, err = run_cli(capsys, tmp_path / "runs", "data.source=imagefolder", f"data.root={tmp_path / 'empty'}")
    assert code == 2 and "holds no class folders" in err
    folder(tmp_path / "one", ["cat"])
    code, err = run_cli(capsys, tmp_path / "runs", "data.source=imagefolder", f"data.root={tmp_path / 'one'}")
    assert code == 2 and "single class folder (cat)" in err


def test_corrupt_images_are_skipped_and_listed(capsys, tmp_path):
    root = folder(tmp_path / "imgs", ["cat", "dog"], n=12)
    (root / "dog" / "torn.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")
    code = main(["--headless", "train", "configs/demo.yaml", *sum((["--set", s] for s in tiny_overrides(
        tmp_path / "runs", **{"data.source": "imagefolder", "data.root": str(root), "data.val_fraction": 0.25})), [])])
    out = capsys.readouterr().out
    assert code == 0 and "Skipped 1 unreadable image(s)" in out and "torn.png" in out


def test_corrupt_and_foreign_checkpoints(capsys, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    code, err = run_cli(capsys, tmp_path / "runs", f"model.checkpoint={junk}")
    assert code == 2 and "is corrupt or truncated" in err and "Traceback" not in err
    other = tmp_path / "r18.pt"
    torch.save({"state_dict": timm.create_model("resnet18", num_classes=4).state_dict(), "arch": "resnet18"}, other)
    code, err = run_cli(capsys, tmp_path / "runs", f"model.checkpoint={other}")
    assert code == 2 and "holds weights of resnet18, which do not fit" in err


def test_output_root_that_cannot_be_written(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = run_cli(capsys, blocker / "runs")
    assert code == 2 and "output.root" in err


def test_resume_with_an_incompatible_config(capsys, tmp_path):
    root = tmp_path / "runs"
    assert run_cli(capsys, root)[0] == 0
    run = next(root.iterdir())
    code = main(["--headless", "train", "--resume", str(run), "--set", "train.lr=0.5", "--set", "train.epochs=2"])
    err = capsys.readouterr().err
    assert code == 2 and "--resume: the config differs from the run's in train.lr" in err
    assert main(["--headless", "train", "--resume", str(run), "--set", "train.epochs=2"]) == 0  # extending is fine


def test_disk_full_during_a_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save({"x": torch.ones(3)}, path)

    def full_disk(obj, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device.*previous file is intact"):
        ckpt.save({"x": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(ckpt.load(path)["x"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"], "no temp file left behind"


def test_non_finite_loss_fails_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = config.load("configs/demo.yaml", tiny_overrides(tmp_path, **{"train.epochs": 2, "train.log_interval": 1}))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    events = []
    trainer = Trainer(cfg, run_dir, [events.append], stop=threading.Event())
    trainer.setup()
    steps_per_epoch = len(trainer.train_loader)
    real, calls = trainer.criterion, {"n": 0}

    def poisoned(logits, y):
        calls["n"] += 1
        loss = real(logits, y)
        return loss * float("nan") if calls["n"] == steps_per_epoch + 3 else loss

    trainer.criterion = poisoned
    with pytest.raises(TrainingError, match="non-finite loss at epoch 2, step 3"):
        trainer.fit()
    state = ckpt.load(run_dir / "last.pt")
    assert state["epoch"] == 2 and state["step"] == 0
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_a_run_that_fails_at_set_up_says_so_once(runs_root, capsys):
    """Offline, pretrained weights cannot be fetched: one message on the terminal; the run's own log says why."""
    code = main(["--headless", "train", "configs/demo.yaml", "--set", "model.name=resnet18", "--set", "model.pretrained=true",
                 *[a for item in tiny_overrides(runs_root) if not item.startswith(("model.name=", "model.pretrained="))
                   for a in ("--set", item)]])
    out, err = capsys.readouterr()
    assert code == 2
    terminal = out + err
    assert terminal.count("could not fetch the weights of resnet18") == 1, terminal
    assert "run failed" not in terminal
    (run,) = [p for p in runs_root.iterdir() if p.is_dir()]
    assert "run failed: " in (run / "train.log").read_text()


def test_the_apps_short_parser_knows_every_command_and_leaves_the_rest_to_the_full_one(capsys):
    """`cifartui` alone parses only the app's options (first frame); a command word takes the full parser."""
    from cifartui import cli

    subparsers = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert set(cli.COMMANDS) == set(subparsers.choices)
    for argv, said in ((["--root", "x", "trian"], "invalid choice: 'trian'"),
                       (["--run"], "argument --run: expected one argument")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and said in err and "{train,runs," in err, err  # the full usage line
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--hel"])  # an abbreviation of --help: the full help, every command in it
    assert exit_info.value.code == 0 and "suspects" in capsys.readouterr().out
