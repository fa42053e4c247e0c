"""Readings: the JSON object a rule's stats command prints, checked into typed numbers with units (pure).

The command prints one JSON object: reading name -> a number, or -> ``{"value": number, "unit": "..."}``.
A reading that is anything else (text, a bool, NaN, a number too large for Nomad's int64, an
unknown key) is left out with a problem saying why; nothing is guessed. Output that is not one
JSON object gives no readings at all. Units are free text in Nomad's stats, but the spellings Nomad
and its own device plugins use are preferred, so ``percent`` becomes ``%`` and ``celsius`` ``C``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from discovery.rules.schema.values import INT64_MAX, INT64_MIN, KNOWN_UNITS, READING_NAME

MAX_READINGS = 64
MAX_UNIT_CHARS = 16
_EMPTY: Mapping[str, Reading] = MappingProxyType({})

# Units as Nomad shows them: its attribute units (contract 5.10), and what its NVIDIA plugin reports
# in stats ("%", "C" for degrees Celsius, "W", "MiB", "MHz"), plus common electrical and time units.
CANONICAL_UNITS = KNOWN_UNITS | {"%", "C", "F", "V", "mV", "A", "mA", "Hz", "s", "ms", "dBm"}
# Other spellings of those, compared in lower case. Only unambiguous words: "mw" could be mW or MW.
UNIT_ALIASES = {
    "percent": "%", "pct": "%",
    "celsius": "C", "°c": "C", "℃": "C", "degc": "C", "fahrenheit": "F", "°f": "F", "degf": "F",
    "volt": "V", "volts": "V", "millivolt": "mV", "millivolts": "mV",
    "amp": "A", "amps": "A", "ampere": "A", "amperes": "A",
    "milliamp": "mA", "milliamps": "mA", "milliampere": "mA", "milliamperes": "mA",
    "watt": "W", "watts": "W", "milliwatt": "mW", "milliwatts": "mW",
    "hertz": "Hz", "hz": "Hz", "mhz": "MHz", "ghz": "GHz",
    "sec": "s", "secs": "s", "second": "s", "seconds": "s", "dbm": "dBm",
}  # fmt: skip


class ReadingsFormatError(ValueError):
    """The output as a whole is not one JSON object of readings; the message says what it is instead."""


@dataclass(frozen=True)
class Reading:
    """One number a stats command reported, with its unit ("" for none)."""

    value: int | float
    unit: str = ""


@dataclass(frozen=True)
class Problem:
    """Something wrong with one run: ``kind`` groups repeats (logged once per device), ``message`` says it."""

    kind: str  # "start", "timeout", "exit", "output", "reading:<name>", "summary"
    message: str


@dataclass(frozen=True)
class ReadingsResult:
    """One run of a device's stats command: the readings it gave and what went wrong, if anything."""

    readings: Mapping[str, Reading] = field(default_factory=lambda: _EMPTY)
    error: Problem | None = None  # the run gave no readings at all (did not start, timed out, failed, garbage)
    problems: tuple[Problem, ...] = ()  # readings left out of an otherwise good run
    taken_at: float = 0.0  # wall clock when the run started
    latency_s: float = 0.0


def unit_of(text: str) -> str:
    """The unit as Nomad shows it: canonical spellings kept, known aliases mapped; raises ValueError if unusable."""
    stripped = text.strip()
    if stripped in CANONICAL_UNITS or not stripped:
        return stripped
    alias = UNIT_ALIASES.get(stripped.lower())
    if alias is not None:
        return alias
    if len(stripped) > MAX_UNIT_CHARS or not stripped.isprintable():
        raise ValueError(f"unit {json.dumps(stripped)[:40]} is not a short printable word")
    return stripped


def _number(value: Any) -> int | float:
    """A JSON number as Nomad can hold it; raises ValueError otherwise (bool is not a number here)."""
    if isinstance(value, _Constant):
        raise ValueError(f"{value.name} is not a finite number")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "true/false" if isinstance(value, bool) else type(value).__name__.replace("str", "text")
        raise ValueError(f"{kind} is not a number")
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError("does not fit in 64 bits")
        return value
    if not math.isfinite(value):
        raise ValueError("is not a finite number")
    return value


def reading_from_json(value: Any) -> Reading:
    """A number, or ``{"value": number, "unit": text}``, as a Reading; raises ValueError saying why not."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"value", "unit"})
        if unknown:
            raise ValueError(f"unknown key {json.dumps(unknown[0])} (a reading takes value and unit)")
        if "value" not in value:
            raise ValueError("has no value")
        unit = value.get("unit", "")
        if not isinstance(unit, str):
            raise ValueError("unit is not text")
        return Reading(_number(value["value"]), unit_of(unit))
    return Reading(_number(value))


@dataclass(frozen=True)
class _Constant:
    """NaN or Infinity as Python's json reads them: kept as a marker, so that one reading is refused."""

    name: str


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object in which a key given twice is marked as such, instead of keeping its last value."""
    out: dict[str, Any] = {}
    seen: set[str] = set()
    for key, value in pairs:
        if key in seen:
            out[key] = _Duplicate()
        else:
            out[key] = value
        seen.add(key)
    return out


class _Duplicate:
    """Marks a key given twice: which value was meant is not ours to guess."""


def parse_readings(stdout: bytes) -> tuple[dict[str, Reading], list[Problem]]:
    """The readings in a command's output, and the readings left out; raises ReadingsFormatError for the whole."""
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReadingsFormatError(f"output is not UTF-8 text (byte 0x{stdout[exc.start]:02x})") from None
    if not text.strip():
        raise ReadingsFormatError("printed nothing (expected one JSON object)")
    try:
        data = json.loads(text, object_pairs_hook=_pairs, parse_constant=_Constant)
    except json.JSONDecodeError as exc:
        raise ReadingsFormatError(f"output is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ReadingsFormatError("output is not JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ReadingsFormatError(f"output is {_json_kind(data)}, not a JSON object of readings")
    if len(data) > MAX_READINGS:
        raise ReadingsFormatError(f"printed {len(data)} readings; the limit is {MAX_READINGS}")
    readings: dict[str, Reading] = {}
    problems: list[Problem] = []
    for name, value in data.items():
        shown = json.dumps(name)[:70]
        if not READING_NAME.match(name):
            problems.append(Problem(f"reading:{name[:64]}", f"reading {shown}: not a reading name (letters, "
                                    "digits, '_', '.', '-'; at most 64); left out"))  # fmt: skip
            continue
        if isinstance(value, _Duplicate):
            problems.append(Problem(f"reading:{name}", f"reading {shown}: given twice; left out"))
            continue
        try:
            readings[name] = reading_from_json(value)
        except ValueError as exc:
            problems.append(Problem(f"reading:{name}", f"reading {shown}: {exc}; left out"))
    return readings, problems


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return "a number"
