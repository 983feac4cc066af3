"""Config screen: open a YAML or a past run's config, edit it in a schema-built form, see the
difference from the file, save it as a new YAML, start training (``s``), or resume a run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from cifartui.tui.formatting import fmt_value
from cifartui.errors import UserError

# The dialogs (Open, Save as, Queue, Confirm) are imported when one opens: this screen is the first frame's.

if TYPE_CHECKING:
    from cifartui.config import Config
    from cifartui.tui.app import CifarApp
    from cifartui.tui.widgets.config_form import ConfigForm

FINE_TUNE_LR = 1e-5  # same threshold as the trainer's warning


def fine_tune_warning(cfg: Config) -> str | None:
    """The reference author's lesson: from trained weights, lower the lr 10-100x."""
    if cfg.model.checkpoint and cfg.train.lr > FINE_TUNE_LR:
        return (f"train.lr = {cfg.train.lr:g} while starting from trained weights ({cfg.model.checkpoint}).\n"
                f"Fine-tuning usually wants a 10-100x lower learning rate (e.g. 1e-5) to keep what was learned.")
    return None


class ConfigScreen(Screen):
    # Letter keys type into a focused field; there the footer shows f5 / ctrl+s instead (they always work).
    BINDINGS = [
        Binding("s", "start", "Start"),
        Binding("f5", "start_typing", "Start", priority=True),
        Binding("o", "open", "Open"),
        Binding("w", "save_as", "Save as"),
        Binding("ctrl+s", "save_as_typing", "Save as", priority=True),
        Binding("v", "toggle_side", "Diff"),
        Binding("a", "queue", "Queue/sweep", tooltip="add to the queue (optionally a sweep); a background worker trains it"),
        Binding("escape", "leave_field", "Leave field"),
    ]
    TYPING_ACTIONS = ("start_typing", "save_as_typing", "leave_field")

    def __init__(self) -> None:
        super().__init__()
        self.base: Config | None = None
        self.source_label = "defaults"
        self.source_path: Path | None = None
        self.resume_dir: Path | None = None
        self.load_error = ""
        self._pending_load: tuple | None = None
        self._ready = False
        self._start_when_ready = False

    @property
    def cifar(self) -> "CifarApp":
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(Text("Config  loading the form ...", style="bold"), id="cfg-source", classes="screen-title")
        with Horizontal(id="cfg-body"):
            if not self.cifar.progressive:
                yield _form_class()(id="cfg-form")
            with VerticalScroll(id="cfg-side"):
                yield Static(id="cfg-status")
                yield Static(id="cfg-warning", classes="warning-text")
                yield Static(id="cfg-diff")
                yield Static(id="cfg-help")
        yield Footer()

    def on_mount(self) -> None:
        if not self.cifar.progressive:
            self._form_mounted()
            return
        # The form needs pydantic and the schema (~0.3 s here): import them off the UI thread so the
        # screen paints at once, then mount the form on the UI thread.
        self.call_after_refresh(self.run_worker, self._import_form, thread=True, group="config-form",
                                exit_on_error=False)

    def _import_form(self) -> None:
        try:
            _form_class()
        except Exception as exc:  # noqa: BLE001 - a broken install: say so on the screen, not a blank form
            self.app.call_from_thread(self._form_failed, f"{type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self._mount_form)

    def _form_failed(self, message: str) -> None:
        self.query_one("#cfg-source", Static).update(
            Text(f"Config  the form could not load: {message}", style="bold red"))

    async def _mount_form(self) -> None:
        await self.query_one("#cfg-body").mount(_form_class()(id="cfg-form"), before="#cfg-side")
        self._form_mounted()

    def _form_mounted(self) -> None:
        self._ready = True
        if self._pending_load is not None:
            args, self._pending_load = self._pending_load, None
            self.load_config(*args)
        else:
            self.cifar.load_default_config(self)
        self.call_after_refresh(self.cifar.screen_ready)
        if self._start_when_ready:  # s was pressed before the form was there: do what it asked now
            self._start_when_ready = False
            self.call_after_refresh(self.action_start)

    @property
    def ready(self) -> bool:
        """The form is mounted and filled: keys that read it work."""
        return self._ready

    def _form(self) -> "ConfigForm | None":
        if not self._ready:
            self.notify("the form is still loading", severity="warning", timeout=2)
            return None
        return self.query_one("#cfg-form")

    # -- loading ------------------------------------------------------------------------------------
    def load_config(self, cfg: Config | dict | None, base: Config | None, label: str, path: Path | None = None,
                    resume_dir: Path | None = None, error: str = "") -> None:
        """Fill the form. ``cfg`` may be raw data from an invalid file: the form shows what is wrong."""
        if not self._ready:
            self._pending_load = (cfg, base, label, path, resume_dir, error)
            return
        self.base, self.source_label, self.source_path = base, label, path
        self.resume_dir, self.load_error = resume_dir, error
        from cifartui.config import Config

        form = self.query_one("#cfg-form")
        if isinstance(cfg, Config):
            form.load(cfg)
        else:
            form.load_data(cfg or {})
        self._refresh_side()

    def load_path(self, path: Path, overrides: list[str] | tuple[str, ...] = ()) -> None:
        from cifartui import config as config_mod
        from cifartui.config import ConfigError

        try:
            base = config_mod.load(path)
        except ConfigError as exc:
            data = _raw_yaml(path)
            self.load_config(data, None, _display_path(path), path, error=str(exc))
            self.notify(str(exc), title="config has errors", severity="error", timeout=8)
            return
        try:
            cfg = config_mod.load(path, list(overrides)) if overrides else base
        except ConfigError as exc:
            self.notify(str(exc), title="--set", severity="error", timeout=8)
            cfg = base
        cfg = self.cifar.adjust_root(cfg)
        self.load_config(cfg, base, _display_path(path), path)

    # -- side panel -----------------------------------------------------------------------------------
    def on_config_form_changed(self, event: "ConfigForm.Changed") -> None:
        self._refresh_side()

    def on_config_form_field_focused(self, event: "ConfigForm.FieldFocused") -> None:
        """The focused field's help (its schema description) and what it takes, under the side panel."""
        spec = event.spec
        help_text = Text(spec.path, style="bold cyan")
        if spec.help:
            help_text.append(f"\n{spec.help}")
        if spec.hint or spec.choices:
            help_text.append("\n" + (spec.hint or " | ".join(fmt_value(c) for c in spec.choices)), style="dim")
        self.query_one("#cfg-help", Static).update(help_text)

    def _refresh_side(self) -> None:
        from cifartui import config as config_mod

        form = self.query_one("#cfg-form")
        title = Text("Config  ", style="bold")
        if self.resume_dir is not None:
            title.append(f"resume {self.resume_dir.name} from last.pt", style="bold yellow")
            title.append("  (only train.epochs, early_stop_patience, log_interval, device, output.* may change)", style="dim")
        else:
            title.append(self.source_label)
        if form.errors:
            title.append(f"  ✗ {len(form.errors)} error{'s' if len(form.errors) > 1 else ''}", style="bold red")
        else:
            title.append("  ✓ valid", style="green")
            if self.base is not None and form.config is not None:
                n = len(config_mod.diff(self.base, form.config))
                title.append(f" · {n} change{'s' if n != 1 else ''} from the file (v)" if n else " · as in the file", style="dim")
        self.query_one("#cfg-source", Static).update(title)
        status = Text()
        if form.errors:
            status.append(f"✗ {len(form.errors)} error{'s' if len(form.errors) > 1 else ''}", style="bold red")
            for path, msg in list(form.errors.items())[:8]:
                status.append(f"\n  {path}: {msg}", style="red")
        else:
            verb = "resume" if self.resume_dir else "start"
            status.append(f"✓ valid: s to {verb}, w to save as", style="bold green")
        if self.load_error:
            status.append("\nas loaded from the file (fields the form cannot hold are dropped):\n", style="dim")
            status.append(self.load_error, style="red")
        self.query_one("#cfg-status", Static).update(status)
        warning = fine_tune_warning(form.config) if form.config else None
        self.query_one("#cfg-warning", Static).update(Text("⚠ " + warning, style="yellow") if warning else "")
        self.query_one("#cfg-diff", Static).update(self._diff_renderable(form.config))

    def _diff_renderable(self, cfg: Config | None):
        if cfg is None:
            return Text("")
        if self.base is None:
            return Text("no file to compare with", style="dim")
        from cifartui import config as config_mod

        changes = config_mod.diff(self.base, cfg)
        if not changes:
            return Text("no changes from the file", style="dim")
        table = Table(title=f"{len(changes)} change{'s' if len(changes) > 1 else ''} from the file", title_justify="left",
                      box=None, padding=(0, 1), show_header=True, header_style="bold")
        table.add_column("field", style="cyan", no_wrap=True)
        table.add_column("file", style="red")
        table.add_column("now", style="green")
        for key, a, b in changes:
            table.add_row(key, fmt_value(a) or "none", fmt_value(b) or "none")
        return table

    # -- actions ----------------------------------------------------------------------------------------
    @property
    def typing(self) -> bool:
        return isinstance(self.focused, Input)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.TYPING_ACTIONS:
            return self.typing
        if action in ("start", "save_as", "open", "toggle_side"):
            return not self.typing
        return True

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()

    def on_descendant_blur(self) -> None:
        self.refresh_bindings()

    def action_start_typing(self) -> None:
        self.action_start()

    def action_save_as_typing(self) -> None:
        self.action_save_as()

    def action_leave_field(self) -> None:
        self.set_focus(None)

    def action_toggle_side(self) -> None:
        self.toggle_class("-hide-side")

    def action_open(self) -> None:
        def chosen(path: Path | None) -> None:
            if path is None:
                return
            if path.name == "config.yaml" and (path.parent / "events.jsonl").exists():
                self.cifar.load_run_config(path.parent)
            else:
                self.load_path(path)

        from cifartui.tui.screens.dialogs import OpenConfigScreen

        self.app.push_screen(OpenConfigScreen(self.cifar.config_files(), self.cifar.run_configs(),
                                              self.cifar.presets_listed()), chosen)

    def _valid_config(self) -> "Config | None":
        """The form's config once validated; None (and a notice) while it is loading or has errors."""
        form = self._form()
        if form is None:
            return None
        form.validate_now()
        if form.config is None:
            self.notify("fix the errors first", severity="error")
        return form.config

    def action_save_as(self) -> None:
        cfg = self._valid_config()
        if cfg is None:
            return
        folder = Path("configs")
        if self.source_path is not None and self.source_path.parent.name == "configs":
            folder = Path(_display_path(self.source_path.parent))
        default = folder / f"{cfg.name}.yaml"
        n = 2
        while default.exists():
            default = folder / f"{cfg.name}-{n}.yaml"
            n += 1

        def chosen(path: Path | None) -> None:
            if path is None:
                return
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "x", encoding="utf-8") as f:  # "x": never overwrite
                    f.write(cfg.to_yaml())
            except OSError as exc:
                self.notify(f"cannot save {path}: {exc}", severity="error")
                return
            self.base, self.source_label, self.source_path = cfg, str(path), path
            self.load_error = ""
            self._refresh_side()
            self.notify(f"saved {path}")

        from cifartui.tui.screens.dialogs import SaveAsScreen

        self.app.push_screen(SaveAsScreen(str(default)), chosen)

    def action_start(self) -> None:
        if not self._ready:  # a key pressed while the app starts is not lost
            self._start_when_ready = True
            self.notify("starting as soon as the form has loaded", timeout=2)
            return
        form = self._form()
        if form is None:
            return
        form.validate_now()
        if form.config is None:
            first = next(iter(form.errors), None)
            self.notify(f"{first}: {form.errors[first]}" if first else "the config is not valid",
                        title="cannot start", severity="error")
            if first:
                form.focus_field(first)
            return
        if self.cifar.training:
            self.notify("a run is already training here: stop it first (x on the dashboard)", severity="warning")
            return
        cfg = form.config
        warning = fine_tune_warning(cfg)
        if warning is None:
            self._start(cfg)
            return

        def answered(choice: str | None) -> None:
            if choice == "lower":
                lowered = cfg.with_overrides(**{"train.lr": FINE_TUNE_LR})
                form.load(lowered)
                self._start(lowered)
            elif choice == "start":
                self._start(cfg)

        from cifartui.tui.screens.dialogs import ConfirmScreen

        self.app.push_screen(ConfirmScreen("Learning rate high for fine-tuning", warning,
                                           [("lower", "Use lr=1e-5 and start"), ("start", "Start anyway"), ("cancel", "Cancel")]),
                             answered)

    def action_queue(self) -> None:
        cfg = self._valid_config()
        if cfg is None:
            return

        def check(items: list[str]) -> str:
            from cifartui.queue import validate_grid

            try:
                validate_grid(cfg, items)
            except UserError as exc:
                return str(exc)
            return ""

        def chosen(items: list[str] | None) -> None:
            if items is None:
                return
            try:
                self.cifar.queue_config(cfg, items)
            except UserError as exc:
                self.notify(str(exc), title="nothing queued", severity="error", timeout=10)

        from cifartui.tui.screens.dialogs import QueueScreen

        self.app.push_screen(QueueScreen(cfg.name, check), chosen)

    def _start(self, cfg: Config) -> None:
        self.cifar.start_training(cfg, resume_dir=self.resume_dir)
        if self.resume_dir is not None:
            self.resume_dir = None
            self._refresh_side()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # enter in a field moves on to the next one
        event.stop()
        self.focus_next()


def _form_class() -> type:
    from cifartui.tui.widgets.config_form import ConfigForm

    return ConfigForm


def _raw_yaml(path: Path) -> dict[str, Any]:
    from cifartui import config as config_mod
    from cifartui.config import ConfigError

    try:
        data = config_mod.parse_yaml(path.read_text(encoding="utf-8"), str(path))
    except (ConfigError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def _display_path(path: Path) -> str:
    from cifartui.presets import PRESET_DIR

    if path.resolve().parent == PRESET_DIR:
        return f"preset {path.stem}"
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
