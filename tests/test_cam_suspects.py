"""Issue 13 sections 2 and 3 on real runs: class activation maps (`cam`), labels cleanlab doubts (`suspects`),
and `data.exclude` closing the loop (train, suspects, exclude: the next run trains without them).

The data: a tiny image folder of four colour classes in which every tenth training image is filed under the
next class (a deliberately wrong label), trained for real on the CPU (``noisy_run``, tests/conftest.py)."""

import json
import subprocess

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from cifartui.cli import main
from cifartui.config import Config
from cifartui.core.data import DataError, load_data
from cifartui.record.read_model import RunRecord
from cifartui.record.store import load_evaluation
from support import PYTHON, REPO, tiny_yaml  # noisy_run: tests/conftest.py

pytestmark = pytest.mark.slow  # trains for real (a few seconds on 2 CPU cores)

def test_suspects_ranks_most_flipped_labels_first_and_stores_the_train_probabilities(noisy_run, capsys):
    base, run, flipped = noisy_run
    record = RunRecord.read(run)
    train_refs = set(load_data(Config().with_overrides(**{"data.source": "imagefolder", "data.root": str(base / "data")}).data,
                               0).refs["train"].tolist())
    flipped_in_train = [r for r in flipped if r in train_refs]  # the rest were carved into val
    k = len(flipped_in_train)
    assert k >= 10

    assert main(["suspects", str(run), "-n", str(k), "--json"]) == 0
    out = capsys.readouterr()
    assert "evaluating its" in out.err  # the train split needed an evaluation with best.pt, and said so
    listed = json.loads(out.out)
    assert listed and all(set(s) >= {"index", "ref", "label", "pred", "label_prob"} for s in listed)
    assert [s["label_prob"] for s in listed] == sorted(s["label_prob"] for s in listed)  # most suspect first
    share = len({s["ref"] for s in listed} & set(flipped_in_train)) / k
    assert share >= 0.8, f"flipped training labels among the top {k} suspects: {share:.0%}"

    # what cleanlab ranked: the whole probability vector, float16, and each image's reference
    ev = next(e for e in RunRecord.read(run).evaluations if e.split.startswith("train-e"))
    arrays = load_evaluation(run, ev.file)
    assert arrays["probs"].dtype == np.float16 and arrays["probs"].shape == (len(train_refs), 4)
    assert set(arrays["refs"].tolist()) == train_refs
    assert record.test is not None and "probs" in load_evaluation(run, record.test.file)  # the test split: from training

    # stored now: a second call evaluates nothing; --refs prints the same images
    assert main(["suspects", str(run), "-n", str(k), "--refs"]) == 0
    again = capsys.readouterr()
    assert again.err == "" and again.out.split() == [s["ref"] for s in listed]


def test_the_suspects_refs_are_a_data_exclude_file(noisy_run, capsys):
    """The loop's middle step: `suspects --refs > exclude.txt`, then data.exclude leaves exactly those out."""
    base, run, _flipped = noisy_run
    assert main(["suspects", str(run), "-n", "12", "--refs"]) == 0
    refs = capsys.readouterr().out.split()
    exclude = base / "exclude.txt"
    exclude.write_text("# the suspects\n" + "\n".join(refs) + "\n")
    cfg = Config().with_overrides(**{"data.source": "imagefolder", "data.root": str(base / "data")})
    whole = load_data(cfg.data, 0)
    thinned = load_data(cfg.with_overrides(**{"data.exclude": str(exclude)}).data, 0)
    assert len(refs) == 12 and len(thinned.train_y) == len(whole.train_y) - 12
    assert not set(refs) & set(thinned.refs["train"].tolist())


def test_data_exclude_drops_exactly_the_listed_training_images(tmp_path):
    cfg = Config().with_overrides(**{"data.num_classes": 4, "data.train_size": 200, "data.test_size": 40,
                                     "data.synthetic_size": 8})
    whole = load_data(cfg.data, 0)
    train_refs, val_refs = whole.refs["train"].tolist(), whole.refs["val"].tolist()
    listed = train_refs[::7] + [val_refs[0]]  # a validation image: named, but evaluation splits stay whole
    (tmp_path / "ex.txt").write_text("\n".join(listed) + "\n\n# a comment\n")
    notes = []
    thinned = load_data(cfg.with_overrides(**{"data.exclude": str(tmp_path / "ex.txt")}).data, 0,
                        notify=lambda level, message, **_: notes.append(message))
    assert len(thinned.train_y) == len(train_refs) - len(train_refs[::7])
    assert sorted(thinned.refs["train"].tolist()) == sorted(set(train_refs) - set(train_refs[::7]))
    kept = np.isin(whole.refs["train"], thinned.refs["train"])
    assert np.array_equal(thinned.train_x.numpy(), whole.train_x.numpy()[kept])  # images and labels stay paired
    assert np.array_equal(thinned.train_y.numpy(), whole.train_y.numpy()[kept])
    assert thinned.refs["val"].tolist() == val_refs and len(thinned.test_y) == len(whole.test_y)
    assert any(f"left out {len(train_refs[::7])} of {len(train_refs)}" in n and "1 listed image(s) are in the validation"
               in n for n in notes)


def test_cifar_references_name_the_official_index_and_load_the_same_image(tmp_path):
    """CIFAR-10's five train batches in the official format (built here): a reference is the index over all
    of them, whichever split the image was carved into, and loads alone as load_data decodes it."""
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 255, (10, 3072), dtype=np.uint8), "labels": list(range(10))}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"n{i}" for i in range(10)]}, f)
    from cifartui.core.data import load_ref_image

    data = Config().with_overrides(**{"data.source": "cifar10", "data.root": str(tmp_path), "data.download": False,
                                      "data.val_fraction": 0.2}).data
    bundle = load_data(data, 0)
    everything = sorted(bundle.refs["train"].tolist() + bundle.refs["val"].tolist())
    assert everything == sorted(f"cifar10:train:{i}" for i in range(50))
    assert bundle.refs["test"].tolist() == [f"cifar10:test:{i}" for i in range(10)]
    for split, images in (("train", bundle.train_x), ("val", bundle.val_x), ("test", bundle.test_x)):
        for i in (0, len(images) - 1):
            assert torch.equal(load_ref_image(data, str(bundle.refs[split][i])), images[i])
    with pytest.raises(DataError, match="names no image"):
        load_ref_image(data, "cifar10:train:50")


def test_bad_exclude_references_are_named_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("synthetic:train:3\nsynthetic:train:999999\ncifar100:train:5\n")
    cfg = Config().with_overrides(**{"data.num_classes": 4, "data.train_size": 100, "data.test_size": 20,
                                     "data.synthetic_size": 8, "data.exclude": str(bad)})
    with pytest.raises(DataError) as err:
        load_data(cfg.data, 0)
    assert "2 reference(s)" in str(err.value) and "synthetic:train:999999" in str(err.value)
    assert "cifar100:train:5" in str(err.value) and "synthetic:train:3\n" not in str(err.value)

    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(tiny_yaml(tmp_path / "runs", **{"data.exclude": str(bad)})))
    assert main(["--headless", "train", str(tmp_path / "cfg.yaml")]) == 2
    message = capsys.readouterr().err
    assert "data.exclude" in message and "synthetic:train:999999" in message
    assert main(["--headless", "train", str(tmp_path / "cfg.yaml"), "--set", f"data.exclude={tmp_path / 'none.txt'}"]) == 2
    assert "none.txt does not exist" in capsys.readouterr().err


def test_cam_writes_a_map_that_depends_on_the_class_it_explains(noisy_run, tmp_path, capsys):
    _base, run, _flipped = noisy_run
    pictures = {}
    for target in ("c0", "c2"):
        png = tmp_path / f"{target}.png"
        assert main(["cam", str(run), "3", "--target", target, "-o", str(png), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["png"] == str(png) and out["index"] == 3 and out["target"] == target
        assert out["true"] in ("c0", "c1", "c2", "c3") and out["pred"] in ("c0", "c1", "c2", "c3")
        pictures[target] = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    a, b = pictures["c0"], pictures["c2"]
    side = a.shape[1] // 2
    assert np.array_equal(a[:side, :side], b[:side, :side])  # the same image on the left
    assert np.abs(a[:side, side:] - b[:side, side:]).mean() > 2  # another map on the right

    assert main(["cam", str(run), "0"]) == 0  # default: the predicted class, into the run folder
    assert "map of" in capsys.readouterr().out and list((run / "cam").glob("test-0-*.png"))


def test_cam_bad_input_exit_2(noisy_run, capsys):
    _base, run, _flipped = noisy_run
    assert main(["cam", str(run), "4000"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["cam", str(run), "1", "--target", "c9"]) == 2
    assert "--target: 'c9'" in capsys.readouterr().err
    assert main(["cam", str(run), "1", "--split", "nope"]) == 2
    assert "no 'nope' evaluation" in capsys.readouterr().err


def test_without_the_analysis_extra_the_commands_say_what_to_install(noisy_run):
    """The missing packages are simulated (an installed one cannot be removed here): ``sys.modules[name] =
    None`` makes ``import name`` raise ImportError. The same process first checks that neither the CLI nor
    the app imports the analysis libraries at start-up."""
    _base, run, _flipped = noisy_run
    script = f"""
import sys
import cifartui.cli, cifartui.tui.app
heavy = [m for m in ("cleanlab", "pytorch_grad_cam", "sklearn", "cv2", "torch") if m in sys.modules]
print("loaded at start-up:", heavy)
sys.modules["cleanlab"] = sys.modules["pytorch_grad_cam"] = None
from cifartui.cli import main
print("rc", main(["suspects", {str(run)!r}]), main(["cam", {str(run)!r}, "0"]))
print("torch loaded:", "torch" in sys.modules)
"""
    proc = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "loaded at start-up: []" in proc.stdout, proc.stdout + proc.stderr
    assert "rc 2 2" in proc.stdout and "torch loaded: False" in proc.stdout
    assert proc.stderr.count("pip install 'cifartui[analysis]'") == 2
    assert "suspects needs cleanlab" in proc.stderr and "cam needs grad-cam" in proc.stderr


def test_the_mapped_layer_is_the_deepest_stage_with_a_grid_for_cnns_and_vits():
    """Random-weight timm models: a ResNet's layer4 is 1x1 at 32 px, so an earlier stage is mapped, and at
    224 px layer4 itself; a ViT's last block (its norm1, tokens folded into their grid) gives a map too."""
    import timm

    from cifartui.core.gradcam import Explainer, cam_layer

    resnet = timm.create_model("test_resnet", num_classes=4)
    assert cam_layer(resnet, "test_resnet", 32)[1] == "layer2 (4x4)"
    assert cam_layer(resnet, "test_resnet", 224)[1] == "layer4 (7x7)"
    vit = timm.create_model("test_vit", num_classes=4, img_size=64)
    explainer = Explainer(vit, "test_vit", (0.5,) * 3, (0.25,) * 3, 64)
    assert explainer.layer_name == f"blocks.{len(vit.blocks) - 1}.norm1 (4x4)"
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8))
    a, b = explainer(image, 0), explainer(image, 1)
    assert a.heat.shape == (64, 64) and np.abs(a.heat - b.heat).mean() > 0.01
    explainer.close()
