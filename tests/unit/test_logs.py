"""Unit tier: the hclog JSON formatter, the stderr handler and level names."""

from __future__ import annotations

import io
import json
import logging
import math
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin.logs import (
    MAX_LINE_CHARS,
    TRACE,
    HclogJsonFormatter,
    SafeStderrHandler,
    hclog_level,
    hclog_timestamp,
    level_from_name,
    set_level,
    setup_logging,
)

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def make_record(msg: str = "hello", level: int = logging.INFO, **overrides: Any) -> logging.LogRecord:
    """A LogRecord as logger.makeRecord builds it, with `overrides` as extra keys."""
    record = logging.getLogger("t.mod").makeRecord(
        "t.mod", level, __file__, 1, msg, (), None, extra=overrides or None
    )
    return record


def formatted(record: logging.LogRecord) -> dict[str, Any]:
    line = HclogJsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert isinstance(entry, dict)
    return entry


class BrokenStream(io.StringIO):
    """A stream that fails like a pipe whose reader is gone."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Restore the root logger and excepthooks after a test replaces them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks


def test_formatter_writes_reserved_keys_as_strings() -> None:
    """@level, @message, @module and @timestamp are strings in the hclog layout."""
    entry = formatted(make_record("device %s added"))
    assert entry["@level"] == "info"
    assert entry["@message"] == "device %s added"
    assert entry["@module"] == "t.mod"
    assert TIMESTAMP.match(entry["@timestamp"])


@pytest.mark.parametrize(
    ("levelno", "name"),
    [(TRACE, "trace"), (logging.DEBUG, "debug"), (logging.INFO, "info"),
     (logging.WARNING, "warn"), (logging.ERROR, "error"), (logging.CRITICAL, "error"), (1, "trace")],
    ids=["trace", "debug", "info", "warning", "error", "critical", "below-trace"],
)
def test_hclog_level_maps_python_levels(levelno: int, name: str) -> None:
    """Python levels map onto the five names hclog accepts; nothing else is produced."""
    assert hclog_level(levelno) == name


def test_hclog_timestamp_has_six_fraction_digits_on_whole_seconds() -> None:
    """A timestamp on a whole second still carries exactly six fractional digits and Z."""
    assert hclog_timestamp(1_700_000_000.0) == "2023-11-14T22:13:20.000000Z"


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_hclog_timestamp_layout_for_any_time(created: float) -> None:
    """Every POSIX time up to 2100 formats in the layout the agent parses."""
    assert TIMESTAMP.match(hclog_timestamp(created))


def test_formatter_adds_extra_keys_and_stringifies_others() -> None:
    """Keys from `extra` become JSON keys; values JSON cannot hold become strings."""
    entry = formatted(make_record(device_id="usb-1-2", count=3, ok=True, path=object(), nan=math.nan))
    assert entry["device_id"] == "usb-1-2"
    assert entry["count"] == 3 and entry["ok"] is True
    assert entry["path"].startswith("<object object")
    assert entry["nan"] == "nan"


def test_formatter_handles_non_string_dict_keys() -> None:
    """A dict with tuple keys in `extra` still yields valid JSON."""
    entry = formatted(make_record(table={(1, 2): "x"}))
    assert entry["table"] == {"(1, 2)": "x"}


def test_formatter_message_args_are_interpolated() -> None:
    """%-style args are applied, and a non-string msg becomes a string."""
    record = logging.getLogger("t").makeRecord("t", logging.INFO, "f", 1, "a=%d", (5,), None)
    assert formatted(record)["@message"] == "a=5"
    record = logging.getLogger("t").makeRecord("t", logging.INFO, "f", 1, 42, (), None)
    assert formatted(record)["@message"] == "42"


def test_formatter_never_lets_extra_replace_reserved_keys() -> None:
    """An extra key named @level/@message/@timestamp cannot put a non-string there."""
    record = make_record()
    record.__dict__.update({"@level": 3, "@message": None, "@timestamp": [1]})
    entry = formatted(record)
    assert entry["@level"] == "info"
    assert entry["@message"] == "hello"
    assert TIMESTAMP.match(entry["@timestamp"])


def test_formatter_puts_exception_in_one_entry() -> None:
    """logger.exception gives one error entry with the traceback under a key."""
    try:
        raise ValueError("bad thing")
    except ValueError:
        record = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, "f", 1, "failed", (), sys.exc_info()
        )
    entry = formatted(record)
    assert entry["@level"] == "error"
    assert entry["error"] == "ValueError: bad thing"
    assert "Traceback (most recent call last)" in entry["traceback"]
    assert "raise ValueError" in entry["traceback"]


def test_formatter_keeps_lines_under_agent_buffer() -> None:
    """A huge message or extra is cut so the line stays below the agent's 64 KiB limit."""
    entry_line = HclogJsonFormatter().format(make_record("m" * 200_000, blob="b" * 200_000))
    assert len(entry_line) <= MAX_LINE_CHARS
    entry = json.loads(entry_line)
    assert entry["@message"].startswith("mmm") and entry["@level"] == "info"


def test_handler_swallows_broken_pipe() -> None:
    """Writing to a broken stderr raises nothing and prints nothing."""
    handler = SafeStderrHandler(BrokenStream())
    handler.setFormatter(HclogJsonFormatter())
    handler.handle(make_record())


def test_handler_turns_bad_log_call_into_valid_entry() -> None:
    """A log call whose args do not fit its format still yields one valid JSON error entry."""
    out = io.StringIO()
    handler = SafeStderrHandler(out)
    handler.setFormatter(HclogJsonFormatter())
    record = logging.getLogger("t").makeRecord("t", logging.INFO, "f", 1, "%d %d", ("x",), None)
    handler.handle(record)
    entry = json.loads(out.getvalue())
    assert entry["@level"] == "error"
    assert entry["format"] == "%d %d"


@pytest.mark.parametrize(
    ("name", "level"),
    [("trace", TRACE), ("debug", logging.DEBUG), ("info", logging.INFO),
     ("warn", logging.WARNING), ("error", logging.ERROR), (" INFO ", logging.INFO)],
)
def test_level_from_name_accepts_config_names(name: str, level: int) -> None:
    """The five configured level names (any case, padded) map to Python levels."""
    assert level_from_name(name) == level


@pytest.mark.parametrize("name", ["warning", "critical", "fatal", "", "off"])
def test_level_from_name_rejects_other_names(name: str) -> None:
    """Names hclog would not understand are refused with the valid list."""
    with pytest.raises(ValueError, match="trace, debug, info, warn, error"):
        level_from_name(name)


def test_setup_logging_installs_single_json_handler(root_logging: None) -> None:
    """setup_logging leaves one handler on the root logger, at the given level, writing JSON."""
    out = io.StringIO()
    logging.getLogger().addHandler(logging.StreamHandler(io.StringIO()))
    setup_logging("warn", stream=out)
    root = logging.getLogger()
    assert len(root.handlers) == 1
    assert root.level == logging.WARNING
    logging.getLogger("x.y").info("dropped")
    logging.getLogger("x.y").warning("kept", extra={"k": "v"})
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["k"] == "v"
    set_level("trace")
    assert root.level == TRACE


def test_setup_logging_logs_uncaught_thread_exception(root_logging: None) -> None:
    """An exception escaping a thread becomes one JSON error entry, not a plain traceback."""
    out = io.StringIO()
    setup_logging("info", stream=out)

    def boom() -> None:
        raise RuntimeError("in thread")

    worker = threading.Thread(target=boom, name="worker-x")
    worker.start()
    worker.join()
    entry = json.loads(out.getvalue())
    assert entry["@level"] == "error"
    assert entry["thread_name"] == "worker-x"
    assert entry["error"] == "RuntimeError: in thread"


def test_setup_logging_logs_uncaught_main_exception(root_logging: None) -> None:
    """sys.excepthook writes an uncaught exception as one JSON error entry."""
    out = io.StringIO()
    setup_logging("info", stream=out)
    try:
        raise KeyError("k")
    except KeyError:
        sys.excepthook(*sys.exc_info())
    entry = json.loads(out.getvalue())
    assert entry["@message"] == "uncaught exception"
    assert "KeyError" in entry["traceback"]
