"""The confusion matrix as a Line-API scroll view.

Only the visible rows are rendered (``render_line``), and each row's cells are rendered once into a
cached :class:`Strip` for the current zoom/mode/order; moving the cursor re-renders one row and the
header, not the matrix. The row labels (true class) and the column header (predicted class) stay in
place while the cells scroll. A 100x100 matrix therefore paints as fast as a 10x10 one.

``diverging=True`` shows a matrix of changes (the Diff screen's B minus A) with the same navigation: a cell
is blue where B does better (more right on the diagonal, fewer mistakes off it) and red where it does worse,
deeper the larger the change; percentages are of the row's images (``support``).
"""

from __future__ import annotations

import math

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

ZOOMS = (1, 2, 4, 5, 6, 8)  # cell widths; from 4 up the cells show numbers
HEADER = 1

_BASE = (30, 32, 40)
_OFF = (214, 69, 65)
_DIAG = (46, 160, 90)
_BLOCK = (44, 48, 70)
_BETTER = (66, 133, 230)  # diverging mode: blue and red (told apart with the commonest colour blindness too)
_WORSE = _OFF


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    t = max(0.0, min(1.0, t))
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b))
    return f"#{r:02x}{g:02x}{bl:02x}"


class ConfusionMatrix(ScrollView, can_focus=True):
    """Rows: true class, columns: predicted class, both in the same display ``order``."""

    BINDINGS = [
        Binding("up,k", "move(-1, 0)", "Up", show=False),
        Binding("down,j", "move(1, 0)", "Down", show=False),
        Binding("left,h", "move(0, -1)", "Left", show=False),
        Binding("right,l", "move(0, 1)", "Right", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(0)", "First", show=False),
        Binding("end", "edge(1)", "Last", show=False),
        Binding("plus,equals_sign", "zoom(1)", "Zoom in", key_display="+"),
        Binding("minus", "zoom(-1)", "Zoom out", key_display="-"),
        Binding("f", "fit", "Fit"),
        Binding("enter", "select", "Drill down"),
    ]

    DEFAULT_CSS = """
    ConfusionMatrix { background: $surface; }
    """

    cursor: reactive[tuple[int, int]] = reactive((0, 0), always_update=True, repaint=False)

    class CursorMoved(Message):
        def __init__(self, matrix: "ConfusionMatrix", true: int, pred: int) -> None:
            super().__init__()
            self.matrix, self.true, self.pred = matrix, true, pred

    class CellSelected(Message):
        def __init__(self, matrix: "ConfusionMatrix", true: int, pred: int) -> None:
            super().__init__()
            self.matrix, self.true, self.pred = matrix, true, pred

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.confusion = np.zeros((0, 0), dtype=np.int64)
        self.names: list[str] = []
        self.order: list[int] = []
        self.blocks: list[int] | None = None
        self.normalise = False
        self.cell_w = 4
        self.fit_mode = True
        self._norm = np.zeros((0, 0))
        self._cache: dict[int, Strip] = {}  # row -> its cells at the current zoom/mode/order
        self._lines: dict[tuple, Strip] = {}  # (row, scroll x, width) -> the finished line
        self.label_w = 8
        self.diverging = False
        self._scale = 1  # diverging mode: the largest |change|, the deepest colour

    # -- data -------------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.order)

    def set_data(self, confusion: np.ndarray, names: list[str], order: list[int] | None = None,
                 normalise: bool | None = None, blocks: list[int] | None = None, diverging: bool = False,
                 support: np.ndarray | None = None) -> None:
        """New matrix / order / mode. The cursor stays on the same (true, pred) classes. ``diverging``: a matrix of
        signed changes, whose rows' images are ``support`` (its own rows sum to zero)."""
        keep = self.cursor_classes() if self.n else None
        c = np.asarray(confusion)
        self.confusion = c
        self.names = [names[i] if i < len(names) else str(i) for i in range(c.shape[0])]
        self.order = list(order) if order is not None else list(range(c.shape[0]))
        self.blocks = blocks
        if normalise is not None:
            self.normalise = normalise
        self.diverging = diverging
        rows = (np.asarray(support) if support is not None else c.sum(1)).reshape(-1, 1).astype(np.float64)
        self._norm = c / np.maximum(rows, 1)
        self._scale = max(1, int(np.abs(c).max(initial=0)))
        longest = max((len(x) for x in self.names), default=4)
        self.label_w = min(max(longest, 6), 16) + 1
        self._relayout()
        if keep is not None and keep[0] in self.order and keep[1] in self.order:
            self.move_to_classes(*keep)
        else:
            self.set_cursor(0, 0)

    def set_normalise(self, normalise: bool) -> None:
        self.normalise = normalise
        self._clear_cache()
        self.refresh()

    def _clear_cache(self) -> None:
        self._cache.clear()
        self._lines.clear()

    def cursor_classes(self) -> tuple[int, int]:
        r, c = self.cursor
        if not self.n:
            return (0, 0)
        return self.order[min(r, self.n - 1)], self.order[min(c, self.n - 1)]

    def move_to_classes(self, true: int, pred: int) -> None:
        pos = {k: i for i, k in enumerate(self.order)}
        if true in pos and pred in pos:
            self.set_cursor(pos[true], pos[pred])

    # -- geometry ---------------------------------------------------------------------------------
    @property
    def view(self) -> Size:
        """The visible cells area (without the scrollbars)."""
        return self.scrollable_content_region.size

    def _fit_width(self) -> int:
        avail = max(1, self.view.width - self.label_w)
        best = ZOOMS[0]
        for z in ZOOMS:
            if z * max(1, self.n) <= avail:
                best = z
        return best

    def _relayout(self) -> None:
        if self.fit_mode and self.size.width:
            self.cell_w = self._fit_width()
        self._clear_cache()
        self.virtual_size = Size(self.label_w + self.n * self.cell_w, self.n + HEADER)
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self._relayout()
        self._scroll_cursor_visible()

    def set_cursor(self, row: int, col: int) -> None:
        if not self.n:
            return
        row = max(0, min(self.n - 1, row))
        col = max(0, min(self.n - 1, col))
        old = self.cursor
        before = self.scroll_offset
        self.cursor = (row, col)
        self._scroll_cursor_visible()
        if old != self.cursor:
            if self.scroll_offset != before:
                self.refresh()
            else:  # repaint only the header and the two rows the cursor left and entered
                for line in {0, old[0] - before.y + HEADER, row - before.y + HEADER}:
                    if 0 <= line < self.view.height:
                        self.refresh(Region(0, line, self.view.width, 1))
        t, p = self.cursor_classes()
        self.post_message(self.CursorMoved(self, t, p))

    def _scroll_cursor_visible(self) -> None:
        if not self.n or not self.view.height:
            return
        row, col = self.cursor
        rows_visible = max(1, self.view.height - HEADER)
        cols_chars = max(1, self.view.width - self.label_w)
        y, x = self.scroll_offset.y, self.scroll_offset.x
        if row < y:
            y = row
        elif row >= y + rows_visible:
            y = row - rows_visible + 1
        x0, x1 = col * self.cell_w, (col + 1) * self.cell_w
        if x0 < x:
            x = x0
        elif x1 > x + cols_chars:
            x = x1 - cols_chars
        if (x, y) != (self.scroll_offset.x, self.scroll_offset.y):
            self.scroll_to(x=x, y=y, animate=False, force=True)

    # -- actions ----------------------------------------------------------------------------------
    def action_move(self, dr: int, dc: int) -> None:
        r, c = self.cursor
        self.set_cursor(r + dr, c + dc)

    def action_page(self, direction: int) -> None:
        r, c = self.cursor
        self.set_cursor(r + direction * max(1, self.view.height - HEADER - 1), c)

    def action_edge(self, end: int) -> None:
        r, c = self.cursor
        self.set_cursor(self.n - 1 if end else 0, c)

    def action_zoom(self, step: int) -> None:
        i = min(range(len(ZOOMS)), key=lambda k: abs(ZOOMS[k] - self.cell_w))
        self.fit_mode = False
        self.cell_w = ZOOMS[max(0, min(len(ZOOMS) - 1, i + step))]
        self._relayout()
        self._scroll_cursor_visible()

    def action_fit(self) -> None:
        self.fit_mode = True
        self._relayout()
        self._scroll_cursor_visible()

    def action_select(self) -> None:
        if self.n:
            t, p = self.cursor_classes()
            self.post_message(self.CellSelected(self, t, p))

    def on_click(self, event: events.Click) -> None:
        if not self.n:
            return
        x, y = event.x, event.y
        if y < HEADER or x < self.label_w:
            return
        row = y - HEADER + self.scroll_offset.y
        col = (x - self.label_w + self.scroll_offset.x) // self.cell_w
        if 0 <= row < self.n and 0 <= col < self.n:
            if (row, col) == self.cursor:
                self.action_select()
            else:
                self.set_cursor(row, col)

    # -- rendering --------------------------------------------------------------------------------
    def _cell(self, r: int, c: int) -> tuple[str, Style]:
        i, j = self.order[r], self.order[c]
        count = int(self.confusion[i, j])
        share = float(self._norm[i, j])
        w = self.cell_w
        if count != 0 and self.diverging:
            return self._change_cell(i, j, count, share)
        if count == 0:
            bg = _mix(_BASE, _BLOCK, 1.0) if self.blocks is not None and self.blocks[r] == self.blocks[c] else _mix(_BASE, _BASE, 0)
            text = ("·".rjust(w) if w >= 2 else " ")
            return text, Style(color="#5a5f6e", bgcolor=bg)
        target = _DIAG if i == j else _OFF
        t = math.sqrt(share) if i != j else 0.25 + 0.75 * share
        bg = _mix(_BASE, target, t)
        fg = "#101010" if t > 0.6 else "#f0f0f0"
        if w < 4:
            return " " * w, Style(bgcolor=bg, color=fg)
        if self.normalise:
            text = f"{100 * share:.0f}"
        else:
            text = str(count) if len(str(count)) < w else "+" * (w - 1)
        return text.rjust(w), Style(bgcolor=bg, color=fg, bold=i == j)

    def _change_cell(self, i: int, j: int, change: int, share: float) -> tuple[str, Style]:
        better = (change > 0) == (i == j)  # more right answers, or fewer of this mistake
        t = 0.3 + 0.7 * math.sqrt(abs(change) / self._scale)
        bg = _mix(_BASE, _BETTER if better else _WORSE, t)
        fg = "#101010" if t > 0.7 else "#f0f0f0"
        w = self.cell_w
        if w < 4:
            return " " * w, Style(bgcolor=bg, color=fg)
        text = f"{100 * share:+.0f}" if self.normalise else f"{change:+d}"
        text = text if len(text) < w else ("+" if change > 0 else "-") * (w - 1)
        return text.rjust(w), Style(bgcolor=bg, color=fg, bold=i == j)

    def _row_cells(self, r: int) -> Strip:
        strip = self._cache.get(r)
        if strip is None:
            segs = [Segment(*self._cell(r, c)) for c in range(self.n)]
            strip = Strip(segs, self.n * self.cell_w)
            if len(self._cache) > 512:
                self._clear_cache()
            self._cache[r] = strip
        return strip

    def _label(self, r: int) -> Segment:
        name = self.names[self.order[r]]
        w = self.label_w - 1
        text = (name if len(name) <= w else name[: w - 1] + "…").ljust(w) + " "
        style = Style(color="#c8ccd8")
        if self.blocks is not None and self.blocks[r] % 2:
            style = Style(color="#9fb6ff")
        if r == self.cursor[0]:
            style = Style(color="#101010", bgcolor="#e8c547", bold=True)
        return Segment(text, style)

    def _header(self, width: int) -> Strip:
        n, w = self.n, self.cell_w
        chars = [" "] * (n * w)
        digits = len(str(max(0, n - 1)))
        step = max(1, math.ceil((digits + 1) / w))
        for c in range(0, n, step):
            label = str(self.order[c]).rjust(min(w, digits) if w >= digits else digits)
            start = c * w + (w - len(label) if w >= len(label) else 0)
            for k, ch in enumerate(label):
                if 0 <= start + k < len(chars):
                    chars[start + k] = ch
        text = "".join(chars)
        dim = Style(color="#8a90a0")
        cur = self.cursor[1]
        segs = [Segment(text[: cur * w], dim), Segment(text[cur * w:(cur + 1) * w], Style(color="#101010", bgcolor="#e8c547", bold=True)),
                Segment(text[(cur + 1) * w:], dim)]
        cells = Strip(segs, n * w).crop(self.scroll_offset.x, self.scroll_offset.x + max(0, width - self.label_w))
        corner = ("true ↓ pred →" if self.label_w >= 14 else "true\\pred")[: self.label_w - 1].ljust(self.label_w)
        return Strip.join([Strip([Segment(corner, Style(color="#8a90a0", italic=True))], self.label_w), cells])

    def render_line(self, y: int) -> Strip:
        width = self.view.width
        if not self.n:
            return Strip.blank(width, self.rich_style)
        if y < HEADER:
            return self._header(width).extend_cell_length(width, self.rich_style).crop(0, width)
        r = y - HEADER + self.scroll_offset.y
        if r >= self.n:
            return Strip.blank(width, self.rich_style)
        x0 = self.scroll_offset.x
        key = (r, x0, width)
        if r != self.cursor[0]:
            line = self._lines.get(key)
            if line is not None:
                return line
        cells = self._row_cells(r)
        if r == self.cursor[0]:
            c = self.cursor[1]
            text, style = self._cell(r, c)
            cursor_style = style + Style(bgcolor="#e8c547", color="#101010", bold=True)
            if text.strip() in ("", "·"):
                text = ("◆".rjust(self.cell_w) if self.cell_w > 1 else "◆")
            before = cells.crop(0, c * self.cell_w)
            after = cells.crop((c + 1) * self.cell_w, self.n * self.cell_w)
            cells = Strip.join([before, Strip([Segment(text, cursor_style)], self.cell_w), after])
        visible = cells.crop(x0, x0 + max(0, width - self.label_w))
        label = Strip([self._label(r)], self.label_w)
        line = Strip.join([label, visible]).extend_cell_length(width, self.rich_style).crop(0, width)
        if r != self.cursor[0]:
            if len(self._lines) > 2048:
                self._lines.clear()
            self._lines[key] = line
        return line
