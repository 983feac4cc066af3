"""The dashboard's GPU panel: one line per GPU of the run (utilisation, memory, temperature, power) while it
trains on this host, the "input-bound?" hint, and the peaks the run recorded once it has ended. Hidden when
there is nothing to show (no NVML, a CPU run, another host)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from cifartui.gpustats import GpuReading
from cifartui.tui.gpuwatch import GpuView


def _gib(mb: float | None) -> str:
    return "?" if mb is None else f"{mb / 1024:.1f}"


def _figure(value: float | None, unit: str, fmt: str = ".0f") -> str:
    return "-" if value is None else f"{value:{fmt}}{unit}"


def _util_style(util: float | None) -> str:
    if util is None:
        return ""
    return "bold green" if util >= 80 else ("yellow" if util >= 50 else "bold red")


class GpuPanel(Static):
    def show(self, view: GpuView | None, peak: dict[str, Any] | None = None) -> None:
        """Live figures (``view``), else the recorded peaks of an ended run (``run_ended.gpu_peak``), else hidden."""
        if view is not None and view.readings:
            self.update(self._live(view.readings, view.hint))
            self.display = True
        elif peak and peak.get("gpus"):
            self.update(self._peaks(peak))
            self.display = True
        else:
            self.display = False

    @staticmethod
    def _live(readings: list[GpuReading], hint: str) -> Text:
        t = Text()
        for i, r in enumerate(readings):
            if i:
                t.append("\n")
            t.append(f"GPU{r.index} ", style="dim")
            t.append(f"{r.name}  ", style="bold")
            t.append("util ", style="dim")
            t.append(_figure(r.util, "%").rjust(4), style=_util_style(r.util))
            t.append("  memory ", style="dim")
            t.append(f"{_gib(r.memory_used_mb)} / {_gib(r.memory_total_mb)} GiB")
            t.append("  ", style="dim")
            t.append(_figure(r.temperature_c, "°C"))
            t.append("  ")
            t.append(_figure(r.power_w, " W"))
        if hint:
            t.append("\n" + hint, style="bold yellow")
        return t

    @staticmethod
    def _peaks(peak: dict[str, Any]) -> Text:
        t = Text()
        for i, g in enumerate(peak.get("gpus") or []):
            if not isinstance(g, dict):
                continue
            if i:
                t.append("\n")
            t.append(f"GPU{g.get('index', i)} peak ", style="dim")
            t.append(f"{g.get('name', '')}  ", style="bold")
            t.append(f"util max {_figure(g.get('util_max'), '%')} (mean {_figure(g.get('util_mean'), '%')})  ")
            t.append(f"memory max {_gib(g.get('memory_used_max_mb'))} / {_gib(g.get('memory_total_mb'))} GiB  ")
            t.append(f"{_figure(g.get('temperature_max_c'), '°C')}  {_figure(g.get('power_max_w'), ' W')}")
        return t
