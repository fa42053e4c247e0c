"""Duration text (``500ms``, ``30s``, ``1h30m``, ``1.5s``) to seconds: the one place durations are parsed.

The syntax is Go's ``time.ParseDuration`` (what Nomad users already write), without a sign: one or more
``<number><unit>`` parts, units ``ns``, ``us`` (or ``µs``), ``ms``, ``s``, ``m``, ``h``. A bare number is
rejected (``30`` could mean anything) except ``0``.
"""

from __future__ import annotations

import json
import math
import re

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 MICRO SIGN
    "μs": 1e-6,  # U+03BC GREEK SMALL LETTER MU
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
# Longest units first, so "ms" is not read as "m" followed by garbage.
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_MAX_TEXT = 64
# Go's limit: a time.Duration is an int64 of nanoseconds.
MAX_SECONDS = (2**63 - 1) / 1e9


class DurationError(ValueError):
    """Text that is not a duration; the message says what is wrong and shows an example."""


def parse_duration(text: str) -> float:
    """Seconds in ``text`` such as ``1h30m`` or ``500ms``; raises DurationError."""
    if not isinstance(text, str):
        raise DurationError(f"{text!r} is not a duration (write it as text such as \"30s\")")
    stripped = text.strip()
    if not stripped:
        raise DurationError("empty duration (write e.g. \"30s\", \"500ms\" or \"1h30m\")")
    if len(stripped) > _MAX_TEXT:
        raise DurationError(f"duration text longer than {_MAX_TEXT} characters")
    if stripped == "0":
        return 0.0
    if _is_number(stripped):
        raise DurationError(f"{_quoted(text)} has no unit (write e.g. \"{stripped}s\" or \"{stripped}ms\")")
    total = 0.0
    position = 0
    while position < len(stripped):
        part = _PART.match(stripped, position)
        if part is None:
            raise DurationError(
                f"{_quoted(text)} is not a duration (write e.g. \"30s\", \"500ms\" or \"1h30m\"; "
                "units ns, us, ms, s, m, h)"
            )
        total += float(part.group(1)) * _UNIT_SECONDS[part.group(2)]
        position = part.end()
    if not math.isfinite(total) or total > MAX_SECONDS:
        raise DurationError(f"{_quoted(text)} is too long a duration")
    return total


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _is_number(text: str) -> bool:
    return re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", text) is not None


def format_duration(seconds: float) -> str:
    """Short text for a duration in messages: ``30s``, ``500ms``, ``1m30s``."""
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    minutes, rest = divmod(seconds, 60.0)
    if minutes == 0:
        return f"{rest:g}s"
    hours, minutes = divmod(minutes, 60.0)
    text = f"{int(hours)}h" if hours else ""
    text += f"{int(minutes)}m" if minutes else ""
    text += f"{rest:g}s" if rest else ""
    return text
