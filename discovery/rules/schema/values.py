"""What values the rules schema accepts: units, types, name patterns, and the converters shared by load and match time."""

from __future__ import annotations

import math
import posixpath
import re

from discovery.rules.tree import quote

# Nomad's known units (contract §5.10); an attribute with any other unit fails fingerprinting.
KNOWN_UNITS = frozenset(
    (
        "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "kB", "KB", "MB", "GB", "TB", "PB", "EB",
        "KiB/s", "MiB/s", "GiB/s", "TiB/s", "PiB/s", "EiB/s",
        "kB/s", "KB/s", "MB/s", "GB/s", "TB/s", "PB/s", "EB/s",
        "MHz", "GHz", "mW", "W", "kW", "MW", "GW",
    )
)  # fmt: skip
ATTR_TYPES = ("string", "int", "float", "bool", "hex")
NUMERIC_TYPES = frozenset({"int", "float", "hex"})
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

ATTR_KEY = re.compile(r"[A-Za-z0-9_.\-]+\Z")
# A reading's name (a stats command's output, a rule's stats.summary): shown by Nomad as "readings.<name>".
READING_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}\Z")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
SUBSYSTEM_NAME = re.compile(r"[a-z0-9_][a-z0-9_\-]*\Z")
PROPERTY_KEY = re.compile(r"[A-Za-z0-9_.]+\Z")
# Characters that a group name may not contain: Nomad splits requests on '/', and whitespace or
# control characters make names that cannot be written in a job file.
GROUP_FORBIDDEN = re.compile(r"[\s/\x00-\x1f\x7f]")
RESERVED_ENV = frozenset({"NVIDIA_VISIBLE_DEVICES"})  # docker reads it as "use the NVIDIA runtime"
HOST_ROOTS = ("/dev/", "/sys/")

MIN_INTERVAL = 1.0


def convert_attr(text: str, kind: str) -> int | float | str | bool:
    """``text`` as an attribute value of ``kind``; raises ValueError with a short reason."""
    if kind == "string":
        return text
    stripped = text.strip()
    if kind == "int":
        if not re.fullmatch(r"[+-]?\d+", stripped):
            raise ValueError(f"{quote(text)} is not a whole number")
        if len(stripped) > 20:
            raise ValueError(f"{quote(text)} does not fit in 64 bits")
        number = int(stripped, 10)
        if not INT64_MIN <= number <= INT64_MAX:
            raise ValueError(f"{quote(text)} does not fit in 64 bits")
        return number
    if kind == "hex":
        match = re.fullmatch(r"(0[xX])?([0-9A-Fa-f]{1,16})", stripped)
        if match is None:
            raise ValueError(f"{quote(text)} is not a hex number")
        number = int(match.group(2), 16)
        if number > INT64_MAX:
            raise ValueError(f"{quote(text)} does not fit in 64 bits")
        return number
    if kind == "float":
        if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", stripped):
            raise ValueError(f"{quote(text)} is not a number")
        value = float(stripped)
        if not math.isfinite(value):
            raise ValueError(f"{quote(text)} is too large")
        return value
    if kind == "bool":
        lowered = stripped.lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        raise ValueError(f"{quote(text)} is not true or false")
    raise ValueError(f"unknown type {quote(kind)}")


def parse_hex_id(text: str, maximum: int, what: str) -> int:
    """A hex id from its text (``0x18d1``, ``18d1``); raises ValueError."""
    stripped = text.strip()
    match = re.fullmatch(r"(0[xX])?([0-9A-Fa-f]+)", stripped)
    if match is None:
        raise ValueError(f"{quote(text)} is not a hex {what}")
    digits = match.group(2).lstrip("0") or "0"
    if len(digits) > 8 or int(digits, 16) > maximum:
        raise ValueError(f"{quote(text)} is out of range for a {what} (0x0 to 0x{maximum:x})")
    return int(digits, 16)


def path_problem(path: str, host: bool, shown: str | None = None) -> str | None:
    """Why ``path`` is not acceptable as a mount path, or None. Used at load and at match time.

    ``shown`` is the text to quote in the message (the template, when ``path`` is a probe of it).
    """
    text = quote(path if shown is None else shown)
    if "\x00" in path:
        return "contains a NUL character"
    if not path.startswith("/"):
        return f"{text} must be an absolute path"
    if path.startswith("//") or posixpath.normpath(path) != path:
        return f"{text} must be normalised (no '.', '..', '//' or trailing '/')"
    if host and not path.startswith(HOST_ROOTS):
        return f"{text} must be under /dev or /sys"
    if not host and path == "/":
        return "the task path must not be '/'"
    return None


def node_path_problem(path: str, shown: str | None = None) -> str | None:
    """Why ``path`` is not acceptable as a rule's ``nodes:`` entry (a device node under /dev), or None."""
    problem = path_problem(path, host=True, shown=shown)
    if problem is not None:
        return problem
    if not path.startswith("/dev/"):
        return f"{quote(path if shown is None else shown)} must be under /dev (a device node)"
    return None
