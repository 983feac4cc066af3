"""A plotext figure straight to Textual strips, without the ANSI round trip.

textual-plotext draws a chart by having plotext write its character matrix out as one ANSI string
(``set_canvas``), parsing that back into a Rich ``Text`` (``Text.from_ansi``) and letting Textual split the
text into lines of segments. Measured on this machine (3 charts of 53x24, cProfile): of ~43 ms a chart,
only ~10 ms is plotext laying out the plot; the encode, decode and split make up the rest. Here the
matrix plotext has just built is read cell by cell and runs of one colour become one segment.

The colours go through plotext's own ANSI codes once per distinct (colour, style, background) and are
cached as Rich styles, so the result is the cells the ANSI path produces (tested against it).
"""

from __future__ import annotations

from plotext import _utility as plotext_utility
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

_STYLES: dict[tuple[str, str, str], Style] = {}


def _style(fullground, style, background) -> Style:
    key = (repr(fullground), repr(style), repr(background))  # rgb colours come as lists
    cached = _STYLES.get(key)
    if cached is None:
        ansi = plotext_utility.colors_to_ansi(fullground, style, background)
        spans = Text.from_ansi(ansi + "x").spans
        cached = _STYLES[key] = spans[0].style if spans else Style()  # type: ignore[assignment]
    return cached


def figure_strips(figure, width: int, height: int, base: Style) -> list[Strip]:
    """Lay out ``figure`` (a plotext figure sized ``width`` x ``height``) and return its lines as strips."""
    figure._set_sizes()
    figure._build_matrix()
    matrix = figure.monitor.matrix
    strips = []
    for row in reversed(range(matrix.rows)):  # plotext's row 0 is the bottom line
        markers, fgs, styles, bgs = matrix.marker[row], matrix.fullground[row], matrix.style[row], matrix.background[row]
        segments: list[Segment] = []
        start = 0
        for col in range(1, matrix.cols + 1):
            if col == matrix.cols or fgs[col] != fgs[start] or styles[col] != styles[start] or bgs[col] != bgs[start]:
                segments.append(Segment("".join(markers[start:col]), base + _style(fgs[start], styles[start], bgs[start])))
                start = col
        strips.append(Strip(list(Segment.simplify(segments))).crop_extend(0, width, base))
    blank = Strip.blank(width, base)
    return (strips + [blank] * height)[:height]
