"""The Open dialog takes a preset name typed in its path field, and lists what it could not find."""
from __future__ import annotations

from textual.widgets import Input, Static

from tui_support import DATA, make_app

from cifartui import presets
from cifartui.tui.screens.config import ConfigScreen
from cifartui.tui.screens.dialogs import OpenConfigScreen
from cifartui.tui.widgets.config_form import ConfigForm


async def test_typing_a_preset_name_in_the_open_dialog_loads_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no file of that name here: the name means the preset
    app = make_app(tmp_path / "runs", config_path=DATA / "snapshot.yaml")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("escape", "o")
        assert isinstance(app.screen, OpenConfigScreen)
        field = app.screen.query_one("#open-path", Input)
        field.focus()
        field.value = "cifar10_resnet81"
        await pilot.press("enter")
        await pilot.pause()
        error = str(app.screen.query_one("#open-error", Static).render())
        assert "no preset of that name" in error and all(name in error for name in presets.names())
        field.value = "cifar10_resnet18"
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ConfigScreen) and screen.source_label == "preset cifar10_resnet18"
        assert screen.query_one(ConfigForm).config.train.optimizer == "sgd"
