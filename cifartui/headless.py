"""Training without the app: Rich progress and an epoch table on a TTY, plain lines otherwise.

Signals: Ctrl-C / SIGTERM ask the trainer to stop after the current step (it saves last.pt and
records ``run_ended`` stopped), a second Ctrl-C aborts at once; SIGHUP (the SSH link dropping) is
ignored so nohup is not even needed.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cifartui.record.events import SUCCESS_STATUSES, EpochEnd, Event, Evaluation, Log, RunEnded, RunStarted, Step
from cifartui.record.control import StopRequest

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_SIGINT, EXIT_SIGTERM = 130, 143


class HeadlessReporter:
    """An event sink that prints. Output errors (a closed terminal) silence it instead of killing training."""

    def __init__(self, console: Console | None = None, plain: bool | None = None, file=None):
        self.console = console or Console(stderr=False, highlight=False)
        self.plain = (not self.console.is_terminal) if plain is None else plain
        self.file = file  # plain lines go here (None: standard output)
        self.progress: Progress | None = None
        self.task = None
        self.epochs = 0
        self.dead = False
        self._last_plain_step = 0.0
        self._header_done = False

    def __call__(self, event: Event) -> None:
        if self.dead:
            return
        try:
            self._handle(event)
        except OSError:  # the terminal went away (SIGHUP, closed pipe): keep training silently
            self.dead = True

    def _print(self, text: str, style: str | None = None) -> None:
        if self.plain:
            print(self._prefix() + text, file=self.file or sys.stdout, flush=True)
        else:
            target = self.progress.console if self.progress else self.console
            target.print(text, style=style, markup=False)

    def _handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.epochs = event.epochs
            resumed = f", resumed at epoch {event.resumed_from_epoch}" if event.resumed_from_epoch else ""
            gpu = f" ({event.device_name})" if event.device_name else ""
            self._print(f"run {event.run_id}: {event.model} on {event.dataset}, {event.num_classes} classes, "
                        f"{event.train_size}/{event.val_size}/{event.test_size} train/val/test, "
                        f"device {event.device}{gpu}, world size {event.world_size}{resumed}", "bold")
            if not self.plain:
                self.progress = Progress(
                    TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
                    MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.4f} acc {task.fields[acc]}"),
                    TextColumn("{task.fields[ips]:.0f} img/s"), TimeRemainingColumn(), console=self.console,
                    transient=True)
                self.progress.start()
        elif isinstance(event, Step):
            if self.progress is not None:
                if self.task is None:
                    self.task = self.progress.add_task("train", total=event.steps, epoch=event.epoch, epochs=self.epochs,
                                                       loss=event.loss, acc=_acc(event.acc, ".3f"), ips=event.images_per_second)
                self.progress.update(self.task, completed=event.step, total=event.steps, epoch=event.epoch,
                                     loss=event.loss, acc=_acc(event.acc, ".3f"), ips=event.images_per_second)
            elif time.monotonic() - self._last_plain_step > 10 or event.step == event.steps:
                self._last_plain_step = time.monotonic()
                self._print(f"epoch {event.epoch} step {event.step}/{event.steps} loss {event.loss:.4f} "
                            f"acc {_acc(event.acc, '.4f')} lr {event.lr:.3g} {event.images_per_second:.0f} img/s")
        elif isinstance(event, EpochEnd) and not self.plain:
            if not self._header_done:  # an epoch table: header once, one aligned row per epoch
                self._header_done = True
                self._print(f"{'epoch':>7} {'train loss':>10} {'train acc':>9} {'val loss':>8} {'val acc':>7} "
                            f"{'top-5':>6} {'lr':>8} {'time':>6} {'img/s':>6}"
                            + (f" {'EMA acc':>7}" if event.val_acc_ema is not None else ""), "bold underline")
            self._print(f"{f'{event.epoch}/{self.epochs}':>7} {event.train_loss:>10.4f} {_acc(event.train_acc, '>9.2%')} "
                        f"{event.val_loss:>8.4f} {100 * event.val_acc:>6.2f}% {100 * event.val_top5:>5.1f}% "
                        f"{event.lr:>8.2e} {event.epoch_seconds:>5.1f}s {event.images_per_second:>6.0f}"
                        + (f" {_acc(event.val_acc_ema, '>7.2%')}" if event.val_acc_ema is not None else "")
                        + (" *" if event.is_best else ""), "green" if event.is_best else None)
        elif isinstance(event, EpochEnd):
            best = " *best*" if event.is_best else ""
            ema = f" (EMA {event.val_acc_ema:.4f})" if event.val_acc_ema is not None else ""
            self._print(f"epoch {event.epoch}/{self.epochs}  train loss {event.train_loss:.4f} acc {_acc(event.train_acc, '.4f')}  "
                        f"val loss {event.val_loss:.4f} acc {event.val_acc:.4f}{ema} top5 {event.val_top5:.4f}  "
                        f"lr {event.lr:.3g}  {event.epoch_seconds:.1f}s {event.images_per_second:.0f} img/s{best}",
                        "green" if event.is_best else None)
        elif isinstance(event, Evaluation) and event.split == "test":
            self._print(f"test: top-1 {event.top1:.4f} top-5 {event.top5:.4f} loss {event.loss:.4f} "
                        f"({event.num_samples} images, weights of epoch {event.epoch})", "bold")
        elif isinstance(event, Log):
            style = {"warning": "yellow", "error": "red"}.get(event.level)
            prefix = "" if event.level == "info" else f"{event.level}: "
            self._print(prefix + event.message, style)
        elif isinstance(event, RunEnded):
            self.close()
            if event.status == "failed":  # the exception behind it is printed once, by whoever caught it
                return  # (the CLI: "error: ..." and exit code 1 or 2; the app: on screen and in train.log)
            style = "green" if event.status in SUCCESS_STATUSES else "red"
            self._print(f"run {event.status}: {event.reason}", style)

    def _prefix(self) -> str:
        return ""

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
            self.task = None


class RunLog(HeadlessReporter):
    """Every run's own console log, ``train.log`` in its folder, in plain time-stamped lines: what a run
    said is still there when no terminal watched it (a detached hand-off, an app whose terminal hung up)."""

    def __init__(self, run_dir):
        from cifartui.record.control import TRAIN_LOG

        super().__init__(plain=True, file=open(Path(run_dir) / TRAIN_LOG, "a", encoding="utf-8"))

    def _prefix(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S ")

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunEnded) and event.status == "failed" and not self.dead:
            self._print(f"run failed: {event.reason}")  # the log is read alone: it says why, unlike a terminal
        super().__call__(event)

    def finish(self) -> None:
        """Training is over (by any path): close the file; later events are not written."""
        self.dead = True
        self.file.close()


class SignalStop:
    """Turns SIGINT/SIGTERM into a graceful stop request; remembers which one for the exit code."""

    def __init__(self, stop: threading.Event, quiet: bool = False):
        self.stop = stop
        self.quiet = quiet  # torchrun ranks other than 0 stop just as well, without saying so N times
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    def _handler(self, signum, frame):
        if self.stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: abort now
        self.signum = signum
        self.stop.set()
        if hasattr(self.stop, "reason"):
            self.stop.reason = f"stopped by {signal.Signals(signum).name}; resume with --resume"
        if self.quiet:
            return
        print(f"\n{signal.Signals(signum).name}: stopping after this step and saving last.pt "
              "(Ctrl-C again to abort)", file=sys.stderr, flush=True)

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handler)
        if hasattr(signal, "SIGHUP"):
            self._old[signal.SIGHUP] = signal.signal(signal.SIGHUP, signal.SIG_IGN)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)

    @property
    def exit_code(self) -> int:
        return EXIT_SIGTERM if self.signum == signal.SIGTERM else EXIT_SIGINT


def run_headless(cfg, resume_dir=None, store=None) -> int:
    """Train ``cfg`` (or resume ``resume_dir``) with the Rich reporter; returns the process exit code.

    ``store``: the run folder when the caller has prepared it already (the queue worker records its path
    before training); otherwise :func:`cifartui.session.prepare` makes or reopens it here."""
    from cifartui import session

    # Under torchrun only rank 0 writes the run store and prints; the other ranks train silently (errors
    # still reach stderr, prefixed with the rank) and need the run folder only to read last.pt on resume.
    main = session._is_main_rank()
    if store is None:
        store = session.prepare(cfg, resume_dir)
    reporter = HeadlessReporter()
    stop = StopRequest()
    error: BaseException | None = None
    try:
        with SignalStop(stop, quiet=not main) as signals:
            try:
                ended = session.train(cfg, store, [reporter] if main else [], stop=stop, resume_dir=resume_dir)
            except KeyboardInterrupt:
                reporter.close()
                if main:
                    print("aborted; last.pt holds the last saved state", file=sys.stderr)
                return EXIT_SIGINT
            except BaseException as exc:
                error = exc  # a ResumeRefused: nothing to notify of
                raise
            finally:
                reporter.close()
    finally:  # however the run ended (failed too): once, with the signal handlers restored (Ctrl-C kills it)
        if store is not None and cfg.output.notify:
            from cifartui.notify import notify_ended

            failure = notify_ended(cfg, store, error)
            if failure:
                print(f"warning: output.notify: {failure.removeprefix('notify: ')} (details in train.log)", file=sys.stderr)
    if signals.signum:  # 130/143 as a shell expects, even when the run ended completed meanwhile (a signal
        return signals.exit_code  # during the final test): a queue worker must not start the next entry
    if ended.status == "stopped":  # by a stop request: done as asked
        return EXIT_OK
    return EXIT_OK if ended.status in SUCCESS_STATUSES else EXIT_FAILED


def _acc(value: float | None, spec: str) -> str:
    """A train accuracy; "-" while Mixup/CutMix mix the targets (none is measured then), as wide as a figure."""
    width = "".join(c for c in spec.split(".")[0] if c.isdigit())
    return format(value, spec) if value is not None else format("-", f">{width}" if width else "")
