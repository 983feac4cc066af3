"""The core never imports UI libraries; readers never import torch (so the app and `runs` start fast)."""
import json
import subprocess
import sys


def modules_after(code):
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_core_imports_no_ui():
    mods = modules_after("import cifartui.core.engine, cifartui.core.data, cifartui.core.loader, cifartui.core.model, "
                         "cifartui.record.metrics, cifartui.core.checkpoint, cifartui.record.events, cifartui.session")
    assert "torch" in mods
    assert not {m for m in mods if m.split(".")[0] in ("textual", "rich", "plotext", "textual_plotext")}


def test_listing_runs_imports_no_torch():
    mods = modules_after("import cifartui.record.store, cifartui.config, cifartui.record.events, cifartui.record.metrics, cifartui.cli")
    assert not {m for m in mods if m.split(".")[0] in ("torch", "timm", "torchvision")}


def test_the_record_package_loads_no_numpy_torch_or_ui():
    mods = modules_after("import cifartui.record.store, cifartui.record.read_model, cifartui.record.control")
    assert not {m for m in mods if m.split(".")[0] in ("torch", "timm", "numpy", "textual", "rich", "pydantic")}
