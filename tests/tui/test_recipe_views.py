"""What the app shows of the recipe tools: the Config screen's help for a focused field, the metrics table's
EMA column and its "-" train accuracy under Mixup/CutMix."""

from __future__ import annotations

from textual.app import App

from tui_support import DATA, make_app, text_of

from cifartui.config import TrainConfig
from cifartui.record.events import EpochEnd, RunStarted
from cifartui.tui.rundata import RunData
from cifartui.tui.widgets.run_panels import MetricsTable


async def test_the_focused_field_shows_its_help_in_the_side_panel(tmp_path):
    app = make_app(tmp_path / "runs", config_path=DATA / "snapshot.yaml")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        help_box = app.screen.query_one("#cfg-help")
        assert text_of(help_box).strip() == ""
        for field_id, path, description in (
                ("#f-train--ema_decay", "train.ema_decay", TrainConfig.model_fields["ema_decay"].description),
                ("#f-train--ema", "train.ema", TrainConfig.model_fields["ema"].description)):
            app.set_focus(app.screen.query_one(field_id))
            await pilot.pause()
            shown = " ".join(text_of(help_box).split())
            assert path in shown and " ".join(description.split()) in shown
        app.set_focus(app.screen.query_one("#f-train--ema_decay"))
        await pilot.pause()
        assert "> 0, < 1" in text_of(help_box)  # the field's type and range, as the input's placeholder says


class TableApp(App):
    def compose(self):
        yield MetricsTable()


def _epochs(ema: bool, mixed: bool) -> RunData:
    data = RunData()
    data.apply(RunStarted(run_id="r", name="r", device="cpu", num_classes=2, class_names=["a", "b"], epochs=2,
                          steps_per_epoch=1, train_size=1, val_size=1, test_size=1).to_dict())
    for e, (raw, avg) in enumerate(((0.625, 0.25), (0.5, 0.875)), start=1):
        data.apply(EpochEnd(epoch=e, train_loss=1.0, train_acc=None if mixed else 0.75, val_loss=1.0, val_acc=raw,
                            val_top5=1.0, lr=0.1, epoch_seconds=1.0, images_per_second=1.0,
                            val_acc_ema=avg if ema else None).to_dict())
    return data


async def test_the_metrics_table_shows_the_ema_column_and_no_train_accuracy_under_mixing():
    app = TableApp()
    async with app.run_test(size=(160, 20)) as pilot:
        table = app.query_one(MetricsTable)
        table.show(_epochs(ema=True, mixed=True))
        await pilot.pause()
        text = text_of(table)
        assert "EMA acc" in text and "87.50%" in text and "25.00%" in text
        assert "Mixup/CutMix" in text and "75.00%" not in text
        best_row = next(line for line in text.splitlines() if "★" in line)
        assert "★2" in best_row  # ranked by the better of raw and EMA: the EMA's 87.5% at epoch 2
        table.show(_epochs(ema=False, mixed=False))
        await pilot.pause()
        text = text_of(table)
        assert "EMA acc" not in text and "Mixup" not in text and "75.00%" in text
        assert "★1" in next(line for line in text.splitlines() if "★" in line)
