import pytest
import timm
import torch

from cifartui import config
from cifartui.core import checkpoint as ckpt
from cifartui.core.checkpoint import CheckpointError
from cifartui.core.model import ModelError, build_model, load_exact_weights, load_initial_weights


def model_cfg(**values):
    return config.load(None, [f"model.{k}={v}" for k, v in values.items()]).model


def save_sd(path, model, **meta):
    torch.save({"state_dict": model.state_dict(), **meta}, path)
    return str(path)


def test_head_mismatch_is_one_clear_error_naming_both_counts(tmp_path):
    path = save_sd(tmp_path / "best.pt", timm.create_model("resnet18", num_classes=100))
    default = timm.create_model("resnet18")  # timm's default 1000-class head: the reference author's trap
    with pytest.raises(ModelError) as e:
        load_exact_weights(default, ckpt.state_dict_of(ckpt.load(path)), path, "eval")
    msg = str(e.value)
    assert "100-class head (fc.weight [100, 512])" in msg and "built for 1000 classes" in msg
    assert "num_classes=100" in msg and "size mismatch" not in msg


def test_initial_weights_with_another_head_reinitialise_it_with_a_notice(tmp_path):
    src = timm.create_model("test_resnet", num_classes=1000)
    path = save_sd(tmp_path / "in1k.pt", src)
    notes = []
    dst = timm.create_model("test_resnet", num_classes=10)
    load_initial_weights(dst, path, lambda level, m: notes.append(m))
    assert any("1000 classes" in m and "10" in m and "re-initialised" in m for m in notes)
    body = [k for k in dst.state_dict() if not k.startswith(dst.pretrained_cfg["classifier"] + ".")]
    assert all(torch.equal(dst.state_dict()[k], src.state_dict()[k]) for k in body)


def test_weights_of_another_architecture_are_a_clear_error(tmp_path):
    path = save_sd(tmp_path / "r18.pt", timm.create_model("resnet18", num_classes=10), arch="resnet18")
    with pytest.raises(ModelError, match=r"holds weights of resnet18, which do not fit"):
        load_initial_weights(timm.create_model("test_resnet", num_classes=10), path, lambda *a: None)


def test_best_pt_format_loads_with_the_timm_one_liner(tmp_path):
    m = timm.create_model("test_resnet", num_classes=7)
    path = save_sd(tmp_path / "best.pt", m, arch="test_resnet", num_classes=7, class_names=list("abcdefg"), epoch=3, val_acc=0.5)
    loaded = timm.create_model("test_resnet", num_classes=7, checkpoint_path=path)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), loaded.state_dict().values()))


def test_malicious_pickle_never_runs(tmp_path):
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="not plain weights"):
        ckpt.load(path)
    assert not marker.exists()


def test_missing_corrupt_and_truncated_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        ckpt.load(tmp_path / "nope.pt")
    good = save_sd(tmp_path / "good.pt", timm.create_model("test_resnet", num_classes=3))
    data = open(good, "rb").read()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pt").write_bytes(b"this is not a checkpoint")
    for name in ("trunc.pt", "junk.pt"):
        with pytest.raises(CheckpointError, match="corrupt or truncated"):
            ckpt.load(tmp_path / name)


def test_unknown_model_suggests_close_names():
    with pytest.raises(ModelError, match=r"'resnet35' is not a timm model\. Close names: .*resnet3"):
        build_model(model_cfg(name="resnet35"), 10, lambda *a: None)


def test_pretrained_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as e:
        build_model(model_cfg(name="resnet18", pretrained="resnet18.a1_in1k"), 10, lambda *a: None)
    assert "model.pretrained" in str(e.value) and "Offline?" in str(e.value)


def test_pretrained_tag_of_another_model_is_refused():
    with pytest.raises(ModelError, match="tag of resnet34, not of model.name='resnet18'"):
        build_model(model_cfg(name="resnet18", pretrained="resnet34.a1_in1k"), 10, lambda *a: None)
