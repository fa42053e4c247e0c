"""Terminal output for the CLI: colour that honours NO_COLOR, the usable width, and tables that fit it.

Nothing here knows about USB: it lays out text. Tables shrink their widest, least important columns
first (cutting cells with an ellipsis), then drop optional columns, so a row never wraps; when
stdout is not a terminal and COLUMNS is unset there is no limit, so ``list | grep`` sees whole
cells. Colour goes on after padding, so escape codes never count towards a width.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


def color_wanted(stream: TextIO, choice: str, environ: Mapping[str, str]) -> bool:
    """Colour or not: ``always``/``never`` as given; ``auto`` on a terminal unless NO_COLOR is set or TERM=dumb.

    https://no-color.org: a command-line flag overrides NO_COLOR, so ``--color=always`` still colours.
    """
    if choice == "always":
        return True
    if choice == "never" or environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def output_width(stream: TextIO, environ: Mapping[str, str]) -> int | None:
    """Columns to fit: COLUMNS if set, else the terminal's; None (no limit) when stdout is not a terminal."""
    if environ.get("COLUMNS", "").strip().isdigit():
        return max(20, int(environ["COLUMNS"]))
    isatty = getattr(stream, "isatty", None)
    if not (isatty and isatty()):
        return None
    # get_terminal_size asks stdout's fd; the fallback covers a terminal that reports nothing
    return max(20, shutil.get_terminal_size(fallback=(100, 24)).columns)


@dataclass(frozen=True)
class Style:
    """Paints text when colour is on; a no-op otherwise."""

    enabled: bool = False
    ellipsis: str = "…"

    def paint(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles or not text:
            return text
        codes = ";".join(_CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


def ellipsis_for(stream: TextIO) -> str:
    """A one-character ellipsis where the stream can encode it, else '~'."""
    encoding = (getattr(stream, "encoding", None) or "ascii").lower()
    return "…" if "utf" in encoding else "~"


@dataclass(frozen=True)
class Column:
    """One table column.

    ``min_width``: how narrow shrinking may make it. ``shrink``: lower shrinks first (None: never).
    ``drop``: lower is dropped first when shrinking is not enough (None: always shown).
    """

    header: str
    min_width: int = 8
    shrink: int | None = None
    drop: int | None = None


Cell = str | tuple[str, tuple[str, ...]]  # text, or (text, styles)


def _text(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell[0]


def _styles(cell: Cell) -> tuple[str, ...]:
    return () if isinstance(cell, str) else cell[1]


def cut(text: str, width: int, ellipsis: str) -> str:
    """``text`` in at most ``width`` characters, its end replaced by the ellipsis when it is cut."""
    if len(text) <= width:
        return text
    if width <= len(ellipsis):
        return text[:width]
    return text[: width - len(ellipsis)] + ellipsis


def layout(columns: Sequence[Column], natural: Sequence[int], width: int | None, gap: int = 2) -> list[int | None]:
    """Width for each column, or None for a dropped one, so the row fits ``width`` where it can.

    Shrink columns in their order down to ``min_width``; if that is not enough, drop the next
    droppable column and start again from the natural widths; when nothing is left to drop, shrink
    down to a hard floor (the header, at least 6). Only then may a row be wider than ``width``.
    """
    shown: list[int | None] = list(natural)
    if width is None:
        return shown
    droppable = sorted((c.drop, i) for i, c in enumerate(columns) if c.drop is not None)
    shrinkable = [i for _, i in sorted((c.shrink, i) for i, c in enumerate(columns) if c.shrink is not None)]

    def shrink(widths: list[int | None], floors: Sequence[int]) -> int:
        visible = [w for w in widths if w is not None]
        excess = sum(visible) + gap * (len(visible) - 1) - width
        for i in shrinkable:
            current = widths[i]
            if excess <= 0 or current is None:
                continue
            take = max(0, min(excess, current - floors[i]))
            widths[i] = current - take
            excess -= take
        return excess

    soft = [max(c.min_width, len(c.header)) for c in columns]
    hard = [max(6, len(c.header)) for c in columns]
    while True:
        widths = list(shown)
        if shrink(widths, soft) <= 0:
            return widths
        if not droppable:
            shrink(widths, hard)
            return widths
        _, victim = droppable.pop(0)
        shown[victim] = None


def render_table(
    columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int | None, style: Style, gap: int = 2
) -> list[str]:
    """The header and each row as lines of text, fitted to ``width``."""
    natural = [max([len(c.header)] + [len(_text(row[i])) for row in rows]) for i, c in enumerate(columns)]
    widths = layout(columns, natural, width, gap)
    visible = [i for i, w in enumerate(widths) if w is not None]
    lines = []
    header_cells: list[Cell] = [(columns[i].header, ("bold",)) for i in visible]
    all_rows: list[list[Cell]] = [header_cells, *([row[i] for i in visible] for row in rows)]
    for cells in all_rows:
        parts = []
        for position, (i, cell) in enumerate(zip(visible, cells, strict=True)):
            w = widths[i]
            assert w is not None
            text = cut(_text(cell), w, style.ellipsis)
            last = position == len(visible) - 1
            padded = text if last else text.ljust(w)
            painted = style.paint(text, *_styles(cell))
            parts.append(painted + padded[len(text):])
        lines.append((" " * gap).join(parts).rstrip())
    return lines
