"""Pilot tests of each screen's behaviour on fixture runs (no torch)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from textual.widgets import DataTable, Input, OptionList, Select

from support import pilot_wait_until
from tui_support import DATA, TINY, make_app, text_of
from tui_fixtures import BOY, BOY_AS_GIRL, CIFAR100_NAMES, GIRL, GIRL_AS_BOY

from cifartui import config as config_mod
from cifartui.tui.screens.compare import CompareScreen
from cifartui.tui.screens.config import ConfigScreen
from cifartui.tui.screens.confusion import ConfusionScreen
from cifartui.tui.screens.dashboard import DashboardScreen
from cifartui.tui.screens.dialogs import ConfirmScreen, HelpScreen
from cifartui.tui.screens.drilldown import DrilldownScreen
from cifartui.tui.screens.runs import RunsScreen
from cifartui.tui.widgets.config_form import ConfigForm
from cifartui.tui.widgets.confusion_matrix import ConfusionMatrix
from cifartui.tui.rundata import RunData
from cifartui.tui.widgets.curves import CHART_BUDGET, Chart, Curves
from cifartui.tui.widgets.run_panels import FindingsPanel, MetricsTable
from cifartui.tui.widgets.thumbnails import ThumbGrid

C100 = "20250601-101500-cifar100-resnet34"
C10 = "20250602-093000-cifar10-resnet18"


# -- start-up ----------------------------------------------------------------------------------------
async def test_fresh_root_opens_config_with_demo(tmp_path):
    app = make_app(tmp_path / "empty")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ConfigScreen)
        screen = app.screen
        assert screen.source_path is not None and screen.source_path.name == "demo.yaml"
        form = screen.query_one(ConfigForm)
        assert form.config is not None and form.config.name == "demo"
        # --root wins over the config's default ./runs
        assert form.config.output.root == str(tmp_path / "empty")


async def test_config_screen_paints_before_its_form_then_fills_it(tmp_path, monkeypatch):
    """progressive (the real app): the screen shows at once, the form (pydantic, schema) follows."""
    import threading

    from cifartui.tui.screens import config as config_screen

    release, real = threading.Event(), config_screen._form_class

    def slow_import():  # the worker's import takes as long as the test wants
        if threading.current_thread() is not threading.main_thread():
            release.wait(30)
        return real()

    monkeypatch.setattr(config_screen, "_form_class", slow_import)
    tiny = [f"{k}={v}" for k, v in TINY.items() if k != "name"]
    app = make_app(tmp_path / "empty", progressive=True, overrides=tiny)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ConfigScreen) and not screen.ready
        assert "loading the form" in str(screen.query_one("#cfg-source").content)
        await pilot.press("s")  # before the form exists: not lost, it starts the run once the form is there
        assert app.live is None and any("as soon as the form has loaded" in n.message for n in app._notifications)
        release.set()
        await pilot_wait_until(pilot, lambda: screen.ready, 30, what="the config form to load")
        await pilot_wait_until(pilot, lambda: app.live is not None, 10,
                               what="the run the early s asked for to start (the key was lost)")
        assert app.live.cfg.name == "demo" and "demo.yaml" in str(screen.query_one("#cfg-source").content)
        await pilot_wait_until(pilot, lambda: app.live.finished, 120, what="the run to finish",
                               detail=lambda: app.live.data.logs[-5:])
        assert app.live.data.status == "completed"


async def test_config_form_that_cannot_load_says_why(tmp_path, monkeypatch):
    from cifartui.tui.screens import config as config_screen

    def broken():
        raise ImportError("No module named 'pydantic_core'")

    monkeypatch.setattr(config_screen, "_form_class", broken)
    app = make_app(tmp_path / "empty", progressive=True)
    async with app.run_test(size=(160, 48)) as pilot:
        title = app.screen.query_one("#cfg-source")
        await pilot_wait_until(pilot, lambda: "could not load" in str(title.content), 10,
                               what="the title to say the form could not load", detail=lambda: title.content)
        assert "pydantic_core" in str(title.content) and not app.screen.ready


async def test_root_with_runs_opens_runs_screen(fixture_root):
    app = make_app(fixture_root)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        assert app.screen.query_one(DataTable).row_count == 4


async def test_run_option_opens_dashboard(fixture_root):
    app = make_app(fixture_root, run=C10)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        assert app.current.id == C10 and app.current.status == "completed"


# -- config ------------------------------------------------------------------------------------------
async def test_config_form_validates_inline_and_refuses_to_start(tmp_path):
    app = make_app(tmp_path / "runs", config_path=DATA / "snapshot.yaml")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = app.screen
        form = screen.query_one(ConfigForm)
        lr = form.query_one("#f-train--lr", Input)
        lr.value = "-1"
        await pilot.pause()
        assert "train.lr" in form.errors and form.config is None
        err = form.query_one("#err-f-train--lr")
        assert err.display and "greater than 0" in text_of(err)
        await pilot.press("escape", "s")
        await pilot.pause()
        assert isinstance(app.screen, ConfigScreen) and app.live is None
        assert app.focused is lr  # start refused, focus on the bad field
        lr.value = "abc"
        await pilot.pause()
        assert "not a number" in form.errors["train.lr"]
        lr.value = "0.0005"
        await pilot.pause()
        assert form.config is not None and form.config.train.lr == 0.0005
        # Literal fields are selects with the schema's choices
        opt = form.query_one("#f-train--optimizer", Select)
        assert {v for _, v in opt._options} >= {"adam", "adamw", "sgd"}
        opt.value = "sgd"
        await pilot.pause()
        diff = {k: (a, b) for k, a, b in config_mod.diff(screen.base, form.config)}
        assert diff["train.lr"] == (0.002, 0.0005) and diff["train.optimizer"] == ("adamw", "sgd")
        text = text_of(screen.query_one("#cfg-diff"))
        assert "train.lr" in text and "train.optimizer" in text


async def test_config_save_as_writes_a_new_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "configs" / "base.yaml"
    src.parent.mkdir()
    shutil.copy(DATA / "snapshot.yaml", src)
    app = make_app(tmp_path / "runs", config_path=src)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        form = app.screen.query_one(ConfigForm)
        form.query_one("#f-train--epochs", Input).value = "7"
        await pilot.pause()
        await pilot.press("escape", "w")
        await pilot.pause()
        field = app.screen.query_one("#save-path", Input)
        assert field.value == str(Path("configs") / "snapshot.yaml")
        field.value = str(src)  # exists: refused, nothing overwritten
        await pilot.press("enter")
        await pilot.pause()
        assert "exists" in text_of(app.screen.query_one("#save-error"))
        field.value = "configs/longer.yaml"
        await pilot.press("enter")
        await pilot.pause()
        saved = config_mod.load(tmp_path / "configs" / "longer.yaml")
        assert saved.train.epochs == 7
        assert config_mod.load(src).train.epochs == 4
        assert isinstance(app.screen, ConfigScreen) and app.screen.source_label.endswith("longer.yaml")


async def test_config_open_dialog_lists_configs_and_run_configs(fixture_root):
    from cifartui.tui.screens.dialogs import OpenConfigScreen

    app = make_app(fixture_root, config_path=DATA / "snapshot.yaml")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("escape", "o")
        dialog = app.screen
        assert isinstance(dialog, OpenConfigScreen)
        names = [str(p) for p in dialog.paths]
        from cifartui import presets

        assert [str(p.path) for p in presets.presets()] == names[: len(presets.names())]  # the shipped presets first
        assert not any(n.endswith("configs/demo.yaml") for n in names)  # the repository's copy of a preset: once
        run_cfg = fixture_root / C10 / "config.yaml"
        assert str(run_cfg) in names
        dialog.query_one(OptionList).highlighted = names.index(str(run_cfg))
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ConfigScreen) and screen.source_label == f"run {C10}"
        assert screen.query_one(ConfigForm).config.model.name == "resnet18"
        await pilot.press("v")
        assert screen.has_class("-hide-side")


async def test_fine_tune_lr_warning_before_start(tmp_path, monkeypatch):
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"x")
    app = make_app(tmp_path / "runs", config_path=DATA / "snapshot.yaml")
    started = []
    monkeypatch.setattr(app, "start_training", lambda cfg, resume_dir=None: started.append(cfg) or True)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        form = app.screen.query_one(ConfigForm)
        form.query_one("#f-model--checkpoint", Input).value = str(ckpt)
        warning = app.screen.query_one("#cfg-warning")
        await pilot_wait_until(pilot, lambda: "10-100x" in text_of(warning), 10,
                               what="the fine-tune warning under the form", detail=lambda: text_of(warning))
        await pilot.press("escape", "s")
        await pilot_wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, what="the lr question")
        assert not started
        await pilot.click("#lower")
        await pilot_wait_until(pilot, lambda: started, 10, what="the run to start with the lower lr")
        assert len(started) == 1 and started[0].train.lr == 1e-5


# -- dashboard ---------------------------------------------------------------------------------------
async def test_dashboard_shows_a_finished_run(fixture_root, monkeypatch):
    import cifartui.tui.screens.dashboard as dash

    monkeypatch.setattr(dash, "load_findings", lambda run_dir: (["Overfitting: train 99% vs val 84%"], ""))
    app = make_app(fixture_root, run=C100)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = app.screen
        table_text = text_of(screen.query_one(MetricsTable))
        assert "★5" in table_text and "test (best weights, epoch 5)" in table_text
        charts = list(screen.query(Chart))
        assert [c.title for c in charts] == ["loss", "accuracy", "learning rate"]
        assert any(label == "val" and len(xs) == 5 for label, xs, _, _ in charts[0].series)
        assert "100.0%" in text_of(screen.query_one("#progress"))
        await pilot_wait_until(pilot, lambda: "Overfitting" in text_of(screen.query_one(FindingsPanel)), 10,
                               what="the findings panel to show the finding")
        await pilot.press("x")  # nothing trains here
        await pilot.pause()
        assert any("nothing is training" in n.message for n in app._notifications)


async def test_dashboard_at_80x24_shows_one_chart_at_a_time(fixture_root):
    app = make_app(fixture_root, run=C10)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        shown = [c.id for c in app.screen.query(Chart) if c.display]
        assert shown == ["chart-loss"]
        await pilot.press("p")
        assert [c.id for c in app.screen.query(Chart) if c.display] == ["chart-accuracy"]
        assert app.screen.query_one("#metrics-box").display and not app.screen.query_one("#log-box").display
        await pilot.press("t")
        assert app.screen.query_one("#log-box").display and not app.screen.query_one("#metrics-box").display


async def test_dashboard_redraws_are_throttled(fixture_root):
    app = make_app(fixture_root, run=C10, redraw_interval=10.0)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        chart = app.screen.query_one("#chart-loss", Chart)
        ticks = _count_ticks(app.screen.query_one(Curves))
        data, before = app.current, chart.draws

        def new_step() -> None:  # new data before every tick: each tick could redraw, were it not throttled
            data.apply({"type": "step", "epoch": 6, "step": len(ticks) + 1, "steps": 100, "loss": 0.5, "acc": 0.9,
                        "lr": 1e-4, "images_per_second": 400.0})
            for _ in range(50):  # a burst of updates within a fraction of a second
                app.screen.run_updated(data)

        ticks.before = new_step
        await pilot_wait_until(pilot, lambda: len(ticks) >= 6, 10, what="six heartbeat ticks, new data before each")
        assert chart.draws - before <= 1  # at most one drawing per 10 s


class _Ticks(list):
    before = None  # called before each tick when set


def _count_ticks(curves: Curves) -> _Ticks:
    """The heartbeat's ticks of ``curves`` from now on (each a chance to redraw), one item a tick."""
    ticks = _Ticks()
    tick = curves.tick

    def counted() -> None:
        if ticks.before is not None:
            ticks.before()
        ticks.append(1)
        tick()

    curves.tick = counted  # looked up on the instance by the dashboard's heartbeat
    return ticks


async def test_live_charts_redraw_on_a_time_budget_and_at_once_for_an_epoch(fixture_root):
    app = make_app(fixture_root, run=C10, redraw_interval=0.0)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        curves = app.screen.query_one(Curves)
        chart = app.screen.query_one("#chart-loss", Chart)
        data = RunData()
        data.apply({"type": "run_started", "run_id": "live", "name": "live", "device": "cpu", "num_classes": 2,
                    "class_names": ["a", "b"], "epochs": 3, "steps_per_epoch": 10, "train_size": 1, "val_size": 1,
                    "test_size": 1})
        data.apply({"type": "step", "epoch": 1, "step": 1, "steps": 10, "loss": 2.0, "acc": 0.1, "lr": 0.01,
                    "images_per_second": 100.0})
        curves.show(data, now=True)
        await pilot.pause()
        for c in app.screen.query(Chart):
            c.render_seconds = 0.05  # as if plotext took 50 ms a chart
        assert curves.interval() == pytest.approx(0.15 / CHART_BUDGET)
        drawn = chart.draws
        data.apply({"type": "step", "epoch": 1, "step": 2, "steps": 10, "loss": 1.9, "acc": 0.2, "lr": 0.01,
                    "images_per_second": 100.0})
        ticks = _count_ticks(curves)
        curves.show(data)
        await pilot_wait_until(pilot, lambda: len(ticks) >= 5, 5, what="several heartbeat ticks after the step")
        assert chart.draws == drawn  # a step alone waits for the budget
        data.apply({"type": "epoch", "epoch": 1, "train_loss": 1.9, "val_loss": 1.8, "train_acc": 0.2, "val_acc": 0.3,
                    "val_top5": 1.0, "lr": 0.01, "epoch_seconds": 1.0, "images_per_second": 100.0})
        curves.show(data)
        assert curves.interval() == 0.0  # an epoch ended: the charts show it at once
        await pilot_wait_until(pilot, lambda: chart.draws > drawn, 5, what="the charts to draw the finished epoch")
        assert chart.draws == drawn + 1
        data.apply({"type": "run_ended", "status": "completed", "reason": "done"})
        assert curves.interval() == 0.0


# -- confusion + drilldown ---------------------------------------------------------------------------
async def test_confusion_matrix_navigation_modes_and_orders(fixture_root):
    app = make_app(fixture_root, run=C100)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("c")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ConfusionScreen)
        matrix = screen.query_one(ConfusionMatrix)
        assert matrix.n == 100
        # only the visible rows are rendered (and cached)
        assert 0 < len(matrix._cache) <= matrix.size.height
        # the test matrix is the default, the cursor starts on the most confused pair
        assert screen.eval_file == "eval/test_e005.npz"
        assert matrix.cursor_classes() == (BOY, GIRL)
        info = text_of(screen.query_one("#cursor-info"))
        assert "true boy" in info and "pred girl" in info and f"{GIRL_AS_BOY} girl → boy" in info
        await pilot.press("j", "j", "l")
        assert matrix.cursor_classes() == (BOY + 2, GIRL + 1)
        assert "true " + CIFAR100_NAMES[BOY + 2] in text_of(screen.query_one("#cursor-info"))
        await pilot.press("k", "h", "down", "up", "right", "left")
        assert matrix.cursor_classes() == (BOY + 1, GIRL)
        await pilot.press("pagedown")
        assert matrix.cursor[0] > BOY + 10
        await pilot.press("home")
        assert matrix.cursor[0] == 0
        await pilot.press("end")
        assert matrix.cursor[0] == 99
        # zoom and fit
        fit = matrix.cell_w
        await pilot.press("plus", "plus")
        assert matrix.cell_w > fit and not matrix.fit_mode
        await pilot.press("f")
        assert matrix.cell_w == fit and matrix.fit_mode
        # counts vs row-normalised %
        await pilot.press("plus", "plus", "plus", "plus")
        matrix.move_to_classes(BOY, GIRL)
        await pilot.pause()
        row = matrix.cursor[0] - matrix.scroll_offset.y + 1
        assert str(BOY_AS_GIRL) in matrix.render_line(row).text
        await pilot.press("n")
        assert matrix.normalise and "58" in matrix.render_line(row).text  # 7 of 12 = 58%
        await pilot.press("n")
        # orders: accuracy, then superclass groups people together
        await pilot.press("o")
        assert screen.order_name == "accuracy"
        acc = np.diag(screen.arrays["confusion"]) / screen.arrays["confusion"].sum(1)
        assert acc[matrix.order[0]] >= acc[matrix.order[-1]]
        await pilot.press("o")
        assert screen.order_name == "superclass"
        names = [CIFAR100_NAMES[i] for i in matrix.order]
        start = names.index("baby")
        assert names[start:start + 5] == ["baby", "boy", "girl", "man", "woman"]
        assert matrix.cursor_classes() == (BOY, GIRL)  # the cursor stays on the same classes
        await pilot.press("o")
        assert screen.order_name == "index"


async def test_confusion_choose_evaluation(fixture_root):
    app = make_app(fixture_root, run=C100)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("c")
        await pilot.pause()
        screen = app.screen
        select = screen.query_one("#eval-select", Select)
        files = [v for _, v in select._options if isinstance(v, str)]
        assert files[0] == "eval/test_e005.npz" and len(files) == 6
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert screen.eval_file == "eval/val_e005.npz" and select.value == "eval/val_e005.npz"
        assert screen.arrays["confusion"].sum() == 400
        select.value = "eval/val_e001.npz"
        await pilot.pause()
        assert screen.eval_file == "eval/val_e001.npz" and "epoch 1" in text_of(screen.query_one("#conf-title"))
        await pilot.press("left_square_bracket")
        await pilot.pause()
        assert screen.eval_file == "eval/val_e002.npz"


async def test_drilldown_opens_on_the_known_pair(fixture_root):
    app = make_app(fixture_root, run=C100)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("tab", "enter")  # the pairs list, its first pair: boy -> girl
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DrilldownScreen)
        assert (screen.true, screen.pred) == (BOY, GIRL)
        await pilot_wait_until(pilot, lambda: screen.samples_loaded, 10, what="the drilldown's thumbnails to load")
        grid = screen.query_one(ThumbGrid)
        assert len(grid.images) == BOY_AS_GIRL and all(img is not None for img in grid.images)
        title = text_of(screen.query_one("#dd-title"))
        assert f"true boy predicted as girl: {BOY_AS_GIRL} images" in title and f"girl as boy: {GIRL_AS_BOY}" in title
        probs = [float(screen.arrays["pred_prob"][i]) for i in screen.indices]
        assert probs == sorted(probs, reverse=True)  # most confident mistakes first
        assert grid.captions[0].startswith(f"{round(100 * probs[0])}%")
        # every sample is a boy predicted as girl
        assert all(screen.arrays["targets"][i] == BOY and screen.arrays["preds"][i] == GIRL for i in screen.indices)
        # half-block thumbnails are drawn
        assert "▀" in grid.render_line(0).text
        info = text_of(screen.query_one("#dd-info"))
        assert "true  boy" in info and "pred  girl" in info
        await pilot.press("right")
        assert grid.selected == 1
        await pilot.press("s")  # swap: girl predicted as boy
        assert (screen.true, screen.pred) == (GIRL, BOY) and len(grid.images) == GIRL_AS_BOY
        await pilot.press("escape")
        assert isinstance(app.screen, ConfusionScreen)
        # enter on a matrix cell opens it too
        app.screen.query_one(ConfusionMatrix).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DrilldownScreen) and (app.screen.true, app.screen.pred) == (BOY, GIRL)


async def test_drilldown_without_thumbnails(fixture_root, tmp_path):
    from testkit.runs import write_run

    root = tmp_path / "runs"
    write_run(root, "20250101-000000-nothumbs", names=["a", "b", "c"], epochs=1, samples=False, per_class_test=10)
    app = make_app(root, run="20250101-000000-nothumbs")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, DrilldownScreen)
        await pilot_wait_until(pilot, lambda: screen.samples_loaded, 10, what="the drilldown's thumbnails to load")
        if len(screen.indices):
            assert "saved no thumbnails" in text_of(screen.query_one("#dd-big"))


async def test_drilldown_uses_textual_image_where_the_terminal_has_graphics(fixture_root):
    from textual_image.widget import HalfcellImage  # stands in for the sixel/kitty widget here

    app = make_app(fixture_root, run=C100)
    app.graphics_image_cls = HalfcellImage
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("c")
        await pilot.pause()
        app.screen.open_drilldown(BOY, GIRL)
        await pilot.pause()
        screen = app.screen
        await pilot_wait_until(pilot, lambda: screen.samples_loaded, 10, what="the drilldown's thumbnails to load")
        await pilot.pause()
        image = screen.query_one("#dd-big-img", HalfcellImage)
        assert image.image is not None and image.image.size == (128, 128)


# -- runs ----------------------------------------------------------------------------------------------
async def test_runs_sort_filter_open(fixture_root):
    app = make_app(fixture_root)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = app.screen
        table = screen.query_one(DataTable)
        assert [r.id for r in screen.shown][0] == "20250604-170000-halfway"  # newest first
        statuses = {r.id: r.status for r in screen.shown}
        assert statuses["20250603-080000-broken"] == "failed" and statuses["20250604-170000-halfway"] == "stopped"
        await pilot.press("o")  # by best accuracy
        assert screen.sort == "best" and screen.shown[0].id == C10
        await pilot.press("o")  # by name
        assert screen.sort == "name" and [r.name for r in screen.shown] == sorted(r.name for r in screen.shown)
        await pilot.press("slash")
        assert app.focused is screen.query_one("#runs-filter", Input)
        await pilot.press(*"cifar1")
        await pilot.pause()
        assert [r.id for r in screen.shown] == [C10, C100] or {r.id for r in screen.shown} == {C10, C100}
        await pilot.press("escape")
        assert len(screen.shown) == 4 and app.focused is table
        await pilot.press("o")
        table.move_cursor(row=[r.id for r in screen.shown].index(C100))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen) and app.current.id == C100
        await pilot.press("r")
        await pilot.press("c")  # on the Runs screen: confusion of the highlighted run
        await pilot.pause()
        assert isinstance(app.screen, ConfusionScreen) and app.current.id == C100


async def test_runs_compare(fixture_root):
    app = make_app(fixture_root)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = app.screen
        await pilot.press("m")
        assert not isinstance(app.screen, CompareScreen)  # needs 2 marked
        ids = [r.id for r in screen.shown]
        table = screen.query_one(DataTable)
        table.move_cursor(row=ids.index(C10))
        await pilot.press("space")
        table.move_cursor(row=ids.index(C100))
        await pilot.press("space")
        assert screen.marked == [C10, C100]
        await pilot.press("m")
        await pilot.pause()
        cmp = app.screen
        assert isinstance(cmp, CompareScreen)
        diff = text_of(cmp.query_one("#cmp-diff"))
        assert "train.lr" in diff and "model.name" in diff and "resnet34" in diff
        charts = list(cmp.query(Chart))
        assert len(charts[0].series) == 2
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_runs_fine_tune_and_resume_load_the_config(fixture_root):
    c100 = fixture_root / C100
    (c100 / "best.pt").write_bytes(b"fixture")  # only its existence is checked here
    halfway = fixture_root / "20250604-170000-halfway"
    (halfway / "last.pt").write_bytes(b"fixture")
    try:
        app = make_app(fixture_root)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            screen = app.screen
            ids = [r.id for r in screen.shown]
            table = screen.query_one(DataTable)
            table.move_cursor(row=ids.index(C100))
            await pilot.press("F")
            await pilot.pause()
            cfg_screen = app.screen
            assert isinstance(cfg_screen, ConfigScreen)
            form = cfg_screen.query_one(ConfigForm)
            assert form.config.model.checkpoint == str(c100 / "best.pt")
            assert form.config.model.pretrained is False
            assert form.config.train.lr == pytest.approx(1e-5)  # 1e-4 lowered 10x
            assert form.config.name.endswith("-ft")
            keys = [k for k, _a, _b in config_mod.diff(cfg_screen.base, form.config)]
            assert {"model.checkpoint", "train.lr", "name"} <= set(keys)
            await pilot.press("r")
            table.move_cursor(row=ids.index("20250603-080000-broken"))
            await pilot.press("R")  # no last.pt: refused
            assert isinstance(app.screen, RunsScreen)
            table.move_cursor(row=ids.index("20250604-170000-halfway"))
            await pilot.press("R")
            await pilot.pause()
            assert isinstance(app.screen, ConfigScreen) and app.screen.resume_dir == halfway
            assert "resume 20250604-170000-halfway" in text_of(app.screen.query_one("#cfg-source"))
    finally:
        (c100 / "best.pt").unlink()
        (halfway / "last.pt").unlink()


async def test_help_lists_every_screen(fixture_root):
    app = make_app(fixture_root)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        groups = dict(app.screen.groups)
        assert set(groups) >= {"Everywhere", "Config (e)", "Dashboard (d)", "Confusion (c)", "Drilldown", "Runs (r)"}
        keys = {k for rows in groups.values() for k, _ in rows}
        assert {"x", "s", "n", "o", "f", "R", "F", "m", "/", "?", "q"} <= keys
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_quit_without_training_exits(fixture_root):
    app = make_app(fixture_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


def _cells(strips) -> list[list[tuple[str, object]]]:
    return [[(ch, seg.style) for seg in strip for ch in seg.text] for strip in strips]


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
async def test_charts_draw_the_same_cells_as_textual_plotexts_ansi_path(fixture_root, theme):
    from rich.console import Console
    from rich.segment import Segment
    from textual.strip import Strip
    from textual_plotext import PlotextPlot

    app = make_app(fixture_root, run=C10)
    async with app.run_test(size=(160, 48)) as pilot:
        app.theme = theme
        await pilot.pause()
        chart = app.screen.query_one("#chart-loss", Chart)
        for series in ([("train", [0, 1, 2, 3], [2.0, 1.2, 0.9, 0.7], "cyan"), ("val", [1, 2, 3], [1.4, 1.1, 1.0], "orange")],
                       [("one point", [1.0], [0.5], "gray")], []):
            chart.draw(series, 4.0)
            await pilot.pause()
            width, height = chart.size
            ours = [chart.render_line(y) for y in range(height)]
            text = PlotextPlot.render(chart)  # textual-plotext: plotext's ANSI string, parsed by Rich
            base = chart.visual_style.rich_style
            console = Console(width=width, color_system="truecolor")
            reference = [Strip([Segment(s.text, base + (s.style or base)) for s in line.render(console)])
                         for line in text.split("\n", allow_blank=True)][:height]
            assert len(ours) == height and [s.cell_length for s in ours] == [width] * height
            assert _cells(ours) == _cells(reference)


async def test_steps_reach_the_dashboard_on_the_heartbeat_without_waking_the_ui(fixture_root):
    from cifartui.tui.app import LiveTraining
    from cifartui.tui.bridge import TrainingBridge

    app = make_app(fixture_root, run=C10)  # heartbeat: follow_interval 0.1 s in tests
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        bridge = TrainingBridge(app.post_message)
        app.live = LiveTraining(cfg=None, data=RunData(), bridge=bridge)  # type: ignore[arg-type]
        app.current = app.live.data
        bridge.push({"type": "run_started", "run_id": "live", "name": "live", "device": "cpu", "num_classes": 2,
                     "class_names": ["a", "b"], "epochs": 2, "steps_per_epoch": 10, "train_size": 1, "val_size": 1,
                     "test_size": 1})
        await pilot_wait_until(pilot, lambda: app.live.data.started is not None, 5,
                               what="run_started to reach the app")  # that one woke the UI
        for step in range(1, 4):
            bridge.push({"type": "step", "epoch": 1, "step": step, "steps": 10, "loss": 2.0, "acc": 0.1, "lr": 0.01,
                         "images_per_second": 100.0})
        posted = bridge.posted
        await pilot_wait_until(pilot, lambda: app.live.data.last_step is not None and app.live.data.last_step.step == 3,
                               5, what="step 3 to reach the app on the heartbeat")
        assert bridge.posted == posted  # the steps waited for the heartbeat; nothing woke the UI for them
        await pilot_wait_until(pilot, lambda: "step 3/10" in text_of(app.screen.query_one("#progress")), 5,
                               what="the progress bar to show step 3/10")


async def test_a_heartbeat_while_the_dashboard_is_torn_down_does_not_crash(fixture_root):
    app = make_app(fixture_root, run=C10)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await app.screen.query_one(Curves).remove()  # as at exit, when children go before the screen
        app._heartbeat()  # the timer can fire then (it did in CI)
        await pilot.pause()
    assert app.return_code in (0, None)
