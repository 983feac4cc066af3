"""output.notify on fixture runs (no torch): a failing command is logged and returned, never raised; a
failed run without a test score gives empty figures. The real run with a slow command is in
test_reproducibility.py."""

from __future__ import annotations

from cifartui.notify import run_environment, run_notify
from cifartui.record.read_model import RunRecord

from testkit.runs import write_reference_run


def test_failing_notify_is_logged_in_train_log_and_returned(tmp_path):
    run = write_reference_run(tmp_path / "runs")
    failure = run_notify('echo "no route to ntfy.sh" >&2; exit 3', run, timeout=30)
    assert failure == "notify: exited with code 3"
    log = (run / "train.log").read_text()
    assert "notify: exited with code 3; it said: no route to ntfy.sh" in log
    assert RunRecord.read(run).status == "early_stopped"  # the run's record is untouched


def test_a_working_notify_gets_the_run_environment(tmp_path):
    run = write_reference_run(tmp_path / "runs")
    out = tmp_path / "seen.txt"
    assert run_notify(f'printf "%s|%s|%s|%s" "$CIFARTUI_RUN" "$CIFARTUI_STATUS" "$CIFARTUI_TEST_ACC" '
                      f'"$CIFARTUI_BEST_VAL" > {out}', run, timeout=30) is None
    record = RunRecord.read(run)
    run_id, status, test, best = out.read_text().split("|")
    assert (run_id, status) == (run.name, "early_stopped")
    assert float(test) == record.test.top1 and float(best) == record.best.val_acc
    assert "notify: done in" in (run / "train.log").read_text()


def test_a_failed_run_without_test_score_has_empty_figures(tmp_path):
    run = write_reference_run(tmp_path / "runs", status="failed", test=False)
    env = run_environment(run)
    assert env["CIFARTUI_STATUS"] == "failed" and env["CIFARTUI_TEST_ACC"] == ""
    assert float(env["CIFARTUI_BEST_VAL"]) == RunRecord.read(run).best.val_acc  # it had epochs


def test_no_command_runs_nothing(tmp_path):
    run = write_reference_run(tmp_path / "runs")
    assert run_notify(None, run) is None and run_notify("   ", run) is None
    assert not (run / "train.log").exists()


def test_notify_runs_however_the_run_ended_but_not_after_a_refused_resume(tmp_path):
    """A run whose run_ended could not be written (a full disk) is still notified; a resume refused at set-up
    (ResumeRefused: the run is as it was) is not."""
    from cifartui.config import Config
    from cifartui.errors import ResumeRefused
    from cifartui.notify import notify_ended
    from cifartui.record.store import RunStore, StorageError

    run = write_reference_run(tmp_path / "runs", status=None)  # no run_ended in its events
    store = RunStore.open(run)
    mark = tmp_path / "notified"
    cfg = Config().with_overrides(**{"output.notify": f"echo $CIFARTUI_STATUS >> {mark}"})
    assert notify_ended(cfg, store, ResumeRefused("--resume: the classes are not the run's")) is None
    assert not mark.exists()
    assert notify_ended(cfg, store, StorageError("cannot write events.jsonl (No space left on device)")) is None
    assert mark.read_text().split() == [RunRecord.read(run).status]
    store.close()
