"""parse_duration: Go-style duration text to seconds, the one duration parser of the project."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("1m", 60.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("2h45m30.5s", 9930.5),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("10ns", 1e-8),
        ("0", 0.0),
        ("0s", 0.0),
        ("  30s ", 30.0),
        ("1m1m", 120.0),
    ],
    ids=lambda v: str(v),
)
def test_duration_parses(text: str, seconds: float) -> None:
    """Each unit and combination of units gives its seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration"),
        ("   ", "empty duration"),
        ("30", 'has no unit (write e.g. "30s"'),
        ("1.5", "has no unit"),
        ("-5s", "is not a duration"),
        ("+5s", "is not a duration"),
        ("5 s", "is not a duration"),
        ("5sec", "is not a duration"),
        ("5d", "is not a duration"),
        ("s", "is not a duration"),
        ("1e3s", "is not a duration"),
        ("5S", "is not a duration"),
        ("9" * 30 + "h", "too long a duration"),
        ("1" * 70 + "s", "longer than 64 characters"),
    ],
    ids=lambda v: str(v)[:20],
)
def test_duration_rejects(text: str, message: str) -> None:
    """Signs, spaces, unknown units, bare numbers and overflow are DurationErrors."""
    with pytest.raises(DurationError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_duration(text)


def test_duration_rejects_non_text() -> None:
    """A number instead of text is a DurationError, not a TypeError."""
    with pytest.raises(DurationError):
        parse_duration(30)  # type: ignore[arg-type]


def test_duration_error_is_a_value_error() -> None:
    """Callers that catch ValueError also catch duration problems."""
    assert issubclass(DurationError, ValueError)


@given(st.text(max_size=80))
def test_duration_never_raises_anything_else(text: str) -> None:
    """Any text either parses to a finite non-negative number or raises DurationError."""
    try:
        seconds = parse_duration(text)
    except DurationError:
        return
    assert 0.0 <= seconds < float("inf")


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["ms", "s", "m", "h"]))
def test_duration_round_trips_whole_units(amount: int, unit: str) -> None:
    """``<n><unit>`` is n times the unit's length."""
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    assert parse_duration(f"{amount}{unit}") == pytest.approx(amount * scale)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "500ms"), (30.0, "30s"), (90.0, "1m30s"), (3600.0, "1h"), (5400.0, "1h30m")],
    ids=["ms", "s", "m-s", "h", "h-m"],
)
def test_duration_format_for_messages(seconds: float, text: str) -> None:
    """format_duration writes seconds back in the same notation."""
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)
