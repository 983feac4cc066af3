"""How every screen looks, on fixed data (fixture runs with fixed ids and times, a fixed config file,
fixed findings), at 160x48 and, for the busiest screens, at 80x24.

Update after an intended change: ``.venv/bin/python -m pytest tests/tui/test_snapshots.py --snapshot-update``
"""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from tui_support import DATA, REPO, make_app, settle
from tui_fixtures import BOY, GIRL

C100 = "20250601-101500-cifar100-resnet34"
C10 = "20250602-093000-cifar10-resnet18"
FINDINGS = [
    {"severity": "warning", "text": "Overfitting: train accuracy 99.0% against validation 84.5% at the last epoch."},
    {"severity": "info", "text": "Validation accuracy was still rising at the last epoch: more epochs would likely help."},
]


@pytest.fixture
def in_fixture(fixture_root, monkeypatch):
    """Run from the folder holding the fixture ``runs/`` (paths on screen stay the same) with fixed findings."""
    import cifartui.tui.screens.dashboard as dash

    monkeypatch.chdir(fixture_root.parent)
    monkeypatch.setattr(dash, "load_findings", lambda run_dir: (FINDINGS, ""))
    return fixture_root


def test_runs_screen(snap_compare, in_fixture):
    assert snap_compare(make_app("runs"), terminal_size=(160, 48), run_before=settle)


def test_dashboard_screen(snap_compare, in_fixture):
    assert snap_compare(make_app("runs", run=C10), terminal_size=(160, 48), run_before=settle)


def test_dashboard_screen_80x24(snap_compare, in_fixture):
    assert snap_compare(make_app("runs", run=C10), terminal_size=(80, 24), run_before=settle)


def test_confusion_screen_cifar100_by_superclass(snap_compare, in_fixture):
    async def before(pilot):
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("o", "o", "plus", "plus")
        await settle(pilot)

    assert snap_compare(make_app("runs", run=C100), terminal_size=(160, 48), run_before=before)


def test_confusion_screen_10_classes_percent(snap_compare, in_fixture):
    async def before(pilot):
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("n", "j", "l")
        await settle(pilot)

    assert snap_compare(make_app("runs", run=C10), terminal_size=(160, 48), run_before=before)


def test_confusion_screen_80x24(snap_compare, in_fixture):
    async def before(pilot):
        await pilot.press("c")
        await settle(pilot)

    assert snap_compare(make_app("runs", run=C100), terminal_size=(80, 24), run_before=before)


def test_drilldown_screen(snap_compare, in_fixture):
    async def before(pilot):
        await pilot.press("c")
        await settle(pilot)
        pilot.app.screen.open_drilldown(BOY, GIRL)
        await settle(pilot)
        await pilot.press("right")
        await settle(pilot)

    assert snap_compare(make_app("runs", run=C100), terminal_size=(160, 48), run_before=before)


def test_config_screen(snap_compare, fixture_root, monkeypatch):
    monkeypatch.chdir(REPO)
    config = DATA.relative_to(REPO) / "snapshot.yaml"

    async def before(pilot):
        await settle(pilot)
        form = pilot.app.screen.query_one("#cfg-form")
        form.query_one("#f-train--lr").value = "0.0005"
        form.query_one("#f-train--epochs").value = "0"  # an inline error
        await settle(pilot)
        pilot.app.set_focus(None)
        await settle(pilot)

    assert snap_compare(make_app("runs", config_path=config), terminal_size=(160, 48), run_before=before)


def test_config_screen_80x24(snap_compare, fixture_root, monkeypatch):
    monkeypatch.chdir(REPO)
    config = DATA.relative_to(REPO) / "snapshot.yaml"

    async def before(pilot):
        await settle(pilot)
        pilot.app.set_focus(None)
        await settle(pilot)

    assert snap_compare(make_app("runs", config_path=config), terminal_size=(80, 24), run_before=before)


def test_config_screen_field_help(snap_compare, fixture_root, monkeypatch):
    """The focused field's help (its schema description, type and range) under the side panel."""
    monkeypatch.chdir(REPO)
    config = DATA.relative_to(REPO) / "snapshot.yaml"

    async def before(pilot):
        await settle(pilot)
        pilot.app.set_focus(pilot.app.screen.query_one("#f-train--ema_decay"))
        await settle(pilot)

    assert snap_compare(make_app("runs", config_path=config), terminal_size=(160, 48), run_before=before)


def test_compare_screen(snap_compare, in_fixture):
    async def before(pilot):
        await settle(pilot)
        screen = pilot.app.screen
        ids = [r.id for r in screen.shown]
        table = screen.query_one(DataTable)
        for run_id in (C10, C100):
            table.move_cursor(row=ids.index(run_id))
            await pilot.press("space")
        await pilot.press("m")
        await settle(pilot)

    assert snap_compare(make_app("runs"), terminal_size=(160, 48), run_before=before)


def test_help_screen(snap_compare, in_fixture):
    async def before(pilot):
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)

    assert snap_compare(make_app("runs"), terminal_size=(160, 48), run_before=before)


def test_queue_dialog(snap_compare, fixture_root, monkeypatch):
    monkeypatch.chdir(REPO)
    config = DATA.relative_to(REPO) / "snapshot.yaml"

    async def before(pilot):
        await settle(pilot)
        await pilot.press("escape", "a")
        await settle(pilot)
        pilot.app.screen.query_one("#queue-sweep").value = "train.lr=1e-3,3e-4 train.batch_size=32,64"
        await settle(pilot)

    assert snap_compare(make_app("runs", config_path=config), terminal_size=(160, 48), run_before=before)


def test_sweep_screen(snap_compare, fixture_root, tmp_path, monkeypatch):
    """Two fixture runs as a finished sweep over train.lr (queue entries written with fixed ids)."""
    import json
    import shutil

    from cifartui.queue import Entry, queue_dir

    root = tmp_path / "runs"
    shutil.copytree(fixture_root, root)
    monkeypatch.chdir(tmp_path)
    queue_dir(root).mkdir()
    for n, (run, lr) in enumerate(((C10, 0.001), (C100, 0.0001)), 1):
        entry = Entry(id=f"20250603-120000-000{n}", sweep="20250603-120000-0001", state="done",
                      overrides={"train.lr": lr}, swept=["train.lr"], config="", source=None, name=run,
                      created=1748944800.0, run=str(root / run))
        (queue_dir(root) / f"{entry.id}.json").write_text(json.dumps(entry.to_dict()))

    async def before(pilot):
        await settle(pilot)
        table = pilot.app.screen.query_one(DataTable)
        table.move_cursor(row=[r.id for r in pilot.app.screen.shown].index(C10))
        await pilot.press("w")
        await settle(pilot)

    assert snap_compare(make_app("runs"), terminal_size=(160, 48), run_before=before)


def test_runs_screen_tags_notes_archived(snap_compare, fixture_root, tmp_path, monkeypatch):
    """Tags in their column, a note in the detail, an archived run hidden (the title says so), a query filter."""
    import shutil

    from cifartui.record.meta import add_tags, set_archived, set_note

    root = tmp_path / "runs"
    shutil.copytree(fixture_root, root)
    monkeypatch.chdir(tmp_path)
    add_tags(root / C10, ["baseline", "lr-sweep"])
    set_note(root / C10, "warmup 2 epochs; try 3e-3 next")
    set_archived(root / "20250603-080000-broken", True)

    async def before(pilot):
        await settle(pilot)
        pilot.app.screen.query_one("#runs-filter").value = "model:resnet*"
        await settle(pilot)
        table = pilot.app.screen.query_one(DataTable)
        table.move_cursor(row=[r.id for r in pilot.app.screen.shown].index(C10))
        await settle(pilot)

    assert snap_compare(make_app("runs"), terminal_size=(160, 48), run_before=before)
