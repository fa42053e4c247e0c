"""Compiled ``match:`` conditions: one pure test per condition, a human view of it, and static coverage.

Globs are fnmatch-style and case-sensitive; they are translated to regular expressions once, at load
time, so matching a device is a handful of set lookups and regex calls. ``covers`` answers "does this
condition accept every device the other one accepts?", judged from the conditions alone; the rule set
uses it to find rules that can never win.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from discovery.model import Device, UsbDevice

GLOB_CHARS = frozenset("*?[")


class GlobError(ValueError):
    """A glob pattern that is rejected (empty, or with an unclosed ``[``)."""


@dataclass(frozen=True, slots=True)
class Glob:
    """An fnmatch pattern (``*``, ``?``, ``[abc]``, ``[!abc]``), compiled once."""

    pattern: str
    regex: re.Pattern[str] = field(compare=False, repr=False)

    @property
    def is_literal(self) -> bool:
        return not (GLOB_CHARS & set(self.pattern))

    def matches(self, text: str) -> bool:
        return self.regex.match(text) is not None

    def covers(self, other: Glob) -> bool:
        """True when every string ``other`` matches is matched by this glob too (conservative)."""
        if self.pattern == "*" or self.pattern == other.pattern:
            return True
        return other.is_literal and self.matches(other.pattern)


def compile_glob(pattern: str) -> Glob:
    """A Glob for ``pattern``; raises GlobError for an empty pattern or an unclosed ``[``.

    fnmatch itself would read an unclosed ``[`` as a literal bracket; in a rules file that is nearly
    always a mistake, so it is an error here (``[[]`` matches a literal ``[``).
    """
    if pattern == "":
        raise GlobError("empty pattern (leave the condition out to match anything)")
    i = 0
    n = len(pattern)
    while i < n:
        if pattern[i] == "[":
            j = i + 1
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1  # "[]...]" and "[!]...]": a leading ']' is a member, not the end
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                raise GlobError(f"unclosed '[' at position {i + 1} (write '[[]' for a literal '[')")
            i = j
        i += 1
    try:
        regex = re.compile(fnmatch.translate(pattern))
    except re.error as exc:  # fnmatch escapes almost everything; keep a clear message if not
        raise GlobError(f"not a valid pattern: {exc}") from exc
    return Glob(pattern, regex)


def any_glob(globs: tuple[Glob, ...], text: str | None) -> bool:
    if text is None:
        return False
    return any(glob.regex.match(text) is not None for glob in globs)


def globs_cover(mine: tuple[Glob, ...], theirs: tuple[Glob, ...]) -> bool:
    return all(any(m.covers(t) for m in mine) for t in theirs)


def globs_text(globs: tuple[Glob, ...]) -> str:
    return " | ".join(repr(glob.pattern) for glob in globs)


def hex_text(value: int, digits: int) -> str:
    return f"0x{value:0{digits}x}"


def hexes(values: frozenset[int], digits: int) -> str:
    return " | ".join(hex_text(value, digits) for value in sorted(values))


def shown(text: str | None, what: str) -> str:
    return f"(no {what})" if text is None else repr(text)


D = TypeVar("D", bound=Device)


class Condition(Generic[D]):
    """Base of all conditions: ``field`` (``match.vendor_id``) and ``expected`` for people.

    A condition is written for one kind of device (``D``); a rule only ever tests the devices of
    its own kind (``discovery.rules.matching.accepts``), so a USB condition never sees a NodeDevice.
    """

    __slots__ = ()
    field: str

    @property
    def expected(self) -> str:
        raise NotImplementedError

    def test(self, device: D) -> bool:
        raise NotImplementedError

    def actual(self, device: D) -> str:
        """What the device has for this condition, in words (for ``explain``)."""
        raise NotImplementedError

    def covers(self, other: Condition[Any]) -> bool:
        """True when this condition accepts every device ``other`` accepts (judged statically)."""
        raise NotImplementedError


class GlobsCondition(Condition[D]):
    """A condition that holds when one of the device's values for it (``candidates``) matches a glob.

    Subclasses say which values those are and how ``explain`` shows them; ``target`` names what a keyed
    one looks at (a property's name), so that only conditions on the same thing cover each other.
    Wanting, testing and covering (broader globs cover narrower ones) are the same for all.
    """

    __slots__ = ()
    field: str
    globs: tuple[Glob, ...]

    @property
    def expected(self) -> str:
        return globs_text(self.globs)

    @property
    def target(self) -> str | None:
        return None

    def candidates(self, device: D) -> Iterable[str | None]:
        raise NotImplementedError

    def test(self, device: D) -> bool:
        return any(any_glob(self.globs, value) for value in self.candidates(device))

    def covers(self, other: Condition[Any]) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, GlobsCondition)
            and other.target == self.target
            and globs_cover(self.globs, other.globs)
        )


@dataclass(frozen=True, slots=True)
class IdCondition(Condition[UsbDevice]):
    """vendor_id, product_id or device_class is one of ``values``."""

    field: str
    attribute: str  # "vendor_id", "product_id", "device_class" on UsbDevice
    values: frozenset[int]
    digits: int = 4

    @property
    def expected(self) -> str:
        return hexes(self.values, self.digits)

    def test(self, device: UsbDevice) -> bool:
        return getattr(device, self.attribute) in self.values

    def actual(self, device: UsbDevice) -> str:
        return hex_text(getattr(device, self.attribute), self.digits)

    def covers(self, other: Condition[Any]) -> bool:
        return (
            isinstance(other, IdCondition)
            and other.attribute == self.attribute
            and other.values <= self.values
        )


@dataclass(frozen=True, slots=True)
class StringCondition(GlobsCondition[Device]):
    """serial, manufacturer or product matches one of ``globs``; a device without the string fails."""

    field: str
    attribute: str  # "serial" on every kind; "manufacturer", "product" on UsbDevice
    globs: tuple[Glob, ...]

    @property
    def target(self) -> str:
        return self.attribute

    def candidates(self, device: Device) -> Iterable[str | None]:
        return [getattr(device, self.attribute)]

    def actual(self, device: Device) -> str:
        return shown(getattr(device, self.attribute), self.attribute)


@dataclass(frozen=True, slots=True)
class PropertyCondition(GlobsCondition[Device]):
    """The udev property ``name`` is set and matches one of ``globs``."""

    field: str
    name: str
    globs: tuple[Glob, ...]

    @property
    def target(self) -> str:
        return self.name

    def candidates(self, device: Device) -> Iterable[str | None]:
        return [device.properties.get(self.name)]

    def actual(self, device: Device) -> str:
        value = device.properties.get(self.name)
        return "(not set)" if value is None else repr(value)


@dataclass(frozen=True, slots=True)
class SubsystemCondition(Condition[UsbDevice]):
    """The device has a child (tty, hidraw, ...) in one of ``names``."""

    field: str
    names: frozenset[str]

    @property
    def expected(self) -> str:
        return " | ".join(sorted(self.names))

    def test(self, device: UsbDevice) -> bool:
        names = self.names
        return any(child.subsystem in names for child in device.children)

    def actual(self, device: UsbDevice) -> str:
        found = sorted({child.subsystem for child in device.children})
        return ", ".join(found) if found else "(no children)"

    def covers(self, other: Condition[Any]) -> bool:
        return isinstance(other, SubsystemCondition) and other.names <= self.names


@dataclass(frozen=True, slots=True)
class InterfaceClassCondition(Condition[UsbDevice]):
    """Some interface of the device has a bInterfaceClass in ``values``."""

    field: str
    values: frozenset[int]

    @property
    def expected(self) -> str:
        return hexes(self.values, 2)

    def test(self, device: UsbDevice) -> bool:
        values = self.values
        return any(interface.interface_class in values for interface in device.interfaces)

    def actual(self, device: UsbDevice) -> str:
        found = frozenset(interface.interface_class for interface in device.interfaces)
        return hexes(found, 2).replace(" | ", ", ") if found else "(no interfaces)"

    def covers(self, other: Condition[Any]) -> bool:
        return isinstance(other, InterfaceClassCondition) and other.values <= self.values


@dataclass(frozen=True, slots=True)
class InterfaceCondition(Condition[UsbDevice]):
    """Some single interface has all of the given class, subclass and protocol (None: any)."""

    field: str
    classes: frozenset[int] | None
    subclasses: frozenset[int] | None
    protocols: frozenset[int] | None

    @property
    def expected(self) -> str:
        return "/".join(
            "*" if values is None else hexes(values, 2)
            for values in (self.classes, self.subclasses, self.protocols)
        )

    def test(self, device: UsbDevice) -> bool:
        classes, subclasses, protocols = self.classes, self.subclasses, self.protocols
        for interface in device.interfaces:
            if classes is not None and interface.interface_class not in classes:
                continue
            if subclasses is not None and interface.interface_subclass not in subclasses:
                continue
            if protocols is not None and interface.interface_protocol not in protocols:
                continue
            return True
        return False

    def actual(self, device: UsbDevice) -> str:
        if not device.interfaces:
            return "(no interfaces)"
        return ", ".join(
            f"0x{i.interface_class:02x}/0x{i.interface_subclass:02x}/0x{i.interface_protocol:02x}"
            for i in device.interfaces
        )

    def covers(self, other: Condition[Any]) -> bool:
        if not isinstance(other, InterfaceCondition):
            return False
        pairs = (
            (self.classes, other.classes),
            (self.subclasses, other.subclasses),
            (self.protocols, other.protocols),
        )
        return all(mine is None or (theirs is not None and theirs <= mine) for mine, theirs in pairs)


@dataclass(frozen=True, slots=True)
class PortCondition(GlobsCondition[UsbDevice]):
    """port_path or sys_name matches one of ``globs``."""

    field: str
    globs: tuple[Glob, ...]

    def candidates(self, device: UsbDevice) -> Iterable[str | None]:
        return [device.port_path, device.sys_name]

    def actual(self, device: UsbDevice) -> str:
        if device.port_path == device.sys_name:
            return repr(device.port_path)
        return f"{device.port_path!r} (sys_name {device.sys_name!r})"


@dataclass(frozen=True, slots=True)
class DriverCondition(GlobsCondition[UsbDevice]):
    """The driver bound to the device, or to any of its interfaces, matches one of ``globs``."""

    field: str
    globs: tuple[Glob, ...]

    def candidates(self, device: UsbDevice) -> Iterable[str | None]:
        return [device.driver, *(interface.driver for interface in device.interfaces)]

    def actual(self, device: UsbDevice) -> str:
        bound = sorted({driver for driver in self.candidates(device) if driver})
        return ", ".join(bound) if bound else "(no driver bound)"
