"""Logging to stderr as hclog JSON lines, the format a Nomad agent parses.

The agent reads the plugin's stderr line by line and decodes each line as a
JSON object with string keys ``@level``, ``@message`` and ``@timestamp``. A
non-string value under one of those three keys crashes the agent, a timestamp
that does not have exactly six fractional digits turns the line into plain
text, and any level name other than trace/debug/info/warn/error hides the line
at DEBUG. So this formatter builds every line itself and never lets a caller's
``extra`` override the three keys.

Writes must never kill the plugin: when the agent dies, stderr becomes a broken
pipe, and an orphaned plugin still has to answer the next agent's reattach.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

# Names accepted in our configuration, mapped to Python levels.
LEVELS: dict[str, int] = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}

# Keys the agent reads itself; @level, @message and @timestamp must be strings.
RESERVED_KEYS = ("@level", "@message", "@module", "@timestamp")

# The agent splits lines longer than 64 KiB into raw DEBUG fragments; stay below.
MAX_LINE_CHARS = 60_000
_MAX_VALUE_CHARS = 4_096

# Attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}


def level_from_name(name: str) -> int:
    """Map a configured level name (trace/debug/info/warn/error) to a level."""
    try:
        return LEVELS[name.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown log level {name!r}; expected one of: {', '.join(LEVELS)}"
        ) from None


def hclog_level(levelno: int) -> str:
    """Map a Python level number to one of the five hclog level names."""
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    if levelno >= logging.DEBUG:
        return "debug"
    return "trace"


def hclog_timestamp(created: float) -> str:
    """Format a POSIX time as UTC with exactly six fractional digits and a Z."""
    moment = datetime.fromtimestamp(created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _jsonable(value: Any) -> Any:
    """Turn a value into something json.dumps accepts without NaN or odd keys."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def _dump(entry: dict[str, Any]) -> str:
    try:
        # allow_nan=False: Go's JSON decoder rejects NaN/Infinity literals.
        return json.dumps(entry, default=str, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(_jsonable(entry), allow_nan=False)


def _shrink(entry: dict[str, Any]) -> dict[str, Any]:
    """Cut long string values so the line fits the agent's line buffer."""
    return {
        key: value[:_MAX_VALUE_CHARS] + "...(truncated)"
        if isinstance(value, str) and len(value) > _MAX_VALUE_CHARS
        else value
        for key, value in entry.items()
    }


class HclogJsonFormatter(logging.Formatter):
    """Format a LogRecord as one hclog JSON object on a single line."""

    def format(self, record: logging.LogRecord) -> str:
        # The reserved keys come first and are never replaced by `extra`.
        entry: dict[str, Any] = {
            "@level": hclog_level(record.levelno),
            "@message": str(record.getMessage()),
            "@module": record.name,
            "@timestamp": hclog_timestamp(record.created),
        }
        extras = {
            key: value
            for key, value in record.__dict__.items()
            if key not in _RECORD_ATTRS and key not in entry
        }
        if record.exc_info and record.exc_info[0] is not None:
            exc = record.exc_info[1]
            extras["error"] = f"{type(exc).__name__}: {exc}"
            extras["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        elif record.exc_text:
            extras["traceback"] = record.exc_text
        if record.stack_info:
            extras["stack"] = record.stack_info
        entry.update(extras)
        line = _dump(entry)
        if len(line) > MAX_LINE_CHARS:
            line = _dump(_shrink(entry))
        if len(line) > MAX_LINE_CHARS:
            line = _dump(_shrink({key: entry[key] for key in RESERVED_KEYS}))
        return line


def _fallback_line(record: logging.LogRecord, exc: BaseException) -> str:
    """A valid entry describing a log call that could not be formatted."""
    return json.dumps({
        "@level": "error",
        "@message": "log call could not be formatted",
        "@module": str(getattr(record, "name", "")),
        "@timestamp": hclog_timestamp(getattr(record, "created", 0.0)),
        "format": str(getattr(record, "msg", "")),
        "error": f"{type(exc).__name__}: {exc}",
    })


class SafeStderrHandler(logging.Handler):
    """Write formatted lines to a text stream, ignoring any write failure.

    One write call per line keeps lines whole between threads (the handler
    lock serialises emit). The stream is looked up at each write when none was
    given, so a replaced sys.stderr is honoured.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception as exc:  # a broken log call must not crash or print plain text
            line = _fallback_line(record, exc)
        try:
            stream = self.stream
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):
            # OSError covers BrokenPipeError once the agent is gone; ValueError
            # is a closed stream at interpreter exit. Nobody is left to tell.
            return


def _log_uncaught(
    exc_type: type[BaseException],
    exc: BaseException,
    tb: TracebackType | None,
) -> None:
    logging.getLogger("plugin").error(
        "uncaught exception", exc_info=(exc_type, exc, tb)
    )


def _log_thread_uncaught(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    thread = args.thread.name if args.thread is not None else "unknown"
    logging.getLogger("plugin").error(
        "uncaught exception in thread",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        extra={"thread_name": thread},
    )


def set_level(level: str) -> None:
    """Change the root logger's level by configured name (e.g. from SetConfig)."""
    logging.getLogger().setLevel(level_from_name(level))


def setup_logging(level: str = "info", stream: TextIO | None = None) -> logging.Handler:
    """Make the root logger write hclog JSON to stderr at `level`; return the handler.

    Replaces every existing root handler, and routes uncaught exceptions (main
    thread and other threads) through the same handler as one error entry
    each, instead of a plain-text traceback the agent would hide at DEBUG.
    """
    handler = SafeStderrHandler(stream)
    handler.setFormatter(HclogJsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_from_name(level))
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_uncaught
    return handler
