import pytest

from cifartui import config
from cifartui.config import ConfigError


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_reference_recipe_loads_with_the_public_names():
    cfg = config.load("configs/cifar100_resnet34.yaml")
    assert (cfg.model.name, cfg.model.pretrained) == ("resnet34", "resnet34.a1_in1k")
    assert (cfg.data.source, cfg.train.optimizer, cfg.train.scheduler) == ("cifar100", "adam", "cosine")
    assert (cfg.train.batch_size, cfg.train.lr, cfg.train.weight_decay, cfg.train.epochs) == (32, 1e-4, 1e-4, 20)


@pytest.mark.parametrize("path", ["configs/demo.yaml", "configs/cifar10_resnet18.yaml"])
def test_shipped_configs_validate(path):
    config.load(path)


def test_overrides_are_typed_and_nested():
    cfg = config.load("configs/demo.yaml", ["train.lr=3e-4", "data.source=synthetic", "data.image_size=null", "train.amp=bf16"])
    assert cfg.train.lr == pytest.approx(3e-4) and cfg.data.image_size is None and cfg.train.amp == "bf16"


def test_unknown_key_suggests_the_close_name(tmp_path):
    with pytest.raises(ConfigError) as e:
        config.load(write(tmp_path, "train:\n  learning_rate: 0.1\n  bach_size: 4\n"))
    msg = str(e.value)
    assert "train.bach_size: unknown key. Did you mean 'batch_size'?" in msg
    assert "train.learning_rate" in msg


def test_unknown_override_key_is_caught():
    with pytest.raises(ConfigError, match=r"train\.lrr: unknown key\. Did you mean 'lr'"):
        config.load(None, ["train.lrr=0.1"])


@pytest.mark.parametrize("item, field", [
    ("train.lr=-1", "train.lr"), ("train.batch_size=0", "train.batch_size"),
    ("data.val_fraction=1.5", "data.val_fraction"), ("train.epochs=0", "train.epochs"),
    ("data.source=imagenet", "data.source"), ("train.optimizer=lion", "train.optimizer"),
    ("device=gpu", "device"), ("name=../escape", "name"), ("name=a/b", "name"),
    ("train.batch_size=many", "train.batch_size"),
])
def test_bad_values_name_field_value_and_allowed(item, field):
    with pytest.raises(ConfigError) as e:
        config.load(None, [item])
    value = item.split("=", 1)[1]
    assert field in str(e.value) and value in str(e.value)


def test_choices_are_listed():
    with pytest.raises(ConfigError, match="'cifar10', 'cifar100', 'imagefolder' or 'synthetic'"):
        config.load(None, ["data.source=imagenet"])


def test_malformed_yaml_gives_line_and_column(tmp_path):
    with pytest.raises(ConfigError, match=r"malformed YAML at line 3, column 8: mapping values are not allowed"):
        config.load(write(tmp_path, "name: x\ntrain:\n  lr: 1: 2\n"))


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        config.load(write(tmp_path, "- a\n- b\n"))


def test_round_trip_and_diff():
    cfg = config.load("configs/demo.yaml")
    again = config.load_text(cfg.to_yaml())
    assert again == cfg
    changed = cfg.with_overrides(**{"train.lr": 1e-5, "name": "other"})
    assert {k for k, _a, _b in config.diff(cfg, changed)} == {"train.lr", "name"}


def test_pretrained_accepts_bool_or_tag():
    assert config.load(None, ["model.pretrained=true"]).model.pretrained is True
    assert config.load(None, ["model.pretrained=resnet34.a1_in1k"]).model.pretrained == "resnet34.a1_in1k"
