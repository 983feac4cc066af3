"""Presets travel with the package: the one resolver (a path that exists wins, else a preset name, else exit 2
listing the presets), `cifartui configs` and --copy, and a built wheel installed elsewhere training a preset."""
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from cifartui import config as config_mod
from cifartui import presets
from cifartui.cli import main
from cifartui.config import ConfigError

from support import PYTHON, REPO, tiny_overrides


def test_configs_folder_and_package_presets_hold_the_same_files():
    repo = {p.name: p.read_bytes() for p in (REPO / "configs").glob("*.yaml")}
    shipped = {p.name: p.read_bytes() for p in presets.PRESET_DIR.glob("*.yaml")}
    assert sorted(repo) == sorted(shipped), "configs/ and cifartui/presets/ list different presets"
    differ = [name for name in repo if repo[name] != shipped[name]]
    assert not differ, f"edit both copies: configs/{differ[0]} differs from cifartui/presets/{differ[0]}"


def test_every_preset_validates_and_says_what_it_is_for():
    for preset in presets.presets():
        assert preset.description, f"{preset.path.name}: start the file with a '# what it is for' comment line"
        cfg = config_mod.load(preset.name)
        assert cfg == config_mod.load(preset.path)


def test_a_path_that_exists_wins_over_the_preset_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("demo").write_text("name: mine\ntrain:\n  epochs: 3\n")
    assert presets.resolve("demo") == Path("demo")
    assert config_mod.load("demo").name == "mine"
    assert config_mod.load("demo.yaml").name == "demo"  # no such file here: the preset, by its file name too
    Path("cifar10_resnet18").mkdir()  # a folder is no config file: the preset of that name still answers
    assert config_mod.load("cifar10_resnet18").name == "cifar10-resnet18"
    assert config_mod.load("cifar100_resnet34", ["train.epochs=2"]).train.epochs == 2


def test_an_unknown_name_exits_2_listing_the_presets(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--headless", "train", "cifar100_resnet43"]) == 2
    err = capsys.readouterr().err
    assert "cifar100_resnet43: no such config file, and no preset of that name" in err
    assert all(name in err for name in presets.names())
    with pytest.raises(ConfigError, match="sub/nope.yaml: config file not found"):
        config_mod.load("sub/nope.yaml")


def test_queue_add_and_the_app_take_a_preset_name(tmp_path, monkeypatch, capsys):
    from cifartui.errors import UserError
    from cifartui.queue import list_entries
    from cifartui.tui.app import run_app

    monkeypatch.chdir(tmp_path)
    assert main(["queue", "add", "demo", "--root", str(tmp_path / "runs"), "--set", "train.epochs=1"]) == 0
    [entry] = list_entries(tmp_path / "runs")
    assert entry.name == "demo" and "name: demo" in entry.config
    with pytest.raises(UserError, match="Presets: .*demo"):
        run_app(config_path="demoo")


def test_configs_lists_each_preset_with_its_description(capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    for preset in presets.presets():
        line = next(line for line in out.splitlines() if line.startswith(preset.name + " "))
        assert line.split(None, 1)[1] == preset.description
    assert main(["configs", "--json"]) == 0
    assert [p["name"] for p in json.loads(capsys.readouterr().out)] == presets.names()


def test_configs_copy_writes_a_preset_out_and_never_overwrites(tmp_path, capsys):
    demo = presets.find("demo").path.read_text()
    assert main(["configs", "--copy", "demo", str(tmp_path)]) == 0
    assert (tmp_path / "demo.yaml").read_text() == demo
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\n")
    assert main(["configs", "--copy", "cifar10_resnet18", str(mine)]) == 2
    assert "exists; nothing was written" in capsys.readouterr().err and mine.read_text() == "name: mine\n"
    assert main(["configs", "--copy", "cifar10_resnet18", str(mine), "--force"]) == 0
    assert config_mod.load(mine).name == "cifar10-resnet18"
    assert main(["configs", "--copy", "nope", str(tmp_path / "x.yaml")]) == 2
    assert "no preset of that name" in capsys.readouterr().err and not (tmp_path / "x.yaml").exists()


@pytest.mark.slow
def test_the_built_wheel_installed_elsewhere_trains_a_preset_by_name(tmp_path):
    """Build the wheel from a copy of the sources (offline, no build isolation), install it with --no-deps into a
    folder of its own (the deps come from this venv), and train the demo preset by name from another folder."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REPO / "pyproject.toml", src)
    shutil.copy(REPO / "README.md", src)
    shutil.copytree(REPO / "cifartui", src / "cifartui", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [PYTHON, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"),
                    str(src)], check=True, capture_output=True, timeout=120, cwd=tmp_path)
    [wheel] = (tmp_path / "dist").glob("cifartui-*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("cifartui/presets/")}
    assert {f"cifartui/presets/{p.path.name}" for p in presets.presets()} <= shipped
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], check=True,
                   capture_output=True, timeout=120)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # no configs/ here, and the repository is not on the path
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(*args):
        return subprocess.run([PYTHON, *args], capture_output=True, text=True, timeout=120, cwd=elsewhere, env=env)

    where = run("-c", "import cifartui.tui.app as a; print(a.__file__); print(a.find_demo_config())")
    module_file, demo = where.stdout.split()
    assert Path(module_file).is_relative_to(site), where.stdout  # the installed copy, not the checkout
    assert Path(demo) == site / "cifartui" / "presets" / "demo.yaml"  # the app opens on the shipped demo
    sets = [a for item in tiny_overrides(elsewhere / "runs") for a in ("--set", item)]
    done = run("-m", "cifartui", "--headless", "train", "demo", *sets)
    assert done.returncode == 0, done.stderr
    listed = run("-m", "cifartui", "runs", "--root", str(elsewhere / "runs"), "--json")
    [summary] = json.loads(listed.stdout)
    assert summary["status"] == "completed" and summary["test_acc"] is not None
    trained = config_mod.load(Path(summary["path"]) / "config.yaml")
    assert trained.train.model_dump() == config_mod.load("demo", sets[1::2]).train.model_dump()  # the demo's recipe
