"""One real terminal for the tests and the benchmarks: a private tmux server with one pane of a fixed size.

``start(command)`` runs a command in the pane (again: the old one is killed), ``keys`` types, ``screen`` reads
what the pane shows, ``wait`` polls a condition (a text on the screen, a file) until a timeout, ``kill`` ends
the server: the pane's pty closes and its processes get SIGHUP, as when an SSH link drops.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Callable


class Tmux:
    def __init__(self, name: str = "", width: int = 160, height: int = 48):
        name = name or f"cifartui-{os.getpid()}-{time.monotonic_ns()}"
        self.base = ["tmux", "-L", name, "-f", "/dev/null"]
        self.width, self.height = width, height
        self.started = False
        self.socket = ""

    def run(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=30).stdout

    def start(self, command: str) -> None:
        """Run ``command`` in the pane (a shell command line); a second call replaces what runs there."""
        if self.started:
            before = self.processes()
            self.run("respawn-pane", "-k", "-t", "t", command)
            # what ran there gets SIGHUP; cifartui then exits in order (not at once): let it finish, so its
            # exit does not take the CPU from whatever is timed next
            end = time.monotonic() + 10
            while any(Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in before) and time.monotonic() < end:
                time.sleep(0.02)
            return
        subprocess.run([*self.base, "new-session", "-d", "-s", "t", "-x", str(self.width), "-y", str(self.height),
                        command], check=True, timeout=30)
        self.started = True
        self.socket = self.run("display-message", "-p", "#{socket_path}").strip()

    def processes(self) -> list[int]:
        """The pane's process and its descendants (Linux /proc)."""
        root = self.run("display-message", "-p", "-t", "t", "#{pane_pid}").strip()
        if not root.isdigit():
            return []
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], [int(root)]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str, gap: float = 0.3) -> None:
        for key in keys:  # one at a time: Escape then s must not arrive as alt+s
            self.run("send-keys", "-t", "t", key)
            time.sleep(gap)

    def wait(self, until: str | Callable[[], object], timeout: float, what: str = "", every: float = 0.2) -> str:
        """Until the screen shows ``until`` (a text) or ``until()`` holds; returns the screen, raises otherwise."""
        check = (lambda: until in self.screen()) if isinstance(until, str) else until
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if check():
                return self.screen()
            time.sleep(every)
        if check():
            return self.screen()
        what = what or (f"{until!r} did not appear" if isinstance(until, str) else "the condition did not hold")
        raise AssertionError(f"{what} within {timeout:.0f}s; the screen:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=30)
        if self.socket:
            Path(self.socket).unlink(missing_ok=True)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
