"""Small text helpers shared by the screens."""

from __future__ import annotations

STATUS_STYLE = {
    "running": "bold yellow",
    "completed": "green",
    "early_stopped": "green",
    "stopped": "yellow",
    "failed": "bold red",
    "crashed": "bold red",
    "unknown": "dim",
}


def pct(v: float | None, digits: int = 2) -> str:
    return f"{100 * v:.{digits}f}%" if isinstance(v, (int, float)) and v == v else "-"


def num(v: float | None, fmt: str = ".4f") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and v == v else "-"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "--:--"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}:{(s % 3600) // 60:02d}:{s % 60:02d}"
    return f"{s // 60:d}:{s % 60:02d}"


def fmt_value(v) -> str:
    """A config value as typed in the form and shown in diffs."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v)


def short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"
