"""The read model: one run's events folded, one at a time, into what every reader shows.

A run being written by another process and a finished run read the same way: ``record.apply(event)`` for
each event, in order (:meth:`RunRecord.read` folds a whole ``events.jsonl``; a follower applies new lines as
they come). Typed events in (``cifartui.record.events``); readers use attributes, never the JSON.

The rules every reader shares, written once here:

- **Resumed runs.** A resume continues from ``last.pt``, so the epochs after the last save are trained
  again and ``events.jsonl`` holds them twice: the **last** ``epoch`` event of an epoch number wins, and a
  resumed ``run_started`` drops the epochs and steps it will redo.
- **Which evaluation per-class figures come from** (:meth:`RunRecord.evaluation`): the latest ``test``
  evaluation, else the latest ``val`` one; or the latest of a split asked for.
- **Status**: the last ``run_ended``'s, or ``running`` while none follows the last ``run_started`` (the
  store turns a dead writer into ``crashed``; the fold cannot know).
- **Best epoch**: the first epoch with the highest validation accuracy (the trainer's ``is_best`` rule;
  under ``train.ema`` the better of the raw and the EMA weights' accuracy, ``EpochEnd.best_acc``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from cifartui.record.events import (Checkpoint, EpochEnd, Evaluation, Event, Log, RunEnded, RunStarted, Samples, Step,
                                    event_from_dict)


@dataclass
class RunRecord:
    path: Path | None = None
    first_started: RunStarted | None = None  # when the run began (a resume keeps it)
    started: RunStarted | None = None  # the latest start: the process writing now, the classes, the device
    epochs_by_number: dict[int, EpochEnd] = field(default_factory=dict)
    evaluations: list[Evaluation] = field(default_factory=list)  # with an arrays file, in order
    samples: dict[str, Samples] = field(default_factory=dict)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    logs: list[Log] = field(default_factory=list)
    last_step: Step | None = None
    ended: RunEnded | None = None
    events_applied: int = 0
    steps: list[Step] = field(default_factory=list)  # every logged step (charts, export), when keep_steps
    keep_steps: bool = True  # the run's writer folds for summary.json only: it keeps none

    # -- folding ------------------------------------------------------------------------------------
    @classmethod
    def read(cls, path: str | Path) -> "RunRecord":
        from cifartui.record.store import EVENTS_FILE, read_events

        record = cls(Path(path))
        events, _ = read_events(Path(path) / EVENTS_FILE)
        record.apply_all(events)
        return record

    def apply_all(self, events: Iterable[Event | dict[str, Any]]) -> bool:
        changed = False
        for e in events:
            changed = self.apply(e) or changed
        return changed

    def apply(self, event: Event | dict[str, Any]) -> bool:
        """Fold one event (typed, or a JSON object from ``events.jsonl``); False for one it does not know."""
        if isinstance(event, dict):
            event = event_from_dict(event)
            if event is None:
                return False
        self.events_applied += 1
        if isinstance(event, RunStarted):
            if event.resumed_from_epoch:
                keep = int(event.resumed_from_epoch)
                self.epochs_by_number = {n: e for n, e in self.epochs_by_number.items() if n < keep}
                if self.last_step is not None and self.last_step.epoch >= keep:
                    self.last_step = None
                if self.steps and self.steps[-1].epoch >= keep:
                    self.steps = [s for s in self.steps if s.epoch < keep]
            self.first_started = self.first_started or event
            self.started, self.ended = event, None
        elif isinstance(event, Step):
            self.last_step = event
            if self.keep_steps:
                self.steps.append(event)
        elif isinstance(event, EpochEnd):
            self.epochs_by_number[event.epoch] = event
        elif isinstance(event, Evaluation):
            if event.file:
                self.evaluations = [e for e in self.evaluations if e.file != event.file] + [event]
        elif isinstance(event, Samples):
            self.samples[event.split] = event
        elif isinstance(event, Checkpoint):
            self.checkpoints.append(event)
        elif isinstance(event, Log):
            self.logs.append(event)
        elif isinstance(event, RunEnded):
            self.ended = event
        return True

    # -- views --------------------------------------------------------------------------------------
    @property
    def epochs(self) -> list[EpochEnd]:
        """One per epoch number, in order (the last event of an epoch wins after a resume)."""
        return [self.epochs_by_number[n] for n in sorted(self.epochs_by_number)]

    @property
    def epochs_done(self) -> int:
        return max(self.epochs_by_number, default=0)

    @property
    def status(self) -> str:
        if self.ended is not None:
            return self.ended.status
        return "running" if self.started is not None else "unknown"

    @property
    def best(self) -> EpochEnd | None:
        best = None
        for e in self.epochs:
            if best is None or e.best_acc > best.best_acc:
                best = e
        return best

    @property
    def class_names(self) -> list[str]:
        return list(self.started.class_names) if self.started else []

    @property
    def environment(self) -> dict[str, Any]:
        """What the latest start ran with (versions, host, argv, git; ``{}`` for runs older than the field).
        A resume records its own: the first start's is ``first_started.environment``."""
        return dict(self.started.environment or {}) if self.started is not None else {}

    def evaluation(self, split: str | None = None) -> Evaluation | None:
        """The evaluation readers analyse: the latest of ``split``; by default the latest test, else val."""
        for wanted in ([split] if split else ["test", "val"]):
            found = next((e for e in reversed(self.evaluations) if e.split == wanted), None)
            if found is not None:
                return found
        return None if split else (self.evaluations[-1] if self.evaluations else None)

    @property
    def test(self) -> Evaluation | None:
        return self.evaluation("test")

    def summary(self) -> dict[str, Any]:
        """What ``summary.json`` holds (the store writes it; ``runs`` lists it)."""
        s = self.started
        best, test = self.best, self.test
        out: dict[str, Any] = {"status": self.status, "epochs_done": self.epochs_done}
        if s is not None:
            out.update(id=s.run_id, name=s.name, model=s.model, dataset=s.dataset, epochs=s.epochs,
                       world_size=s.world_size, device=s.device, num_classes=s.num_classes, pid=s.pid, host=s.host,
                       started=(self.first_started or s).time)
        if best is not None:
            out.update(best_val_acc=best.best_acc, best_epoch=best.epoch)
            last = self.epochs[-1]
            out.update(last_val_acc=last.val_acc, last_train_acc=last.train_acc)
        if test is not None:
            out.update(test_acc=test.top1, test_top5=test.top5)
        if self.ended is not None:
            out.update(reason=self.ended.reason, ended=self.ended.time)
        return out
