"""A tiny real round trip: train -> eval -> predict -> export -> report (synthetic data, one epoch)."""

import csv
import io
import json

import numpy as np
import pytest
import yaml
from PIL import Image

from cifartui.cli import main
from cifartui.record.read_model import RunRecord
from cifartui.record.store import load_evaluation, load_samples, read_events, read_run
from support import tiny_yaml

pytestmark = pytest.mark.slow  # trains for real (about 20 s on 2 CPU cores)

# Ten classes, so top-5 predictions have five distinct classes to rank.
TINY_SETS = {"seed": 0, "data.num_classes": 10, "data.train_size": 300, "data.synthetic_size": 32,
             "model.name": "resnet10t", "train.log_interval": 2}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("rt")
    cfg = base / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_yaml(base / "runs", **TINY_SETS)))
    assert main(["--headless", "train", str(cfg)]) == 0
    (run,) = list((base / "runs").iterdir())
    return run


def _events(run):
    return read_events(run / "events.jsonl")[0]


def test_eval_of_a_run_reproduces_its_test_score_and_is_stored(trained, capsys):
    before = read_run(trained)
    assert main(["eval", str(trained), "--name", "eval-again"]) == 0
    assert "stored as evaluation eval-again" in capsys.readouterr().out
    record = RunRecord.read(trained)
    test, again = record.evaluation("test"), record.evaluation("eval-again")
    # the same weights on the same data through the trainer's own evaluate: the same figures
    assert again.top1 == test.top1 and again.loss == pytest.approx(test.loss, rel=1e-6)
    assert again.epoch == test.epoch == 1 and again.num_samples == 100
    assert again.fingerprint and again.fingerprint == test.fingerprint  # the same images, fingerprinted the same way
    a, b = load_evaluation(trained, test.file), load_evaluation(trained, again.file)
    assert np.array_equal(a["confusion"], b["confusion"]) and np.array_equal(a["preds"], b["preds"])
    assert load_samples(trained, "eval-again").shape == (100, 32, 32, 3)
    assert (trained / "eval" / "eval-again.yaml").exists()
    after = read_run(trained)  # the run's own test score and status stay as they were
    assert (after.test_acc, after.status, after.epochs_done) == (before.test_acc, before.status, before.epochs_done)
    # a name is used once
    assert main(["eval", str(trained), "--name", "eval-again"]) == 2
    assert "already has an evaluation named" in capsys.readouterr().err


def test_eval_on_other_data_and_the_head_mismatch_error(trained, capsys):
    assert main(["eval", str(trained), "--set", "data.test_size=40", "--split", "test", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evaluation"].startswith("eval-synthetic-test-") and out["num_samples"] == 40 and not out["new_run"]
    # 10-class weights on 4-class data: load_exact_weights' message, exit code 2
    assert main(["eval", str(trained), "--set", "data.num_classes=4"]) == 2
    err = capsys.readouterr().err
    assert "has a 10-class head (fc.weight [10, 512])" in err and "built for 4 classes" in err
    assert "num_classes=10" in err
    # the model of a run is fixed by its weights
    assert main(["eval", str(trained), "--set", "model.name=resnet18"]) == 2
    assert "cannot change for a run's best.pt" in capsys.readouterr().err


def test_eval_with_a_test_time_flip_records_it(trained, capsys):
    assert main(["eval", str(trained), "--set", "eval.tta=flip", "--name", "eval-flip"]) == 0
    capsys.readouterr()
    record = RunRecord.read(trained)
    flip, test = record.evaluation("eval-flip"), record.evaluation("test")
    assert (flip.tta, test.tta) == ("flip", "none") and flip.weights == test.weights == "raw"
    a, b = load_evaluation(trained, flip.file), load_evaluation(trained, test.file)
    assert not np.array_equal(a["pred_prob"], b["pred_prob"])  # the mirrored images' logits took part


def test_eval_of_a_checkpoint_file_makes_a_new_run(trained, tmp_path, capsys):
    root = tmp_path / "evals"
    assert main(["eval", str(trained / "best.pt"), "--root", str(root), "--set", "model.name=resnet10t",
                 "--set", "data.test_size=30", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["new_run"] and out["num_samples"] == 30
    (run,) = list(root.iterdir())
    assert run.name.endswith("-eval-tiny") and str(run) == out["run"]
    s = read_run(run)
    assert s.status == "completed" and s.model == "resnet10t"
    (ev,) = RunRecord.read(run).evaluations
    assert ev.split == out["evaluation"] and ev.top1 == pytest.approx(out["top1"])
    # the wrong architecture for a bare file: the architecture message
    assert main(["eval", str(trained / "best.pt"), "--root", str(root), "--set", "model.name=resnet18"]) == 2
    assert "holds weights of resnet10t" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_predict_matches_the_stored_predictions(trained, tmp_path, capsys):
    arrays = load_evaluation(trained, RunRecord.read(trained).test.file)
    images = load_samples(trained, "test")  # 32 px synthetic thumbnails are the images themselves
    paths = []
    for i in range(3):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(images[i]).save(p)
        paths.append(str(p))
    assert main(["predict", str(trained), *paths, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    classes = json.loads((trained / "classes.json").read_text())
    for i, r in enumerate(results):
        top = r["top"]
        assert len(top) == 5 and [t["prob"] for t in top] == sorted((t["prob"] for t in top), reverse=True)
        assert top[0]["class"] == classes[int(arrays["preds"][i])]
        assert top[0]["prob"] == pytest.approx(float(arrays["pred_prob"][i]), abs=2e-3)  # stored as float16
    big = tmp_path / "big.jpg"  # any size: centre-cropped and brought to the data's 32 px first
    Image.fromarray(images[0]).resize((120, 90)).save(big)
    assert main(["predict", str(trained), str(big), "-k", "3"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(str(big)) and text.count("%") == 3
    assert main(["predict", str(trained), str(tmp_path / "missing.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_export_and_report_of_the_real_run(trained, capsys):
    assert main(["export", str(trained), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    epoch = next(e for e in _events(trained) if e["type"] == "epoch")
    assert len(rows) == 1 and rows[0]["epoch"] == "1"
    assert float(rows[0]["eval_top1"]) == pytest.approx(100 * epoch["val_acc"])
    assert float(rows[0]["eval_loss"]) == pytest.approx(epoch["val_loss"])
    assert main(["report", str(trained)]) == 0
    md = (trained / "report.md").read_text()
    assert "## Most confused pairs (test)" in md and (trained / "report_curves.svg").exists()
    assert "## Confused images" in md and (trained / "report_confused.png").exists()  # one epoch leaves errors
