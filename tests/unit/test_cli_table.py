"""Terminal output: tables that fit the width, cells cut with an ellipsis, colour only where wanted (NO_COLOR)."""

from __future__ import annotations

import io

import pytest

from plugin.cli.table import Column, Style, color_wanted, cut, layout, output_width, render_table

COLS = [
    Column("A", min_width=4),
    Column("B", min_width=4, shrink=1, drop=2),
    Column("C", min_width=4, shrink=2, drop=1),
]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("width", "expected"),
    [
        (None, [10, 10, 10]),  # no limit
        (34, [10, 10, 10]),  # fits: 30 + two gaps of 2
        (30, [10, 6, 10]),  # B shrinks first
        (24, [10, 4, 6]),  # then C, each down to its minimum
        (20, [10, 8, None]),  # still too wide: C (drop=1) goes, B gets back what it can
        (14, [10, None, None]),  # B goes too
        (8, [10, None, None]),  # A never shrinks or drops: the row overflows
    ],
)
def test_layout_shrinks_then_drops(width: int | None, expected: list[int | None]) -> None:
    """Columns shrink in order to their minimum, then optional ones drop, until the row fits."""
    assert layout(COLS, [10, 10, 10], width) == expected


def test_layout_hard_floor_when_nothing_can_drop() -> None:
    """With nothing left to drop, shrinkable columns go below their minimum (not below 6) to fit."""
    columns = [Column("ID", min_width=20, shrink=1), Column("GROUP", min_width=20, shrink=2)]
    assert layout(columns, [30, 30], 40) == [18, 20]
    assert layout(columns, [30, 30], 10) == [6, 6]


def test_cut_uses_the_ellipsis() -> None:
    """A cut cell ends in the ellipsis and has exactly the width; a short one is unchanged."""
    assert cut("abcdefgh", 5, "…") == "abcd…"
    assert cut("abc", 5, "…") == "abc"
    assert cut("abcdefgh", 5, "~") == "abcd~"


def test_render_table_pads_and_paints_after_padding() -> None:
    """Cells are padded to the column width; colour codes do not count towards it; no trailing blanks."""
    lines = render_table([Column("NAME"), Column("X")], [[("ok", ("green",)), "1"], ["longer", "22"]], None,
                         Style(enabled=True))
    assert lines[0] == "\x1b[1mNAME\x1b[0m    \x1b[1mX\x1b[0m"
    assert lines[1] == "\x1b[32mok\x1b[0m      1"
    assert lines[2] == "longer  22"


@pytest.mark.parametrize(
    ("choice", "environ", "tty", "wanted"),
    [
        ("auto", {}, True, True),
        ("auto", {}, False, False),
        ("auto", {"NO_COLOR": "1"}, True, False),
        ("auto", {"NO_COLOR": ""}, True, True),  # no-color.org: only a non-empty value counts
        ("auto", {"TERM": "dumb"}, True, False),
        ("always", {"NO_COLOR": "1"}, False, True),  # an explicit flag beats NO_COLOR
        ("never", {}, True, False),
    ],
)
def test_color_wanted(choice: str, environ: dict[str, str], tty: bool, wanted: bool) -> None:
    """Colour on a terminal unless NO_COLOR or TERM=dumb; --color=always/never decide outright."""
    stream = _Tty() if tty else io.StringIO()
    assert color_wanted(stream, choice, environ) is wanted


def test_output_width_from_columns_or_unlimited() -> None:
    """COLUMNS sets the width; without it a stream that is not a terminal has no limit."""
    assert output_width(io.StringIO(), {"COLUMNS": "90"}) == 90
    assert output_width(io.StringIO(), {}) is None
