"""Images in any terminal: half-block characters (``▀`` with the top pixel as foreground and the
bottom pixel as background), two pixel rows per text line. Works over plain SSH, in tmux, anywhere
24-bit colour does; a grid of them is a Line-API scroll view that renders only the visible lines.
"""

from __future__ import annotations

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

SIZES = (8, 16, 24, 32)  # thumbnail side in pixels = cells wide, half as many lines tall


def resize(image: np.ndarray, side: int) -> np.ndarray:
    """uint8 H,W,3 to side x side: box-average when shrinking, nearest when growing."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    h, w = img.shape[:2]
    if h == side and w == side:
        return img.astype(np.uint8)
    if h % side == 0 and w % side == 0 and h >= side:
        fh, fw = h // side, w // side
        return img.reshape(side, fh, side, fw, -1).mean(axis=(1, 3)).round().astype(np.uint8)
    ys = np.minimum((np.arange(side) + 0.5) * h / side, h - 1).astype(int)
    xs = np.minimum((np.arange(side) + 0.5) * w / side, w - 1).astype(int)
    return img[ys][:, xs].astype(np.uint8)


_STYLE_CACHE: dict[tuple, Style] = {}


def _style(top, bottom) -> Style:
    key = (int(top[0]), int(top[1]), int(top[2]), int(bottom[0]), int(bottom[1]), int(bottom[2]))
    style = _STYLE_CACHE.get(key)
    if style is None:
        if len(_STYLE_CACHE) > 200_000:
            _STYLE_CACHE.clear()
        style = Style(color=Color.from_rgb(*key[:3]), bgcolor=Color.from_rgb(*key[3:]))
        _STYLE_CACHE[key] = style
    return style


def halfblock_strips(image: np.ndarray, side: int) -> list[Strip]:
    """``side // 2`` strips of ``side`` cells each."""
    img = resize(image, side)
    if side % 2:
        img = np.concatenate([img, img[-1:]], axis=0)
    out = []
    for y in range(0, img.shape[0], 2):
        top, bottom = img[y], img[y + 1]
        segs = [Segment("▀", _style(top[x], bottom[x])) for x in range(side)]
        out.append(Strip(segs, side).simplify())
    return out


class HalfBlockImage:
    """A Rich renderable of one image (for panels and tests)."""

    def __init__(self, image: np.ndarray, side: int = 32):
        self.strips = halfblock_strips(image, side)

    def __rich_console__(self, console, options):
        for strip in self.strips:
            yield from strip
            yield Segment.line()


class ThumbGrid(ScrollView, can_focus=True):
    """Thumbnails with a caption under each, laid out in as many columns as fit; a cursor selects one."""

    BINDINGS = [
        Binding("up,k", "move(0, -1)", "Up", show=False),
        Binding("down,j", "move(0, 1)", "Down", show=False),
        Binding("left,h", "move(-1, 0)", "Left", show=False),
        Binding("right,l", "move(1, 0)", "Right", show=False),
        Binding("plus,equals_sign", "size(1)", "Bigger", key_display="+"),
        Binding("minus", "size(-1)", "Smaller", key_display="-"),
    ]

    DEFAULT_CSS = """
    ThumbGrid { background: $surface; }
    """

    selected: reactive[int] = reactive(0, always_update=True, repaint=False)

    class Highlighted(Message):
        def __init__(self, grid: "ThumbGrid", index: int) -> None:
            super().__init__()
            self.grid, self.index = grid, index

    def __init__(self, *, side: int = 16, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.images: list[np.ndarray | None] = []
        self.captions: list[str] = []
        self.side = side
        self._strips: dict[tuple[int, int], list[Strip]] = {}

    def set_items(self, images: list[np.ndarray | None], captions: list[str]) -> None:
        self.images, self.captions = images, captions
        self._strips.clear()
        self.selected = 0
        self._relayout()

    # -- layout -----------------------------------------------------------------------------------
    @property
    def cell_w(self) -> int:
        return max(self.side, 9) + 1

    @property
    def cell_h(self) -> int:
        return (self.side + 1) // 2 + 1  # image lines + caption

    @property
    def columns(self) -> int:
        return max(1, (self.scrollable_content_region.width or 80) // self.cell_w)

    def _relayout(self) -> None:
        rows = -(-len(self.images) // self.columns) if self.images else 0
        self.virtual_size = Size(self.columns * self.cell_w, rows * self.cell_h)
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self._relayout()

    def _thumb(self, i: int) -> list[Strip]:
        key = (i, self.side)
        strips = self._strips.get(key)
        if strips is None:
            img = self.images[i]
            lines = (self.side + 1) // 2
            if img is None:
                strips = [Strip.blank(self.side, Style(bgcolor="#303030"))] * lines
            else:
                strips = halfblock_strips(img, self.side)
            self._strips[key] = strips
        return strips

    # -- actions ----------------------------------------------------------------------------------
    def select(self, index: int) -> None:
        if not self.images:
            return
        self.selected = max(0, min(len(self.images) - 1, index))
        row = self.selected // self.columns
        top, bottom = row * self.cell_h, (row + 1) * self.cell_h
        y = self.scroll_offset.y
        if top < y:
            self.scroll_to(y=top, animate=False, force=True)
        elif bottom > y + self.scrollable_content_region.height:
            self.scroll_to(y=bottom - self.scrollable_content_region.height, animate=False, force=True)
        self.refresh()
        self.post_message(self.Highlighted(self, self.selected))

    def action_move(self, dx: int, dy: int) -> None:
        self.select(self.selected + dx + dy * self.columns)

    def action_size(self, step: int) -> None:
        i = SIZES.index(self.side) if self.side in SIZES else 1
        self.side = SIZES[max(0, min(len(SIZES) - 1, i + step))]
        self._relayout()
        self.select(self.selected)

    def on_click(self, event: events.Click) -> None:
        col = event.x // self.cell_w
        row = (event.y + self.scroll_offset.y) // self.cell_h
        i = row * self.columns + col
        if col < self.columns and 0 <= i < len(self.images):
            self.select(i)

    # -- rendering --------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        vy = y + self.scroll_offset.y
        row, line = divmod(vy, self.cell_h)
        parts: list[Strip] = []
        for col in range(self.columns):
            i = row * self.columns + col
            if i >= len(self.images):
                break
            if line < self.cell_h - 1:
                thumb = self._thumb(i)[line]
                parts.append(thumb.extend_cell_length(self.cell_w, self.rich_style))
            else:
                cap = self.captions[i][: self.cell_w - 1].ljust(self.cell_w - 1)
                style = Style(color="#101010", bgcolor="#e8c547", bold=True) if i == self.selected else Style(color="#b0b4c0")
                parts.append(Strip([Segment(cap, style), Segment(" ", self.rich_style)], self.cell_w))
        if not parts:
            return Strip.blank(width, self.rich_style)
        return Strip.join(parts).extend_cell_length(width, self.rich_style).crop(0, width)
