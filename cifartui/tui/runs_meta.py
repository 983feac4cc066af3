"""The Runs screen's keys for what users say about runs, and its filter: ``t`` tags, ``n`` note, ``a`` archive,
``Del`` to the trash (confirmed), ``A`` shows archived runs; ``/`` takes the query of ``cifartui runs --filter``.

A mixin of :class:`cifartui.tui.screens.runs.RunsScreen` (which keeps the table); the files are written by the
torch-free store (``record.meta``, ``record.trash``), the same code the CLI runs.
"""

from __future__ import annotations

from pathlib import Path

from textual.binding import Binding

from cifartui.errors import UserError
from cifartui.record.query import Query, parse_query
from cifartui.record.store import RunSummary

# One footer entry for the four ("t n a Del Tag/note/archive/delete"): the Runs footer was full at 160 columns,
# four more entries would push the app's own keys (? Keys, q Quit) off it. ? lists each key on its own.
_GROUP = Binding.Group("Tag/note/archive/delete")
META_BINDINGS = [
    Binding("t", "tag", "Tag", group=_GROUP),
    Binding("n", "note", "Note", group=_GROUP),
    Binding("a", "archive", "Archive", group=_GROUP, tooltip="hide the run (A shows archived runs; a again unarchives)"),
    Binding("delete", "delete", "Delete", key_display="Del", group=_GROUP,
            tooltip="move the run to <root>/.trash (confirmed)"),
    Binding("A", "toggle_archived", "Show archived", key_display="A", show=False),
]
FILTER_PLACEHOLDER = ("filter: tag:NAME status:completed model:resnet* best_val>0.8 cfg.train.lr=1e-4 or words "
                      "(/ focuses, escape clears)")


def parse_filter(text: str) -> Query:
    def config_keys() -> list[str]:  # asked only for a cfg term: other filters never import pydantic (~0.2 s)
        from cifartui.config import dotted_keys

        return dotted_keys()

    return parse_query(text, config_keys)


class RunMetaActions:
    """Needs from the screen: ``_highlighted()``, ``reload()``, ``_fill()``, ``cifar``, ``show_archived``."""

    show_archived: bool

    def _meta_target(self) -> RunSummary | None:
        r = self._highlighted()  # type: ignore[attr-defined]
        if r is None:
            self.notify("no run highlighted", severity="warning")  # type: ignore[attr-defined]
        return r

    def _write(self, change, *args) -> bool:
        try:
            change(*args)
        except (UserError, OSError) as exc:
            self.notify(str(exc), severity="error", timeout=10)  # type: ignore[attr-defined]
            return False
        self.reload()  # type: ignore[attr-defined]
        return True

    def action_tag(self) -> None:
        from cifartui.record.meta import check_tag, set_tags
        from cifartui.tui.screens.dialogs import PromptScreen

        r = self._meta_target()
        if r is None:
            return

        def check(text: str) -> str:
            try:
                for tag in text.split():
                    check_tag(tag)
            except UserError as exc:
                return str(exc)
            return ""

        def done(text: str | None) -> None:
            if text is not None and text.split() != r.tags:
                self._write(set_tags, Path(r.path), text.split())

        self.app.push_screen(PromptScreen(  # type: ignore[attr-defined]
            f"Tags of {r.id}", " ".join(r.tags), "Space-separated; an empty line removes them all. "
            "Filter by one with / then tag:NAME.", check), done)

    def action_note(self) -> None:
        from cifartui.record.meta import set_note
        from cifartui.tui.screens.dialogs import PromptScreen

        r = self._meta_target()
        if r is None:
            return
        shown = " ".join(r.note.splitlines())  # one line here; a note written by the CLI keeps its lines until edited

        def done(text: str | None) -> None:
            if text is not None and text != shown:
                self._write(set_note, Path(r.path), text)

        self.app.push_screen(PromptScreen(f"Note on {r.id}", shown, "What this run was about, what you learned; "
                                          "an empty line clears it."), done)  # type: ignore[attr-defined]

    def action_archive(self) -> None:
        from cifartui.record.meta import set_archived

        r = self._meta_target()
        if r is None or not self._write(set_archived, Path(r.path), not r.archived):
            return
        hint = "" if self.show_archived else " (A shows archived runs)"
        self.notify(f"{'unarchived' if r.archived else 'archived'} {r.id}{hint}")  # type: ignore[attr-defined]

    def action_toggle_archived(self) -> None:
        self.show_archived = not self.show_archived
        self._fill()  # type: ignore[attr-defined]

    def action_delete(self) -> None:
        from cifartui.record.trash import move_to_trash, trash_of
        from cifartui.tui.screens.dialogs import ConfirmScreen

        r = self._meta_target()
        if r is None:
            return
        if r.status == "running":
            self.notify(f"{r.id} is running: stop it first (x on its dashboard), then delete it",  # type: ignore[attr-defined]
                        severity="warning")
            return
        trash = trash_of(Path(r.path).parent)

        def done(choice: str | None) -> None:
            if choice == "trash" and self._write(move_to_trash, Path(r.path)):
                self.notify(f"moved {r.id} to {trash} (cifartui runs restore {r.id} brings it back)")  # type: ignore[attr-defined]

        self.app.push_screen(ConfirmScreen(  # type: ignore[attr-defined]
            "Move this run to the trash?",
            f"{r.id}\nto {trash}/ ; `cifartui runs restore {r.id}` brings it back, `rm -rf {trash}` deletes it for good.",
            [("trash", "Move to trash"), ("cancel", "Cancel")]), done)
