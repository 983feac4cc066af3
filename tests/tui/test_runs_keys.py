"""The Runs screen's keys for tags (t), notes (n), archive (a, A shows archived runs), delete (Del, confirmed,
a live run refused) and its query filter (/): Pilot on a writable copy of the fixture runs (no torch)."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from support import live_pid, pilot_wait_until
from testkit.runs import write_run
from tui_support import make_app, text_of

from cifartui.tui.screens.dialogs import ConfirmScreen, PromptScreen
from cifartui.tui.screens.runs import RunsScreen

C100 = "20250601-101500-cifar100-resnet34"
C10 = "20250602-093000-cifar10-resnet18"
BROKEN = "20250603-080000-broken"


@pytest.fixture
def root(fixture_root, tmp_path) -> Path:
    return Path(shutil.copytree(fixture_root, tmp_path / "runs"))


@contextlib.asynccontextmanager
async def runs_screen(root: Path):
    app = make_app(root)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        yield pilot, app.screen


def meta(run: Path) -> dict:
    return json.loads((run / "meta.json").read_text())


async def _highlight(pilot, screen: RunsScreen, run_id: str) -> None:
    screen.query_one(DataTable).move_cursor(row=[r.id for r in screen.shown].index(run_id))
    await pilot.pause()


async def _type_into_prompt(pilot, text: str) -> None:
    await pilot.pause()
    field = pilot.app.screen.query_one("#prompt-input", Input)
    field.value = ""
    await pilot.press(*text, "enter")
    await pilot.pause()


async def test_t_tags_n_notes_and_the_table_shows_them(root):
    async with runs_screen(root) as (pilot, screen):
        app = pilot.app
        await _highlight(pilot, screen, C10)
        await pilot.press("t")
        assert isinstance(app.screen, PromptScreen)
        await _type_into_prompt(pilot, "bad tag!")  # refused in the dialog, which stays open
        assert isinstance(app.screen, PromptScreen) and "not a valid tag" in text_of(app.screen.query_one("#prompt-error"))
        await _type_into_prompt(pilot, "baseline lr-sweep")
        assert app.screen is screen
        assert meta(root / C10)["tags"] == ["baseline", "lr-sweep"]
        table = screen.query_one(DataTable)
        assert table.get_cell(C10, "tags") == "baseline,lr-sweep"
        await pilot.press("n")
        await _type_into_prompt(pilot, "warmup helped")
        assert meta(root / C10)["note"] == "warmup helped"
        detail = text_of(screen.query_one("#runs-detail"))
        assert "tags baseline, lr-sweep" in detail and "note warmup helped" in detail
        await pilot.press("t", "escape")  # escape changes nothing
        await pilot.pause()
        assert meta(root / C10)["tags"] == ["baseline", "lr-sweep"]


async def test_a_archives_and_capital_a_shows_archived_runs(root):
    async with runs_screen(root) as (pilot, screen):
        await _highlight(pilot, screen, BROKEN)
        await pilot.press("a")
        await pilot.pause()
        assert BROKEN not in [r.id for r in screen.shown] and len(screen.shown) == 3
        assert "1 archived hidden (A shows)" in text_of(screen.query_one("#runs-title"))
        await pilot.press("A")
        assert BROKEN in [r.id for r in screen.shown]
        await _highlight(pilot, screen, BROKEN)
        await pilot.press("a")  # unarchive
        await pilot.press("A")
        await pilot.pause()
        assert BROKEN in [r.id for r in screen.shown] and len(screen.shown) == 4
        assert meta(root / BROKEN)["archived"] is False


async def test_delete_asks_then_moves_to_the_trash_and_refuses_a_live_run(root):
    with live_pid() as pid:
        live = write_run(root, "20250605-120000-live", names=["a", "b"], epochs=4, done=1, status="running", pid=pid,
                         samples=False)
        app = make_app(root)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            await pilot.press("r")  # the one live run opened on its dashboard: to the Runs screen
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, RunsScreen)
            await _highlight(pilot, screen, C100)
            await pilot.press("delete")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("escape")  # cancelled: nothing moves
            await pilot.pause()
            assert (root / C100).is_dir() and app.screen is screen
            await pilot.press("delete")
            await pilot.pause()
            await pilot.press("y")
            await pilot.pause()
            assert (root / ".trash" / C100).is_dir() and not (root / C100).exists()
            assert C100 not in [r.id for r in screen.shown]
            await _highlight(pilot, screen, live.name)
            await pilot.press("delete")
            await pilot.pause()
            assert app.screen is screen and live.is_dir()  # a live run: no dialog, a warning
            assert any("is running: stop it first" in str(n.message) for n in app._notifications)


async def test_slash_takes_the_query_and_names_a_bad_term(root):
    async with runs_screen(root) as (pilot, screen):
        await pilot.press("slash", *"status:completed")
        await pilot.pause()
        assert {r.id for r in screen.shown} == {C10, C100}
        field = screen.query_one("#runs-filter", Input)
        field.value = "status:completed best_val>x"  # a bad term: said under the field, the last good filter stays
        await pilot.pause()
        note = screen.query_one("#runs-filter-note", Static)
        assert note.display and "bad term 'best_val>x'" in text_of(note)
        assert {r.id for r in screen.shown} == {C10, C100}
        field.value = "status:completed best_val>0.9"
        await pilot.pause()
        assert not note.display
        want = {r.id for r in screen.runs if r.status == "completed" and r.best_val_acc > 0.9}
        assert want and want != {C10, C100}, "the fixture runs must split on best_val>0.9 to test anything"
        assert {r.id for r in screen.shown} == want
        await pilot.press("escape")
        assert len(screen.shown) == 4
        await pilot.press("slash")
        field.value = "cfg.train.lr=0.002"  # reads every config: applied on enter, off the UI thread
        await pilot.pause()
        assert len(screen.shown) == 4 and "enter applies" in text_of(note)
        await pilot.press("enter")
        await pilot_wait_until(pilot, lambda: [r.id for r in screen.shown] == [C10], 30,
                               what="the cfg filter to leave the one run with lr 0.002",
                               detail=lambda: [r.id for r in screen.shown])
