"""`cifartui diff` and `report --against` on two real tiny runs trained here (synthetic data, 2 epochs each, seeds
0 and 1): the same test images (the synthetic test set does not depend on the seed), other validation images (the
validation split is carved from train with the seed)."""

import json
import shutil

import numpy as np
import pytest

from cifartui.cli import main
from cifartui.record.read_model import RunRecord
from cifartui.record.store import load_evaluation
from support import REPO, tiny_overrides

pytestmark = pytest.mark.slow  # trains two runs for real (about 10 s on 2 CPU cores)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("diff") / "runs"
    runs = []
    for seed, name in ((0, "base"), (1, "other")):
        args = ["--headless", "train", str(REPO / "configs" / "demo.yaml")]
        for item in tiny_overrides(root, **{"train.epochs": 2, "data.train_size": 200, "seed": seed, "name": name}):
            args += ["--set", item]
        assert main(args) == 0
        runs.append(next(p for p in root.iterdir() if p.name.endswith(f"-{name}")))
    return runs


def diff_json(capsys, *args) -> dict:
    assert main(["diff", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def npz(run, split):
    ev = RunRecord.read(run).evaluation(split)
    z = load_evaluation(run, ev.file, required=("targets", "preds"), keys=("targets", "preds"))
    return z["targets"].astype(np.int64), z["preds"].astype(np.int64)


def test_diff_json_equals_figures_recomputed_from_the_two_npz_files(two_runs, capsys):
    a, b = two_runs
    out = diff_json(capsys, a, b)
    t, pa = npz(a, "test")
    t_b, pb = npz(b, "test")
    assert np.array_equal(t, t_b)
    names = RunRecord.read(a).class_names
    assert out["top1_a"] == pytest.approx((pa == t).mean()) and out["top1_b"] == pytest.approx((pb == t).mean())
    assert out["right_to_wrong"] == np.flatnonzero((pa == t) & (pb != t)).tolist()
    assert out["wrong_to_right"] == np.flatnonzero((pa != t) & (pb == t)).tolist()
    assert out["right_to_wrong"] or out["wrong_to_right"]  # two seeds: some images flip
    per_class = {c["class"]: c for c in out["per_class"]}
    assert sorted(per_class) == sorted(names)
    for k, name in enumerate(names):
        rows = t == k
        assert per_class[name]["acc_a"] == pytest.approx((pa[rows] == k).mean())
        assert per_class[name]["acc_b"] == pytest.approx((pb[rows] == k).mean())
        assert per_class[name]["delta"] == pytest.approx((pb[rows] == k).mean() - (pa[rows] == k).mean())
    deltas = [c["delta"] for c in out["per_class"]]
    assert deltas == sorted(deltas)  # regressions first
    changed = {(names[i], names[j]): (int(((t == i) & (pa == j)).sum()), int(((t == i) & (pb == j)).sum()))
               for i in range(len(names)) for j in range(len(names)) if i != j}
    changed = {k: v for k, v in changed.items() if v[0] != v[1]}
    assert {(p["true"], p["pred"]): (p["count_a"], p["count_b"]) for p in out["pairs"]} == changed
    moves = [abs(p["count_b"] - p["count_a"]) for p in out["pairs"]]
    assert moves == sorted(moves, reverse=True)
    flipped = out["flipped"]["right_to_wrong"][0]
    i = flipped["index"]
    assert (flipped["true"], flipped["pred_a"], flipped["pred_b"]) == (names[t[i]], names[pa[i]], names[pb[i]])
    # each side's fingerprint was recorded when its test set was scored, and they match
    assert out["a"]["fingerprint"] and out["a"]["fingerprint"] == out["b"]["fingerprint"]
    assert out["check"]["weaker"] is False


def test_flipping_a_and_b_swaps_the_flips_and_negates_the_changes(two_runs, capsys):
    a, b = two_runs
    ab, ba = diff_json(capsys, a, b), diff_json(capsys, b, a)
    assert ab["right_to_wrong"] == ba["wrong_to_right"] and ab["wrong_to_right"] == ba["right_to_wrong"]
    assert (ab["top1_a"], ab["top1_b"]) == (ba["top1_b"], ba["top1_a"])
    delta_ab = {c["class"]: c["delta"] for c in ab["per_class"]}
    assert {c["class"]: -c["delta"] for c in ba["per_class"]} == pytest.approx(delta_ab)
    assert ({(p["true"], p["pred"]): (p["count_b"], p["count_a"]) for p in ba["pairs"]}
            == {(p["true"], p["pred"]): (p["count_a"], p["count_b"]) for p in ab["pairs"]})


def test_evaluations_of_other_images_are_refused(two_runs, capsys):
    a, b = two_runs
    # the validation splits: the same size, the same classes, other images (carved with another seed)
    assert main(["diff", str(a), str(b), "--split", "val"]) == 2
    err = capsys.readouterr().err
    assert a.name in err and b.name in err and "not scored on the same images" in err and "fingerprints" in err
    assert main(["report", str(b), "--against", str(a), "--split", "val", "-o", str(b.parent / "r.md")]) == 2
    assert "not scored on the same images" in capsys.readouterr().err
    assert not (b.parent / "r.md").exists()


def test_an_old_run_without_fingerprint_is_compared_with_a_weaker_check(two_runs, tmp_path, capsys):
    a, b = two_runs
    old = tmp_path / b.name
    shutil.copytree(b, old)
    lines = [json.loads(line) for line in (old / "events.jsonl").read_text().splitlines()]
    for event in lines:  # as written before evaluations recorded a fingerprint
        event.pop("fingerprint", None)
    (old / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    out = diff_json(capsys, a, old)
    assert out["check"]["weaker"] is True and "weaker check" in out["check"]["note"]
    assert out["right_to_wrong"] == diff_json(capsys, a, b)["right_to_wrong"]
    assert main(["diff", str(a), str(old)]) == 0
    assert "weaker check" in capsys.readouterr().out


def test_two_epochs_of_one_run_and_the_epochs_it_keeps(two_runs, tmp_path, capsys):
    a, _ = two_runs
    out = diff_json(capsys, a, "--epochs", 1, 2)
    assert (out["a"]["split"], out["a"]["epoch"], out["b"]["epoch"]) == ("val", 1, 2)
    assert out["check"]["weaker"] is False  # the same validation images at every epoch
    assert main(["diff", str(a), "--epochs", "1", "7"]) == 2
    assert "Epochs with validation predictions kept: 1-2" in capsys.readouterr().err
    trimmed = tmp_path / a.name
    shutil.copytree(a, trimmed)
    (trimmed / "eval" / "val_e001.npz").unlink()
    assert main(["diff", str(trimmed), "--epochs", "1", "2"]) == 2
    err = capsys.readouterr().err
    assert "val_e001.npz is missing" in err and "kept: 2." in err


def test_report_against_adds_what_changed(two_runs, tmp_path, capsys):
    a, b = two_runs
    figures = diff_json(capsys, a, b)
    md_path = tmp_path / "b.md"
    assert main(["report", str(b), "--against", str(a), "-o", str(md_path)]) == 0
    md = md_path.read_text()
    section = md[md.index(f"## What changed against {a.name}"):]
    assert f"top-1 {100 * figures['top1_a']:.2f}% -> {100 * figures['top1_b']:.2f}%" in section.lower()
    assert f"{len(figures['wrong_to_right'])} images wrong -> right, {len(figures['right_to_wrong'])} right -> wrong" in section
    moved = [c for c in figures["per_class"] if c["delta"] != 0]
    assert moved  # 4 classes: every one that changed is in the tables of losses and gains
    for c in moved:
        assert (f"| {c['class']} | {c['images']} | {100 * c['acc_a']:.1f}% | {100 * c['acc_b']:.1f}% | "
                f"{100 * c['delta']:+.1f} |") in section


def test_the_fingerprint_follows_the_images_their_labels_and_their_order():
    import torch

    from cifartui.core.data import split_fingerprint

    x = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    same = split_fingerprint(x.clone(), y.clone())
    assert split_fingerprint(x, y) == same
    swapped = x.clone()
    swapped[[0, 1]] = x[[1, 0]]
    touched = x.clone()
    touched[5, 2, 7, 7] ^= 1  # one bit of one pixel
    others = {split_fingerprint(swapped, y), split_fingerprint(touched, y), split_fingerprint(x, y.flip(0)),
              split_fingerprint(x[:5], y[:5])}
    assert same not in others and len(others) == 4
