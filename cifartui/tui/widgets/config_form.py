"""A form built from the pydantic config schema: one row per field, sections per sub-model.

``Literal`` fields and booleans become selects; everything else an input whose text is parsed by the
field's type. The whole config is validated on every change and pydantic's errors are shown under
the fields they belong to, before anything can start.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel, ValidationError
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Label, Select, Static

from cifartui.config import Config
from cifartui.tui.formatting import fmt_value

NONE_TEXT = ""


@dataclass
class FieldSpec:
    path: str  # dotted, e.g. train.lr
    kind: str  # choice | bool | int | float | str | boolstr | list
    optional: bool
    choices: tuple[Any, ...] = ()
    hint: str = ""
    help: str = ""  # the schema's Field(description=...): a short line on what the field does

    @property
    def widget_id(self) -> str:
        return "f-" + self.path.replace(".", "--")


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _kind(tp: Any) -> tuple[str, bool, tuple]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        optional = len(non_none) < len(args)
        if set(non_none) == {bool, str}:
            return "boolstr", optional, ()
        if len(non_none) == 1:
            kind, _, choices = _kind(non_none[0])
            return kind, optional, choices
        return "str", optional, ()
    if origin is Literal:
        return "choice", False, args
    if origin is list:
        return "list", False, ()
    if tp is bool:
        return "bool", False, (True, False)
    if tp is int:
        return "int", False, ()
    if tp is float:
        return "float", False, ()
    return "str", False, ()


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


def _hint(kind: str, optional: bool, metadata: list) -> str:
    parts = [{"int": "integer", "float": "number", "str": "text", "boolstr": "true/false or a tag",
              "list": "comma-separated names"}.get(kind, "")]
    for m in metadata:
        if isinstance(m, at.Gt):
            parts.append(f"> {_num(m.gt)}")
        elif isinstance(m, at.Ge):
            parts.append(f">= {_num(m.ge)}")
        elif isinstance(m, at.Lt):
            parts.append(f"< {_num(m.lt)}")
        elif isinstance(m, at.Le):
            parts.append(f"<= {_num(m.le)}")
    if optional:
        parts.append("empty = none")
    return ", ".join(p for p in parts if p)


def schema_fields(model: type[BaseModel] = Config, prefix: str = "") -> list[FieldSpec]:
    """Every leaf field of the schema, in declaration order (sub-models after the top-level scalars)."""
    leaves, sections = [], []
    for name, info in model.model_fields.items():
        if _is_model(info.annotation):
            sections.extend(schema_fields(info.annotation, f"{prefix}{name}."))
            continue
        kind, optional, choices = _kind(info.annotation)
        leaves.append(FieldSpec(f"{prefix}{name}", kind, optional, tuple(choices), _hint(kind, optional, info.metadata),
                                info.description or ""))
    return leaves + sections


def get_dotted(data: dict, path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _set_dotted(data: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


class FieldError(Exception):
    pass


def parse_text(spec: FieldSpec, text: str) -> Any:
    """The value a field's text stands for; pydantic does the range checks afterwards."""
    raw = text.strip()
    if raw == NONE_TEXT or raw.lower() in ("none", "null", "~"):
        if spec.optional:
            return None
        if spec.kind in ("str",) and raw == "":
            return ""
        raise FieldError("a value is required")
    if spec.kind == "int":
        try:
            value = float(raw.replace("_", ""))
        except ValueError:
            raise FieldError(f"{raw!r} is not an integer") from None
        if value != int(value):
            raise FieldError(f"{raw!r} is not an integer")
        return int(value)
    if spec.kind == "float":
        try:
            return float(raw.replace("_", ""))
        except ValueError:
            raise FieldError(f"{raw!r} is not a number (e.g. 3e-4)") from None
    if spec.kind == "boolstr":
        low = raw.lower()
        if low in ("true", "yes", "on"):
            return True
        if low in ("false", "no", "off"):
            return False
        return raw
    if spec.kind == "list":
        return [p.strip() for p in raw.split(",") if p.strip()] or None
    return raw


class BoolField(Static, can_focus=True):
    """A one-line true/false toggle (space, enter or a click); lighter than a select or a switch."""

    BINDINGS = [Binding("space,enter", "toggle", "Toggle", show=False)]
    value: reactive[bool] = reactive(False)

    class Changed(Message):
        def __init__(self, field: "BoolField", value: bool) -> None:
            super().__init__()
            self.field, self.value = field, value

    def render(self) -> Text:
        return Text("[x] true" if self.value else "[ ] false")  # Text: the brackets are not markup

    def watch_value(self, value: bool) -> None:
        self.post_message(self.Changed(self, value))

    def action_toggle(self) -> None:
        self.value = not self.value

    def on_click(self) -> None:
        self.action_toggle()


class ConfigForm(VerticalScroll):
    """Emits :class:`ConfigForm.Changed` with the validated config (or the errors) on every edit."""

    class Changed(Message):
        def __init__(self, form: "ConfigForm", config: Config | None, errors: dict[str, str]) -> None:
            super().__init__()
            self.form, self.config, self.errors = form, config, errors

    class FieldFocused(Message):
        """A field took the focus: the screen shows its help (``spec.help``, ``spec.hint``)."""

        def __init__(self, spec: FieldSpec) -> None:
            super().__init__()
            self.spec = spec

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.specs = schema_fields()
        self.by_id = {s.widget_id: s for s in self.specs}
        self.config: Config | None = None
        self.errors: dict[str, str] = {}
        self._loading = False
        self._pending = False
        self._shown_errors: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        section = None
        for spec in self.specs:
            sec = spec.path.split(".")[0] if "." in spec.path else "run"
            if sec != section:
                section = sec
                yield Label(sec, classes="form-section")
            # a two-column grid (label, input): no container per row, fewer widgets to style
            label = Label(spec.path.split(".")[-1], classes="field-label", id=f"lbl-{spec.widget_id}")
            if spec.kind == "bool":
                field = BoolField(id=spec.widget_id, classes="field-input field-bool")
            elif spec.kind == "choice":
                options = [(fmt_value(c), c) for c in spec.choices]
                field = Select(options, allow_blank=False, id=spec.widget_id, compact=True, classes="field-input")
            else:
                field = Input(placeholder=spec.hint, id=spec.widget_id, compact=True, classes="field-input")
            if spec.help:  # on hover; the focused field's help also shows in the screen's side panel
                label.tooltip = field.tooltip = spec.help
            yield label
            yield field

    # -- values -----------------------------------------------------------------------------------
    def load(self, cfg: Config) -> None:
        """Fill every field from ``cfg`` (no change events while filling)."""
        data = cfg.model_dump(mode="json")
        self._loading = True
        try:
            for spec in self.specs:
                value = get_dotted(data, spec.path)
                widget = self.query_one(f"#{spec.widget_id}")
                if isinstance(widget, BoolField):
                    widget.value = bool(value)
                elif isinstance(widget, Select):
                    widget.value = value
                else:
                    widget.value = fmt_value(value)
        finally:
            self._loading = False
        self.validate_now()

    def load_data(self, data: dict) -> None:
        """Fill from raw (possibly invalid) YAML data over the defaults, so its errors show in place."""
        defaults = Config().model_dump(mode="json")
        self._loading = True
        try:
            for spec in self.specs:
                value = get_dotted(data, spec.path)
                if value is None and not spec.optional:
                    value = get_dotted(defaults, spec.path)
                widget = self.query_one(f"#{spec.widget_id}")
                if isinstance(widget, BoolField):
                    widget.value = bool(value)
                elif isinstance(widget, Select):
                    if value in spec.choices:
                        widget.value = value
                    else:
                        widget.value = get_dotted(defaults, spec.path)
                else:
                    widget.value = fmt_value(value)
        finally:
            self._loading = False
        self.validate_now()

    def data(self) -> tuple[dict, dict[str, str]]:
        out: dict = {}
        errors: dict[str, str] = {}
        for spec in self.specs:
            widget = self.query_one(f"#{spec.widget_id}")
            if isinstance(widget, (Select, BoolField)):
                value = widget.value
            else:
                try:
                    value = parse_text(spec, widget.value)
                except FieldError as exc:
                    errors[spec.path] = str(exc)
                    continue
            _set_dotted(out, spec.path, value)
        return out, errors

    def validate_now(self) -> None:
        data, errors = self.data()
        cfg = None
        try:
            cfg = Config.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                path = ".".join(str(p) for p in err["loc"])
                if path not in errors:
                    msg = err["msg"]
                    errors[path] = msg[0].lower() + msg[1:]
        if errors:
            cfg = None
        self.config, self.errors = cfg, errors
        for spec in self.specs:  # touch only the fields whose error changed (styles are costly)
            msg = errors.get(spec.path, "")
            if self._shown_errors.get(spec.path, "") == msg:
                continue
            self.query_one(f"#lbl-{spec.widget_id}").set_class(bool(msg), "-invalid")
            boxes = self.query(f"#err-{spec.widget_id}")
            if msg and boxes:
                boxes.first(Static).update(f"↑ {msg}")
            elif msg:  # error lines are mounted only while there is an error
                widget = self.query_one(f"#{spec.widget_id}")
                self.mount(Static(f"↑ {msg}", id=f"err-{spec.widget_id}", classes="field-error"), after=widget)
            else:
                boxes.remove()
        self._shown_errors = dict(errors)
        self.post_message(self.Changed(self, cfg, errors))

    def focus_field(self, path: str) -> None:
        spec = next((s for s in self.specs if s.path == path), None)
        if spec is not None:
            widget = self.query_one(f"#{spec.widget_id}")
            widget.focus()
            self.scroll_to_widget(widget)

    def _schedule(self) -> None:
        # A burst of change events (loading a file fills every field) is validated once.
        if not self._pending:
            self._pending = True
            self.call_after_refresh(self._validate_pending)

    def _validate_pending(self) -> None:
        self._pending = False
        self.validate_now()

    def on_descendant_focus(self, event) -> None:
        spec = self.by_id.get(getattr(event.widget, "id", None) or "")
        if spec is None and event.widget.parent is not None:  # a Select's inner parts
            spec = self.by_id.get(event.widget.parent.id or "")
        if spec is not None:
            self.post_message(self.FieldFocused(spec))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._schedule()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._schedule()

    def on_bool_field_changed(self, event: BoolField.Changed) -> None:
        event.stop()
        self._schedule()
