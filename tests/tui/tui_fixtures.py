"""The named fixture root of the Pilot tests and the snapshots: four runs written with testkit.runs (fixed ids,
fixed times, a known boy/girl confusion, thumbnails, no torch). Also for looking at the app by hand:

    .venv/bin/python tests/tui/tui_fixtures.py /tmp/tuiruns-fixture
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: the repo root (testkit) is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cifartui.classes import CIFAR100_SUPERCLASSES
from testkit.runs import write_run

CIFAR100_NAMES = sorted(n for group in CIFAR100_SUPERCLASSES.values() for n in group)  # official order = alphabetical
BOY, GIRL = CIFAR100_NAMES.index("boy"), CIFAR100_NAMES.index("girl")
BOY_AS_GIRL, GIRL_AS_BOY = 7, 4


def build_fixture_root(root: Path) -> dict[str, Path]:
    """Four runs: a CIFAR-100 one with a known boy/girl confusion, a 10-class one, a failed one and a stopped one."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    forced = {(BOY, GIRL): BOY_AS_GIRL, (GIRL, BOY): GIRL_AS_BOY}
    runs = {
        "c100": write_run(root, "20250601-101500-cifar100-resnet34", names=CIFAR100_NAMES, epochs=5, seed=1,
                          model="resnet34", dataset="cifar100", per_class_val=4, per_class_test=12, forced=forced, lr=1e-4),
        "c10": write_run(root, "20250602-093000-cifar10-resnet18", names=[f"class_{i}" for i in range(10)], epochs=6, seed=2,
                         model="resnet18", dataset="synthetic", per_class_val=20, per_class_test=40, lr=2e-3),
        "failed": write_run(root, "20250603-080000-broken", names=[f"class_{i}" for i in range(10)], epochs=6, done=1,
                            status="failed", seed=3, model="resnet50", dataset="synthetic", samples=False),
        "stopped": write_run(root, "20250604-170000-halfway", names=[f"class_{i}" for i in range(10)], epochs=8, done=3,
                             status="stopped", seed=4, model="resnet10t", dataset="synthetic", per_class_val=10),
    }
    return runs


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tuiruns-fixture")
    for key, path in build_fixture_root(out).items():
        print(key, path)
