"""The Diff screen on fixture runs (no torch): opened from the Runs screen with two marked runs or one run's
epochs, its figures against the evaluation arrays read directly, Enter on a class or a cell opening the flipped
images, a refusal for other images; and how it looks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from textual.widgets import DataTable, OptionList

from cifartui.record.read_model import RunRecord
from cifartui.record.store import load_evaluation
from testkit.runs import write_run
from tui_support import make_app, settle

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
A_ID, B_ID, OTHER_ID = "20250610-090000-base", "20250611-090000-stronger-aug", "20250612-090000-smaller-test"


@pytest.fixture(scope="module")
def diff_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("diff") / "runs"
    write_run(root, A_ID, names=NAMES, epochs=4, seed=5, per_class_val=10, per_class_test=30, dataset="cifar10",
              fingerprints=True)
    write_run(root, B_ID, names=NAMES, epochs=4, seed=6, per_class_val=10, per_class_test=30, dataset="cifar10",
              fingerprints=True)
    write_run(root, OTHER_ID, names=NAMES, epochs=2, seed=7, per_class_val=10, per_class_test=20, dataset="cifar10",
              fingerprints=True)
    return root


def arrays(run: Path, split: str = "test", epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    record = RunRecord.read(run)
    ev = record.evaluation(split) if epoch is None else next(e for e in record.evaluations if e.split == split and e.epoch == epoch)
    z = load_evaluation(run, ev.file, required=("targets", "preds"), keys=("targets", "preds"))
    return z["targets"].astype(np.int64), z["preds"].astype(np.int64)


async def mark_and_diff(pilot, *run_ids: str) -> None:
    screen = pilot.app.screen
    ids = [r.id for r in screen.shown]
    table = screen.query_one(DataTable)
    for run_id in run_ids:
        table.move_cursor(row=ids.index(run_id))
        await pilot.press("space")
    await pilot.press("D")
    await settle(pilot)


async def test_diff_of_two_marked_runs_and_their_flipped_images(diff_root):
    t, pa = arrays(diff_root / A_ID)
    _, pb = arrays(diff_root / B_ID)
    app = make_app(diff_root)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await mark_and_diff(pilot, A_ID, B_ID)
        screen = app.screen
        assert type(screen).__name__ == "DiffScreen" and screen.error is None
        d = screen.diff
        assert (d.a.run.name, d.b.run.name) == (A_ID, B_ID)  # the first marked is A
        n = len(NAMES)
        change = (np.bincount(t * n + pb, minlength=n * n) - np.bincount(t * n + pa, minlength=n * n)).reshape(n, n)
        matrix = screen.query_one("#diff-matrix")
        assert np.array_equal(matrix.confusion, change) and matrix.diverging
        # the bar list: every class, the largest loss first, and the matrix cursor on its diagonal
        acc = lambda p, k: (p[t == k] == k).mean()  # noqa: E731
        deltas = [acc(pb, k) - acc(pa, k) for k in range(n)]
        worst = int(np.argmin(deltas))
        classes = screen.query_one("#diff-classes", OptionList)
        assert classes.option_count == n and NAMES[worst] in str(classes.get_option_at_index(0).prompt)
        assert matrix.cursor_classes() == (worst, worst)

        await pilot.press("enter")  # the class's images, right in A and wrong in B first
        await settle(pilot)
        grid = app.screen
        assert type(grid).__name__ == "DrilldownScreen"
        right_to_wrong = set(np.flatnonzero((t == worst) & (pa == worst) & (pb != worst)).tolist())
        wrong_to_right = set(np.flatnonzero((t == worst) & (pa != worst) & (pb == worst)).tolist())
        assert right_to_wrong and set(grid.indices.tolist()) == right_to_wrong
        await pilot.press("s")
        assert set(grid.indices.tolist()) == wrong_to_right
        await pilot.press("escape")
        await settle(pilot)

        # a cell off the diagonal: the images B newly predicts there
        true, pred = next((i, j) for i, j in zip(*np.nonzero(change > 0)) if i != j)
        await pilot.press("tab")
        matrix.move_to_classes(int(true), int(pred))
        await pilot.press("enter")
        await settle(pilot)
        entered = set(np.flatnonzero((t == true) & (pb == pred) & (pa != pred)).tolist())
        assert entered and set(app.screen.indices.tolist()) == entered


async def test_diff_of_one_runs_epochs_and_a_refusal(diff_root):
    app = make_app(diff_root)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        screen = app.screen
        table = screen.query_one(DataTable)
        table.move_cursor(row=[r.id for r in screen.shown].index(A_ID))
        await pilot.press("D")  # nothing marked: the highlighted run's epochs, best against last (or the last two)
        await settle(pilot)
        diff = app.screen
        best = RunRecord.read(diff_root / A_ID).best.epoch
        before = (best, 4) if best != 4 else (3, 4)
        assert diff.epochs == before
        await pilot.press("left_square_bracket")  # A one epoch earlier
        assert diff.epochs == (before[0] - 1, 4) and diff.diff.a.evaluation.epoch == before[0] - 1
        t, p1 = arrays(diff_root / A_ID, "val", diff.epochs[0])
        _, p4 = arrays(diff_root / A_ID, "val", 4)
        assert diff.diff.right_to_wrong.tolist() == np.flatnonzero((p1 == t) & (p4 != t)).tolist()
        await pilot.press("escape")
        await settle(pilot)

        await mark_and_diff(pilot, A_ID, OTHER_ID)  # 300 against 200 test images
        refused = app.screen
        assert refused.diff is None and "300 vs 200 images" in refused.error
        assert "not scored on the same images" in str(refused.query_one("#diff-empty").render())


def test_diff_screen_snapshot(snap_compare, diff_root, monkeypatch):
    monkeypatch.chdir(diff_root.parent)

    async def before(pilot):
        await settle(pilot)
        await mark_and_diff(pilot, A_ID, B_ID)

    assert snap_compare(make_app("runs"), terminal_size=(160, 48), run_before=before)


def test_diff_flips_snapshot(snap_compare, diff_root, monkeypatch):
    monkeypatch.chdir(diff_root.parent)

    async def before(pilot):
        await settle(pilot)
        await mark_and_diff(pilot, A_ID, B_ID)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("right")
        await settle(pilot)

    assert snap_compare(make_app("runs"), terminal_size=(160, 48), run_before=before)
