"""Modal dialogs: confirm, help (every binding), open a config, save a config as."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option


class ConfirmScreen(ModalScreen[str | None]):
    """A question with buttons; dismisses with the chosen button's id (``None`` on escape).

    ``keys`` maps a key to a choice id (``{"b": "background"}``); by default ``y`` picks the first choice."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, message: str, choices: list[tuple[str, str]] | None = None,
                 keys: dict[str, str] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.choices = choices or [("yes", "Yes"), ("no", "No")]
        self.keys = keys if keys is not None else {"y": self.choices[0][0]}

    def on_key(self, event) -> None:
        choice = self.keys.get(event.key)
        if choice is not None:
            event.stop()
            self.dismiss(choice)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.message, classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                for i, (cid, label) in enumerate(self.choices):
                    yield Button(label, id=cid, variant="primary" if i == 0 else "default", compact=True)

    def on_mount(self) -> None:
        self.query(Button).first().focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id)

    def action_cancel(self) -> None:
        self.dismiss(None)



class HelpScreen(ModalScreen[None]):
    """Every binding of every screen, grouped."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, groups: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.groups = groups

    def compose(self) -> ComposeResult:
        with Vertical(id="help", classes="dialog wide"):
            yield Label("Keys (escape closes)", classes="dialog-title")
            with VerticalScroll():
                yield Static(self._table())

    def _table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(justify="right", style="bold #e8c547", no_wrap=True)
        table.add_column()
        for title, rows in self.groups:
            table.add_row("", Text(title, style="bold underline"))
            for key, desc in rows:
                table.add_row(key, desc)
            table.add_row("", "")
        return table

    def action_close(self) -> None:
        self.dismiss(None)


class OpenConfigScreen(ModalScreen[Path | None]):
    """Pick a shipped preset, a YAML from the configs folders or a past run's config, or type a path or a
    preset name."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, configs: list[Path], runs: list[tuple[str, Path]],
                 presets: list[tuple[str, Path]] = ()) -> None:
        super().__init__()
        self.paths: list[Path] = []
        options: list[Option] = []
        for label, p in presets:
            self.paths.append(p)
            options.append(Option(f"preset  {label}"))
        for p in configs:
            self.paths.append(p)
            options.append(Option(f"config  {p}"))
        for label, p in runs:
            self.paths.append(p)
            options.append(Option(f"run     {label}"))
        self.options = options

    def compose(self) -> ComposeResult:
        with Vertical(id="open", classes="dialog wide"):
            yield Label("Open a config (enter), or type a path", classes="dialog-title")
            yield OptionList(*self.options, id="open-list", compact=True)
            yield Input(placeholder="path/to/config.yaml or a preset name", id="open-path", compact=True)
            yield Static("", id="open-error", classes="error-text")

    def on_mount(self) -> None:
        if self.options:
            self.query_one(OptionList).focus()
        else:
            self.query_one(Input).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.paths[event.option_index])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        from cifartui.presets import UnknownConfig, resolve

        try:
            p = resolve(event.value.strip())  # a path that exists wins, else a preset name
        except UnknownConfig as exc:
            self.query_one("#open-error", Static).update(str(exc))
            return
        if not p.is_file():
            self.query_one("#open-error", Static).update(f"{p}: not a file")
            return
        self.dismiss(p)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PromptScreen(ModalScreen[Any]):
    """One line of text (a run's tags, its note): dismisses with it on enter, ``None`` on escape. The base of the
    dialogs below, which say what the text means (``accept``) and name their parts (``IDS``).

    ``check`` returns an error message for text it refuses (the dialog stays open with it), or ""."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    IDS = ("prompt-dialog", "prompt-input", "prompt-error")  # the dialog, its field, its error line
    ENTER = "saves"  # what enter does, in the line under the field

    def __init__(self, title: str, value: str = "", help: str = "", check=None, placeholder: str = "") -> None:
        super().__init__()
        self.title_text, self.value, self.help_text, self.placeholder = title, value, help, placeholder
        self.check = check or (lambda text: "")

    def compose(self) -> ComposeResult:
        dialog, field, error = self.IDS
        with Vertical(id=dialog, classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            if self.help_text:
                yield Static(self.help_text, classes="dialog-body")
            yield Input(value=self.value, placeholder=self.placeholder, id=field, compact=True)
            yield Static(f"enter {self.ENTER} · escape cancels", classes="dim")
            yield Static("", id=error, classes="error-text")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def accept(self, text: str) -> tuple[Any, str]:
        """What enter dismisses with, and an error message that keeps the dialog open instead ("" when none;
        ``None`` with no message: enter does nothing)."""
        return text, self.check(text)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value, error = self.accept(event.value)
        if error:
            self.query_one(f"#{self.IDS[2]}", Static).update(error)
        elif value is not None:
            self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SaveAsScreen(PromptScreen):
    """Ask for a new file name; never overwrites an existing file. Dismisses with the path."""

    IDS = ("saveas", "save-path", "save-error")

    def __init__(self, default: str) -> None:
        super().__init__("Save the config as (a new YAML file)", default)

    def accept(self, text: str) -> tuple[Path | None, str]:
        text = text.strip()
        if not text:
            return None, ""
        p = Path(text).expanduser()
        if p.suffix not in (".yaml", ".yml"):
            p = p.with_suffix(".yaml")
        if p.exists():
            return None, f"{p} exists: pick another name (nothing is overwritten)"
        return p, ""


class QueueScreen(PromptScreen):
    """Add the form's config to the queue, optionally as a sweep; dismisses with the --sweep items.

    ``check`` validates the items (every grid point) and returns an error message, or "" when they are fine:
    a bad sweep keeps the dialog open with the reason, and nothing is queued."""

    IDS = ("queue-dialog", "queue-sweep", "queue-error")
    ENTER = "queues"

    def __init__(self, name: str, check) -> None:
        super().__init__(f"Queue {name}: a background worker trains it",
                         help="Sweep (optional): KEY=V1,V2,... separated by spaces; one run per point of the grid, "
                              "e.g. train.lr=1e-3,3e-4 train.batch_size=32,64",
                         check=check, placeholder="empty: one run, as in the form")

    def accept(self, text: str) -> tuple[list[str], str]:
        items = text.split()
        return items, self.check(items)
