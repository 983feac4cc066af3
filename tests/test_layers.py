"""The layers of docs/architecture.md, as import-linter contracts (pyproject.toml): kept by the code, and
broken by a change that crosses them (the contracts are not vacuous)."""

import shutil
import subprocess
import sys
from pathlib import Path

from support import REPO

LINT = Path(sys.executable).parent / "lint-imports"


def lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache", str(REPO / "pyproject.toml")], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(cwd), "PATH": ""})


def test_the_contracts_are_kept():
    done = lint(REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    contracts = (REPO / "pyproject.toml").read_text().count("[[tool.importlinter.contracts]]")
    assert f"{contracts} kept, 0 broken" in done.stdout


def test_each_contract_breaks_when_the_code_crosses_it(tmp_path):
    crossings = {  # a file, a line that crosses a layer, the contract that must say so
        "record/events.py": ("import torch", "record is torch-free"),
        "core/loader.py": ("from cifartui.tui import app", "core (the trainer) never imports the app"),
        "tui/bridge.py": ("from cifartui.core import engine", "the app trains nothing itself"),
        "tui/screens/runs.py": ("from cifartui.tui.screens import compare", "screens never import each other"),
        "diff.py": ("import torch", "the diff of two evaluations is numpy only"),
    }
    for target, (line, contract) in crossings.items():
        copy = tmp_path / target.replace("/", "_")
        shutil.copytree(REPO / "cifartui", copy / "cifartui", ignore=shutil.ignore_patterns("__pycache__"))
        path = copy / "cifartui" / target
        path.write_text(path.read_text() + f"\n{line}\n")
        done = lint(copy)
        report = " ".join(done.stdout.split())  # contract names wrap in the report
        broken = report[report.index(contract):].split(" BROKEN")[0] if contract in report else ""
        assert done.returncode != 0 and broken and " KEPT" not in broken, (target, done.stdout[-2000:])
