"""Telling the user a run ended while they look elsewhere: the terminal bell and an OSC 9 desktop notification.

Both are plain bytes on the terminal's output, so they pass through SSH; iTerm2, kitty, WezTerm, Ghostty,
Windows Terminal and foot show OSC 9 as a desktop notification, others ignore it. Inside tmux the OSC is
wrapped for passthrough (it needs ``set -g allow-passthrough on``); the bell reaches tmux's own alerts.

``CIFARTUI_ALERTS`` sets what the app sends when a run it trains or follows ends: ``on`` (default: bell and
OSC 9), ``bell`` (the bell only) or ``off`` (neither; the in-app notification still shows).
"""

from __future__ import annotations

import os
import re

SETTINGS = ("on", "bell", "off")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # no byte of the text may end or start an escape sequence


def alerts_setting(value: str | None = None) -> str:
    value = (value if value is not None else os.environ.get("CIFARTUI_ALERTS", "on")).strip().lower()
    if value in ("0", "no", "false", "none"):
        return "off"
    return value if value in SETTINGS else "on"


def terminal_alert(text: str, setting: str = "on", tmux: bool | None = None) -> str:
    """The bytes to write: BEL, then ``ESC ] 9 ; text BEL`` (wrapped for tmux); "" when alerts are off."""
    if setting == "off":
        return ""
    if setting == "bell":
        return "\a"
    clean = _CONTROL.sub(" ", text)[:200]
    osc = f"\x1b]9;{clean}\x07"
    if tmux if tmux is not None else "TMUX" in os.environ:
        osc = "\x1bPtmux;" + osc.replace("\x1b", "\x1b\x1b") + "\x1b\\"
    return "\a" + osc
