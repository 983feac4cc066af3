"""The app's side of issue 13 sections 2 and 3: ``g``/``G`` in the drilldown (a real run's best.pt, Grad-CAM
on a worker thread) and the Suspects view (cleanlab over a fixture run's stored probabilities;
``x``/``u`` marks saved in the run's exclude.txt)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from cifartui.record.read_model import RunRecord
from cifartui.record.store import load_evaluation

from support import pilot_wait_until
from testkit.runs import T0, RunWriter, write_run
from tui_support import make_app

RUN = "20250605-120000-suspects"
NAMES = [f"class_{i}" for i in range(10)]
DOUBTED = [3, 17, 42, 58, 91, 120, 133, 170]  # test samples whose label the fixture's model contradicts


def suspects_run(root):
    """A fixture run whose test evaluation holds every class's probability and image references: confident
    and right on most images, confidently another class on DOUBTED."""
    run = write_run(root, RUN, names=NAMES, epochs=3, seed=5, model="resnet18", dataset="synthetic",
                    per_class_val=5, per_class_test=20)
    test = RunRecord.read(run).test
    arrays = load_evaluation(run, test.file)
    targets = arrays["targets"]
    rng = np.random.default_rng(7)
    logits = rng.normal(0, 0.5, (len(targets), len(NAMES)))
    logits[np.arange(len(targets)), targets] += 4
    for k, i in enumerate(DOUBTED):
        logits[i, (targets[i] + 1 + k % 3) % len(NAMES)] += 6 + k * 0.3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    preds = probs.argmax(1).astype(np.int32)
    conf = np.bincount(targets * 10 + preds, minlength=100).reshape(10, 10).astype(np.int32)
    with RunWriter.reopen(run) as writer:
        writer.evaluation("test", test.epoch, loss=0.5, top1=float(np.trace(conf)) / len(targets), top5=1.0,
                          at=T0 + 99_000,
                          arrays={"confusion": conf, "targets": targets, "preds": preds,
                                  "pred_prob": probs.max(1).astype(np.float16),
                                  "true_prob": probs[np.arange(len(targets)), targets].astype(np.float16),
                                  "probs": probs.astype(np.float16),
                                  "refs": np.array([f"synthetic:test:{i}" for i in range(len(targets))])})
    return run


@pytest.fixture
def suspects_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths on screen are relative to here: runs/...
    suspects_run(tmp_path / "runs")
    return tmp_path / "runs"


async def open_suspects(pilot):
    await pilot.press("c")
    await pilot_wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "ConfusionScreen",
                           what="the Confusion screen")
    await pilot.press("s")
    await pilot_wait_until(pilot, lambda: getattr(pilot.app.screen, "state", "") in ("ready", "missing", "error"),
                           what="the suspects view to rank (or say why not)")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_suspects_view(snap_compare, suspects_root):
    async def before(pilot):
        await open_suspects(pilot)
        await pilot.press("x", "right")
        await pilot.pause()

    assert snap_compare(make_app("runs", run=RUN), terminal_size=(160, 48), run_before=before)


async def test_suspects_marks_are_saved_in_the_run_and_splits_without_probabilities_ask_first(suspects_root):
    app = make_app(suspects_root, run=RUN)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_suspects(pilot)
        screen = app.screen
        assert screen.split == "test" and screen.state == "ready"  # train has no stored probabilities: test shown
        shown = [s.index for s in screen.items]
        assert set(shown[: len(DOUBTED)]) == set(DOUBTED)  # the contradicted labels rank first
        exclude = suspects_root / RUN / "exclude.txt"
        await pilot.press("x", "right", "x")
        await pilot.pause()
        refs = [line for line in exclude.read_text().splitlines() if not line.startswith("#")]
        assert refs == [f"synthetic:test:{shown[0]}", f"synthetic:test:{shown[1]}"]
        await pilot.press("u")
        await pilot.pause()
        assert [line for line in exclude.read_text().splitlines() if not line.startswith("#")] == refs[:1]
        assert "1 marked" in str(screen.query_one("#dd-title").content)

        await pilot.press("t")  # train: nothing stored, so the view asks before evaluating every image
        await pilot_wait_until(pilot, lambda: screen.state != "ranking", what="the train split's ranking to end")
        await pilot.pause()
        assert screen.split == "train" and screen.state == "missing"
        assert "E: evaluate its images now" in str(screen.query_one("#dd-info").content)


@pytest.mark.slow
async def test_drilldown_g_draws_the_class_activation_map_over_the_image(noisy_run):
    _base, run, _flipped = noisy_run  # a real run with best.pt (tests/conftest.py)
    app = make_app(run.parent, run=run.name)
    loading = threading.Event()
    real_maker = app.cam_maker

    def slow_first_maker(run_dir):  # holds the first map back, so the "loading torch" state can be seen
        loading.wait(30)
        return real_maker(run_dir)

    app.cam_maker = slow_first_maker
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("c")
        await pilot_wait_until(pilot, lambda: app.screen.__class__.__name__ == "ConfusionScreen"
                               and app.screen.arrays is not None, what="the Confusion screen with its arrays")
        arrays = app.screen.arrays
        app.screen.open_drilldown(int(arrays["targets"][0]), int(arrays["preds"][0]))
        await pilot_wait_until(pilot, lambda: app.screen.__class__.__name__ == "DrilldownScreen"
                               and app.screen.samples_loaded, what="the drilldown with its thumbnails")
        screen = app.screen
        index = screen.cam_index()
        big, info = screen.query_one("#dd-big"), screen.query_one("#dd-info")

        await pilot.press("g")
        assert "computing the map for its prediction (loading torch and best.pt" in str(info.content)
        loading.set()
        await pilot_wait_until(pilot, lambda: "map:" in str(info.content) or "no map" in str(info.content),
                               what="the predicted class's map (or why there is none)")
        assert "map:" in str(info.content), str(info.content)
        overlay = screen.cam_overlay(index)
        assert overlay.shape == (128, 128, 3)
        assert _pixels(big) != _pixels_of(screen._image(index))  # the map is drawn, not the thumbnail

        await pilot.press("g")  # again: the plain image
        await pilot.pause()
        assert _pixels(big) == _pixels_of(screen._image(index)) and "map:" not in str(info.content)

        await pilot.press("G")  # the true class's map
        await pilot_wait_until(pilot, lambda: "map:" in str(info.content), what="the true class's map",
                               detail=lambda: info.content)
        assert "true class" in str(info.content)


def _pixels(static) -> list:
    return [seg.style for strip in static.content.strips for seg in strip]


def _pixels_of(image) -> list:
    from cifartui.tui.widgets.thumbnails import HalfBlockImage

    return [seg.style for strip in HalfBlockImage(image, 32).strips for seg in strip]
