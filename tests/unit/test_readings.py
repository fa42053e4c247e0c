"""parse_readings and unit_of: a stats command's JSON becomes typed readings; anything doubtful is left out."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.checks.readings import MAX_READINGS, Reading, ReadingsFormatError, parse_readings, unit_of

GOOD = [
    pytest.param(b'{"level": 87}', {"level": Reading(87)}, id="int"),
    pytest.param(b'{"volts": 3.3}', {"volts": Reading(3.3)}, id="float"),
    pytest.param(b'{"t": {"value": 31.2, "unit": "C"}}', {"t": Reading(31.2, "C")}, id="value-and-unit"),
    pytest.param(b'{"t": {"value": 31}}', {"t": Reading(31)}, id="value-without-unit"),
    pytest.param(b' \n{"a": -1, "b.c-d_e": 2e3}\n', {"a": Reading(-1), "b.c-d_e": Reading(2000.0)}, id="spacing-names"),
    pytest.param(b"{}", {}, id="empty-object"),
    pytest.param('{"t": {"value": 40, "unit": "°C"}}'.encode(), {"t": Reading(40, "C")}, id="degree-sign"),
]


@pytest.mark.parametrize(("output", "expected"), GOOD)
def test_parse_readings_good_output(output: bytes, expected: dict[str, Reading]) -> None:
    """Numbers and {value, unit} objects become readings with nothing left out."""
    assert parse_readings(output) == (expected, [])


LEFT_OUT = [
    pytest.param(b'{"a": "87"}', "text is not a number", id="text"),
    pytest.param(b'{"a": true}', "true/false is not a number", id="bool"),
    pytest.param(b'{"a": null}', "NoneType is not a number", id="null"),
    pytest.param(b'{"a": NaN}', "NaN is not a finite number", id="nan"),
    pytest.param(b'{"a": {"value": Infinity}}', "Infinity is not a finite number", id="infinity"),
    pytest.param(b'{"a": 1e400}', "is not a finite number", id="overflowing-float"),
    pytest.param(b'{"a": 9223372036854775808}', "does not fit in 64 bits", id="int64-overflow"),
    pytest.param(b'{"a": [1]}', "list is not a number", id="list"),
    pytest.param(b'{"a": {"unit": "V"}}', "has no value", id="no-value"),
    pytest.param(b'{"a": {"value": 1, "scale": 2}}', 'unknown key "scale"', id="unknown-key"),
    pytest.param(b'{"a": {"value": 1, "unit": 5}}', "unit is not text", id="unit-not-text"),
    pytest.param(b'{"a": {"value": 1, "unit": "a very long unit name"}}', "not a short printable word", id="long-unit"),
    pytest.param(b'{"a": 1, "a": 2}', "given twice", id="duplicate"),
    pytest.param(b'{"bad name": 1}', "not a reading name", id="bad-name"),
]


@pytest.mark.parametrize(("output", "message"), LEFT_OUT)
def test_parse_readings_leaves_out_one_bad_reading(output: bytes, message: str) -> None:
    """A bad reading is left out with a problem naming it; the good ones beside it stay."""
    body = output.decode()[1:]
    readings, problems = parse_readings(('{"ok": 1, ' + body).encode())
    assert readings == {"ok": Reading(1)}
    assert len(problems) == 1 and message in problems[0].message and problems[0].message.endswith("left out")


WHOLE = [
    pytest.param(b"", "printed nothing", id="empty"),
    pytest.param(b"level: 87\n", "not JSON", id="not-json"),
    pytest.param(b"[1, 2]", "is a list", id="list"),
    pytest.param(b'"87"', "is text", id="text"),
    pytest.param(b"87", "is a number", id="number"),
    pytest.param(b'{"a": 1}{"b": 2}', "not JSON", id="two-objects"),
    pytest.param(b'\xff{"a": 1}', "not UTF-8", id="binary"),
    pytest.param(b"[" * 100_000, "not JSON", id="deep-nesting"),
    pytest.param(json.dumps({f"r{i}": i for i in range(MAX_READINGS + 1)}).encode(), "the limit is 64", id="too-many"),
]


@pytest.mark.parametrize(("output", "message"), WHOLE)
def test_parse_readings_refuses_output_that_is_not_one_object(output: bytes, message: str) -> None:
    """Output that is not one JSON object of readings gives none, with the reason."""
    with pytest.raises(ReadingsFormatError) as err:
        parse_readings(output)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("written", "shown"),
    [("%", "%"), ("percent", "%"), ("Celsius", "C"), ("°C", "C"), ("mV", "mV"), ("volts", "V"), ("MiB", "MiB"),
     ("mW", "mW"), ("MW", "MW"), ("mhz", "MHz"), ("rpm", "rpm"), ("", "")],
)
def test_unit_of_prefers_nomads_spelling(written: str, shown: str) -> None:
    """Canonical units stay, unambiguous aliases become Nomad's spelling, other short units pass as written."""
    assert unit_of(written) == shown


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_readings_never_fails_otherwise_on_arbitrary_bytes(output: bytes) -> None:
    """Whatever a command prints, the parser answers with readings or ReadingsFormatError, nothing else."""
    try:
        readings, problems = parse_readings(output)
    except ReadingsFormatError:
        return
    assert all(isinstance(r.value, (int, float)) and not isinstance(r.value, bool) for r in readings.values())


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
    st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False)),
    max_size=MAX_READINGS,
))
def test_parse_readings_round_trips_numbers(values: dict[str, int | float]) -> None:
    """Every finite number a command prints comes back as the same reading."""
    readings, problems = parse_readings(json.dumps(values).encode())
    assert problems == [] and {k: r.value for k, r in readings.items()} == values
