"""Small single-purpose panels of the dashboard: run header, device line, progress, metrics table, log."""

from __future__ import annotations

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual.widgets import RichLog, Static

from cifartui.record.events import SUCCESS_STATUSES
from cifartui.tui.formatting import STATUS_STYLE, duration, num, pct
from cifartui.tui.rundata import RunData


class RunHeader(Static):
    def show(self, d: RunData | None, following: bool = False, live: bool = False, elsewhere: str = "") -> None:
        """``elsewhere``: the id of a run this app trains while another one is on screen."""
        if d is None and elsewhere:
            self.update(Text(f"training {elsewhere} here: open it from Runs (r)", style="yellow"), layout=False)
            return
        if d is None:
            self.update(Text("No run selected: start one from the Config screen (e) or open one from Runs (r).", style="dim"),
                        layout=False)
            return
        st = d.started
        t = Text()
        t.append(d.id, style="bold")
        t.append("  ")
        t.append(f" {d.status} ", style=f"reverse {STATUS_STYLE.get(d.status, '')}")
        if live:
            t.append("  trained here", style="dim")
        elif following and d.status == "running":
            t.append(f"  following pid {st.pid if st else None}@{st.host if st else None}", style="dim")
        if st:
            t.append(f"  {st.model} on {st.dataset}, {st.num_classes} classes, "
                     f"{st.train_size}/{st.val_size}/{st.test_size} train/val/test")
        if d.phase:
            t.append(f"  {d.phase}", style="italic yellow")
        if elsewhere:
            t.append(f"  ·  training {elsewhere} here (r to open)", style="yellow")
        self.update(t, layout=False)  # one line, fixed height: no layout pass


class DeviceLine(Static):
    def show(self, d: RunData | None) -> None:
        st = d.started if d else None
        if st is None:
            self.update("")
            return
        t = Text("device ", style="dim")
        t.append(str(st.device))
        if st.world_size > 1:
            t.append(f" × {st.world_size} processes")
        if st.device_name:
            t.append(f"  {st.device_name}", style="bold")
        peak = next((e.gpu_memory_mb for e in reversed(d.epochs) if e.gpu_memory_mb), None)
        if d.gpu_mem_mb is not None or peak is not None or d.gpu_total_mb:
            used = d.gpu_mem_mb if d.gpu_mem_mb is not None else peak
            t.append("  memory ", style="dim")
            t.append(f"{used / 1024:.1f} GiB" if used is not None else "?")
            if d.gpu_total_mb:
                t.append(f" / {d.gpu_total_mb / 1024:.0f} GiB")
            if peak is not None:
                t.append(f" (peak {peak / 1024:.1f} GiB)", style="dim")
        if st.resumed_from_epoch:
            t.append(f"  resumed at epoch {st.resumed_from_epoch}", style="yellow")
        self.update(t, layout=False)


class TrainProgress(Static):
    """Epoch and step, a bar for the whole run, ETA and images/s (all from the events, no clock)."""

    def show(self, d: RunData | None) -> None:
        p = d.progress() if d else None
        if p is None and d is not None and d.task is not None and d.running:  # e.g. downloading the dataset
            message, fraction = d.task
            grid = Table.grid(padding=(0, 1), expand=True)
            grid.add_column(no_wrap=True)
            grid.add_column(ratio=1)
            grid.add_row(Text(message, style="yellow"), ProgressBar(total=1.0, completed=fraction))
            self.update(grid, layout=False)
            return
        if p is None:
            self.update(Text("waiting for the first event ...", style="dim") if d and d.running else "")
            return
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(no_wrap=True)
        grid.add_column(ratio=1)
        grid.add_column(no_wrap=True)
        left = Text(f"epoch {p.epoch}/{p.epochs}  step {p.step}/{p.steps}")
        right = Text(f"{100 * p.fraction:5.1f}%  ETA {duration(p.eta_seconds)}  ")
        right.append(f"{p.images_per_second:,.0f} img/s" if p.images_per_second else "- img/s", style="bold")
        if d.last_step is not None and d.running:
            right.append(f"  loss {d.last_step.loss:.4f} acc {pct(d.last_step.acc, 1)}", style="dim")
        style = "green" if d.status in SUCCESS_STATUSES else ("red" if d.status in ("failed", "crashed") else "yellow")
        grid.add_row(left, ProgressBar(total=1.0, completed=p.fraction, complete_style=style, finished_style=style), right)
        self.update(grid, layout=False)


class MetricsTable(Static):
    """One row per epoch; the best validation accuracy marked. Under train.ema an "EMA acc" column (the
    moving average's validation accuracy); under Mixup/CutMix "train acc" reads "-" (see the note)."""

    def show(self, d: RunData | None) -> None:
        table = Table(expand=True, box=None, padding=(0, 1), header_style="bold", row_styles=["", "on #1c1f26"])
        epochs = d.epochs if d else []
        ema = any(e.val_acc_ema is not None for e in epochs)
        for col, just in (("ep", "right"), ("train loss", "right"), ("train acc", "right"), ("val loss", "right"),
                          ("val acc", "right"), *((("EMA acc", "right"),) if ema else ()), ("top-5", "right"),
                          ("lr", "right"), ("time", "right"), ("img/s", "right")):
            table.add_column(col, justify=just, no_wrap=True)
        best = d.best_epoch if d else None
        for e in epochs:  # in epoch order
            mark = e is best
            table.add_row(
                f"{'★' if mark else ' '}{e.epoch}", num(e.train_loss), pct(e.train_acc),
                num(e.val_loss), pct(e.val_acc), *((pct(e.val_acc_ema),) if ema else ()), pct(e.val_top5),
                num(e.lr, ".2e"), duration(e.epoch_seconds), num(e.images_per_second, ",.0f"),
                style="bold green" if mark else None,
            )
        parts: list = [table]
        if any(e.train_acc is None for e in epochs):
            parts.append(Text("train acc -: Mixup/CutMix mix the targets, so no train accuracy is measured; "
                              "train loss is the loss against the mixed targets", style="dim"))
        if d is not None:
            test = d.record.test  # the latest test evaluation
            if test is not None:
                parts.append(Text(f"test (best weights, epoch {test.epoch}): top-1 {pct(test.top1)}  "
                                  f"top-5 {pct(test.top5)}  loss {num(test.loss)}", style="bold"))
            if not d.epochs:
                parts.append(Text("no epoch finished yet", style="dim"))
        self.update(Group(*parts))


class EventLog(RichLog):
    """The run's log events, newest at the bottom."""

    def __init__(self, **kwargs) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, max_lines=2000, **kwargs)
        self._shown = 0
        self._source: RunData | None = None

    def show(self, d: RunData | None) -> None:
        if d is not self._source:
            self.clear()
            self._shown = 0
            self._source = d
        if d is None:
            return
        if self._shown > len(d.logs):  # the log was trimmed: start over
            self.clear()
            self._shown = 0
        for entry in d.logs[self._shown:]:
            line = Text(d.relative_time(entry.get("time")) + " ", style="dim")
            level = entry.get("level", "info")
            style = {"warning": "yellow", "error": "bold red"}.get(level, "")
            if level != "info":
                line.append(f"{level}: ", style=style)
            line.append(str(entry.get("message", "")), style=style)
            self.write(line)
        self._shown = len(d.logs)


class FindingsPanel(Static):
    """Plain-language findings about a run from :func:`cifartui.analysis.findings`, when that exists."""

    def show(self, findings: list | None, note: str = "") -> None:
        if findings is None:
            self.update(Text(note or "findings: not available", style="dim"))
            return
        if not findings:
            self.update(Text("findings: nothing to flag", style="dim"))
            return
        t = Text()
        for i, f in enumerate(findings):
            level, title, detail = _finding_parts(f)
            if i:
                t.append("\n")
            style = {"warning": "yellow", "error": "bold red", "bad": "bold red", "good": "green", "ok": "green"}.get(level, "")
            t.append("● ", style=style or "cyan")
            t.append(title, style="bold")
            if detail:
                t.append(f" {detail}")
        self.update(t)


def _finding_parts(f) -> tuple[str, str, str]:
    """Accepts strings, dicts or objects with title/message/detail/level-ish fields."""
    if isinstance(f, str):
        return "info", f, ""
    get = (lambda k: f.get(k)) if isinstance(f, dict) else (lambda k: getattr(f, k, None))
    level = str(get("level") or get("severity") or get("kind") or "info")
    title = str(get("title") or get("summary") or get("message") or get("text") or f)
    detail = get("detail") or get("details") or get("advice") or get("hint") or ""
    if get("message") and get("title") and get("message") != title:
        detail = detail or get("message")
    return level, title, str(detail)
