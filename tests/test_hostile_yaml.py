"""Hostile YAML: alias bombs, deep nesting and huge values end in a short ConfigError (exit 2), quickly and in
bounded memory, for every YAML the project reads: config files, --set values and a run's config.yaml."""
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from cifartui import config as config_mod
from cifartui.config import ConfigError
from cifartui.record.store import read_config_data, run_problems

BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
name: *i
"""
DEEP_LIST = "name: " + "[" * 10000 + "]" * 10000 + "\n"
DEEP_MAP = "train: " + "{a: " * 10000 + "1" + "}" * 10000 + "\n"


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def cli(*args):
    """The CLI under a 2 GiB memory cap: an expanded bomb fails with MemoryError, or hits the timeout."""
    return subprocess.run([sys.executable, "-m", "cifartui", *args], capture_output=True, text=True,
                          timeout=60, preexec_fn=_limit_memory)


@pytest.mark.parametrize("text, words", [(BOMB, "alias"), (DEEP_LIST, "nested"), (DEEP_MAP, "nested")],
                         ids=["billion-laughs", "deep-list", "deep-map"])
def test_hostile_config_file_via_cli_exits_2_quickly(tmp_path, text, words):
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    assert len(BOMB) < 500
    out = cli("--headless", "train", str(path))
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.startswith("error: ") and words in out.stderr and str(path) in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr) < 600


def test_set_with_a_bomb_is_refused(tmp_path):
    flow = "[&a [x,x,x,x,x,x,x,x,x,x], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], " \
           "&d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]]"
    with pytest.raises(ConfigError, match="alias") as info:
        config_mod.load(None, [f"data.classes={flow}"])
    assert len(str(info.value)) < 300
    with pytest.raises(ConfigError, match="nested"):
        config_mod.load(None, ["data.classes=" + "[" * 5000 + "]" * 5000])
    out = cli("--headless", "train", "configs/demo.yaml", "--set", f"data.classes={flow}")
    assert out.returncode == 2 and "alias" in out.stderr and "Traceback" not in out.stderr


def test_huge_scalar_in_a_wrong_typed_field_keeps_the_message_short():
    huge = "x" * 2_000_000
    with pytest.raises(ConfigError) as info:
        config_mod.load_text(f"train:\n  epochs: {huge}\n")
    msg = str(info.value)
    assert "train.epochs" in msg and len(msg) < 400
    # a long list in a string field, a huge key, a huge --set
    with pytest.raises(ConfigError) as info:
        config_mod.load_text("model:\n  name: [" + ", ".join(["abc"] * 5000) + "]\n")
    assert "model.name" in str(info.value) and len(str(info.value)) < 400
    with pytest.raises(ConfigError) as info:
        config_mod.load_text("train:\n  ? " + "k" * 100_000 + "\n  : 1\n")  # an explicit key: no 1024 limit
    assert "unknown key" in str(info.value) and len(str(info.value)) < 600
    with pytest.raises(ConfigError) as info:
        config_mod.load(None, ["train.epochs=" + "9" * 100_000 + "x"])
    assert len(str(info.value)) < 400
    with pytest.raises(ConfigError) as info:
        config_mod.load(None, ["k" * 100_000])
    assert len(str(info.value)) < 400


def test_many_errors_are_capped():
    text = "train:\n" + "".join(f"  bad{i}: 1\n" for i in range(500))
    with pytest.raises(ConfigError) as info:
        config_mod.load_text(text)
    assert "more problems" in str(info.value) and str(info.value).count("\n") < 30


def test_small_anchors_and_merge_keys_still_work():
    cfg = config_mod.load_text(
        "train: &t {epochs: 3, lr: 0.01}\n"
        "model: {name: resnet18}\n"
        "data: {classes: &c [cat, dog], source: synthetic}\n"
    )
    assert cfg.train.epochs == 3 and cfg.data.classes == ["cat", "dog"]
    cfg = config_mod.load_text("train:\n  <<: {epochs: 4, lr: 0.02}\n  batch_size: 16\n")
    assert (cfg.train.epochs, cfg.train.batch_size) == (4, 16)
    # an anchor reused in a list, below the bound
    data = config_mod.safe_load_yaml("a: &x [1, 2, 3]\nb: [*x, *x, *x]\n")
    assert data["b"] == [[1, 2, 3]] * 3


def test_merge_key_bomb_is_refused():
    lines = ["a0: &a0 {k0: 1, k1: 1, k2: 1, k3: 1, k4: 1, k5: 1, k6: 1, k7: 1, k8: 1, k9: 1}"]
    for i in range(1, 8):
        refs = ", ".join(f"x{j}: *a{i - 1}" for j in range(10))
        lines.append(f"a{i}: &a{i} {{{refs}}}")
    lines.append("train:\n  <<: *a7")
    with pytest.raises(ConfigError, match="alias"):
        config_mod.load_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("text", [BOMB, DEEP_LIST, DEEP_MAP], ids=["bomb", "deep-list", "deep-map"])
def test_run_config_yaml_reads_as_empty_and_named(tmp_path, text):
    run = tmp_path / "20260101-000000-x"
    run.mkdir()
    (run / "config.yaml").write_text(text)
    (run / "events.jsonl").write_text("")
    assert read_config_data(run) == {}  # refused unexpanded (an expanded bomb would take gigabytes)
    problems = run_problems(run)
    assert any(p.startswith("config.yaml: not readable YAML") for p in problems), problems


def test_run_config_yaml_not_utf8(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert read_config_data(run) == {}
    assert "config.yaml: not UTF-8 text" in run_problems(run)


def test_config_file_size_is_bounded(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        config_mod.load(big)
    if Path("/dev/zero").exists():
        with pytest.raises(ConfigError, match="larger than"):
            config_mod.load("/dev/zero")
