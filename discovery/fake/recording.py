"""Read and write umockdev's ``.umockdev`` recording format: one paragraph per sysfs device.

A recording (``umockdev-record /sys/bus/usb/devices/1-2 > dev.umockdev``) is plain text. Each
paragraph describes one device; each line is a one-letter tag, a colon, a space and a value:

=====  ======================================================================================
``P``  sysfs path below /sys, starting with ``/devices/`` (first line of every paragraph)
``E``  udev property ``KEY=value`` (SUBSYSTEM is mandatory)
``A``  text attribute ``name=value``; ``\\n``, ``\\\\`` and ``\\ooo`` octal escapes (GLib's
       g_strescape); names may contain ``/`` (``power/control``)
``H``  binary attribute ``name=HEX`` (``descriptors=12010002...``)
``L``  symlink attribute ``name=relative target`` (``driver=../../../bus/usb/drivers/usb``)
``N``  device node below /dev, optionally ``=HEX`` contents (``bus/usb/001/005=1201...``)
``S``  extra /dev symlink of the node (``serial/by-id/usb-...``)
=====  ======================================================================================

Paragraphs are separated by blank lines. This module only converts between that text and
:class:`DeviceRecord`; writing records into a fake sysfs is ``discovery.fake.testbed``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Iterable, Mapping


# The escapes g_strescape() writes for the named control characters.
_NAMED_ESCAPES = {ord("\b"): "b", ord("\f"): "f", ord("\n"): "n", ord("\r"): "r", ord("\t"): "t",
                  ord("\v"): "v", ord("\\"): "\\", ord('"'): '"'}
_UNESCAPES = {v: k for k, v in _NAMED_ESCAPES.items()}


class RecordingError(ValueError):
    """A recording that cannot be parsed; says where (``source:line``) and why."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.source = source
        self.line = line


@dataclass(frozen=True)
class DeviceRecord:
    """One sysfs device as a recording paragraph describes it.

    ``properties`` are udev properties (what ``udevadm info`` shows: SUBSYSTEM, DEVTYPE, DRIVER,
    DEVNAME with its ``/dev/`` prefix, MAJOR, MINOR, ID_* ...). ``attributes`` are the sysfs
    file contents as bytes, trailing newline included, as the kernel writes them.
    """

    devpath: str  # "/devices/pci0000:00/0000:00:14.0/usb1/1-2" (no /sys prefix)
    properties: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, bytes] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)
    node: str | None = None  # "bus/usb/001/005", relative to /dev
    node_contents: bytes = b""
    symlinks: tuple[str, ...] = ()  # relative to /dev

    def __post_init__(self) -> None:
        # Read-only copies, so a record handed out cannot be changed behind the testbed's back.
        object.__setattr__(self, "properties", MappingProxyType(dict(self.properties)))
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))
        object.__setattr__(self, "links", MappingProxyType(dict(self.links)))
        object.__setattr__(self, "symlinks", tuple(self.symlinks))

    @property
    def subsystem(self) -> str:
        return self.properties.get("SUBSYSTEM", "")

    @property
    def devtype(self) -> str | None:
        return self.properties.get("DEVTYPE")

    @property
    def sys_name(self) -> str:
        return self.devpath.rsplit("/", 1)[-1]

    @property
    def driver(self) -> str | None:
        """The bound driver: the DRIVER property, else the target of the ``driver`` link."""
        if "DRIVER" in self.properties:
            return self.properties["DRIVER"] or None
        target = self.links.get("driver")
        return target.rsplit("/", 1)[-1] if target else None

    @property
    def majmin(self) -> tuple[int, int] | None:
        """(major, minor) of the device node, from the ``dev`` attribute or MAJOR/MINOR."""
        dev = self.attributes.get("dev")
        if dev:
            major, _, minor = dev.decode().strip().partition(":")
            return int(major), int(minor)
        if "MAJOR" in self.properties and "MINOR" in self.properties:
            return int(self.properties["MAJOR"]), int(self.properties["MINOR"])
        return None

    def with_changes(self, properties: Mapping[str, str | None] | None = None,
                     attributes: Mapping[str, bytes | str | None] | None = None) -> DeviceRecord:
        """A copy with properties/attributes set (``None`` as a value deletes the key)."""
        props = dict(self.properties)
        for key, value in (properties or {}).items():
            if value is None:
                props.pop(key, None)
            else:
                props[key] = value
        attrs = dict(self.attributes)
        for key, raw in (attributes or {}).items():
            if raw is None:
                attrs.pop(key, None)
            else:
                attrs[key] = raw.encode() if isinstance(raw, str) else raw
        return replace(self, properties=props, attributes=attrs)


def unescape_attribute(text: str) -> bytes:
    """Undo g_strescape(): ``\\n``-style escapes and ``\\ooo`` octal bytes; ``\\x`` gives ``x``."""
    if "\\" not in text:
        return text.encode()
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "\\" or i + 1 == n:
            out += ch.encode()
            i += 1
            continue
        nxt = text[i + 1]
        if nxt in "01234567":
            j = i + 1
            while j < n and j < i + 4 and text[j] in "01234567":
                j += 1
            out.append(int(text[i + 1:j], 8) & 0xFF)
            i = j
        else:
            out += bytes([_UNESCAPES[nxt]]) if nxt in _UNESCAPES else nxt.encode()
            i += 2
    return bytes(out)


def escape_attribute(value: bytes) -> str:
    """g_strescape() of text: named escapes, octal for other control bytes and for bytes >= 0x7f."""
    parts: list[str] = []
    for byte in value:
        if byte in _NAMED_ESCAPES:
            parts.append("\\" + _NAMED_ESCAPES[byte])
        elif byte < 0x20 or byte >= 0x7F:
            parts.append(f"\\{byte:03o}")
        else:
            parts.append(chr(byte))
    return "".join(parts)


def _is_text(value: bytes) -> bool:
    """What umockdev-record writes as ``A:`` rather than ``H:``: valid UTF-8 without NUL bytes."""
    if b"\0" in value:
        return False
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decode_hex(text: str, source: str, line: int) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise RecordingError(source, line, f"malformed hexadecimal value {text[:40]!r}") from None


def parse_recording(text: str, source: str = "<recording>") -> list[DeviceRecord]:
    """Parse recording text into records, in file order. Raises :class:`RecordingError`."""
    records: list[DeviceRecord] = []
    current: dict | None = None
    start_line = 0

    def finish() -> None:
        if current is None:
            return
        if "SUBSYSTEM" not in current["properties"]:
            raise RecordingError(source, start_line,
                                 f"device {current['devpath']} has no E: SUBSYSTEM= line")
        records.append(DeviceRecord(**current))

    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            finish()
            current = None
            continue
        tag, sep, value = line.partition(": ")
        if not sep or len(tag) != 1:
            # "X:" with an empty value has no space after the colon
            if len(line) == 2 and line[1] == ":":
                tag, value = line[0], ""
            else:
                raise RecordingError(source, lineno, f"expected 'X: value', got {line[:60]!r}")
        if tag == "P":
            if current is not None:
                raise RecordingError(source, lineno, "P: line inside a paragraph (missing blank line?)")
            if not value.startswith("/devices/"):
                raise RecordingError(source, lineno, f"device path must start with /devices/: {value!r}")
            current = {"devpath": value.rstrip("/"), "properties": {}, "attributes": {}, "links": {},
                       "node": None, "node_contents": b"", "symlinks": ()}
            start_line = lineno
            continue
        if current is None:
            raise RecordingError(source, lineno, "paragraph must start with a 'P: /devices/...' line")
        if tag in "EAHL":
            key, eq, val = value.partition("=")
            if not eq or not key:
                raise RecordingError(source, lineno, f"expected {tag}: name=value, got {value[:60]!r}")
            if tag == "E":
                current["properties"][key] = val
            elif tag == "A":
                current["attributes"][key] = unescape_attribute(val)
            elif tag == "H":
                current["attributes"][key] = _decode_hex(val, source, lineno)
            else:
                current["links"][key] = val
        elif tag == "N":
            name, eq, contents = value.partition("=")
            current["node"] = name
            current["node_contents"] = _decode_hex(contents, source, lineno) if eq else b""
        elif tag == "S":
            current["symlinks"] = current["symlinks"] + (value,)
        else:
            raise RecordingError(source, lineno, f"unknown line type {tag!r}")
    finish()
    return records


def format_recording(records: Iterable[DeviceRecord]) -> str:
    """Write records as recording text that :func:`parse_recording` and umockdev both read."""
    paragraphs = []
    for rec in records:
        lines = [f"P: {rec.devpath}"]
        if rec.node is not None:
            lines.append(f"N: {rec.node}" + (f"={rec.node_contents.hex().upper()}" if rec.node_contents else ""))
        lines.extend(f"S: {link}" for link in rec.symlinks)
        lines.extend(f"E: {key}={value}" for key, value in rec.properties.items())
        for name in sorted(set(rec.attributes) | set(rec.links)):
            if name in rec.links:
                lines.append(f"L: {name}={rec.links[name]}")
                continue
            value = rec.attributes[name]
            if _is_text(value):
                lines.append(f"A: {name}={escape_attribute(value)}")
            else:
                lines.append(f"H: {name}={value.hex().upper()}")
        paragraphs.append("\n".join(lines) + "\n")
    return "\n".join(paragraphs)
