"""The ``match:`` keys of a ``kind: udev`` rule: each value checked and compiled into ``udev_conditions``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from discovery.rules.conditions import Condition, PropertyCondition, StringCondition
from discovery.rules.schema.keys import PCI_KEYS
from discovery.rules.schema.reader import Reader, read_map
from discovery.rules.schema.values import PROPERTY_KEY
from discovery.rules.tree import Src, quote
from discovery.rules.udev_conditions import (
    AttributeCondition,
    DevnodeCondition,
    KernelCondition,
    NodeDriverCondition,
    NodePortCondition,
    NodeSubsystemCondition,
    ParentAttributesCondition,
    PciClassCondition,
    PciIdCondition,
    PciSlotCondition,
    PlatformCondition,
)

# A sysfs attribute name as udev's ATTR{} takes it: a file below the device, maybe in a subfolder.
SYSFS_ATTRIBUTE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*\Z")
_CLASS = re.compile(r"(0[xX])?([0-9A-Fa-f]{2}|[0-9A-Fa-f]{4}|[0-9A-Fa-f]{6})\Z")


def property_conditions(r: Reader, src: Src, field: str, key: str) -> list[Condition[Any]]:
    """``properties: {NAME: glob}``: udev properties of the device (both kinds)."""
    keys = read_map(src, field, r.issues, None)
    if keys is None:
        return []
    pairs, _ = r.named(keys, field, _property_name_problem, r.globs)
    return [PropertyCondition(f"match.properties.{name}", name, globs) for name, globs in pairs if globs]


def _property_name_problem(name: str) -> str | None:
    return None if PROPERTY_KEY.match(name) else f"{quote(name)} is not a udev property name"


def _subsystem(r: Reader, src: Src, field: str, key: str) -> list[Condition[Any]]:
    names = r.names(src, field, allow_empty=False)
    return [NodeSubsystemCondition(f"match.{key}", frozenset(names))] if names else []


def _glob_builder(kind: type[Any]) -> Callable[[Reader, Src, str, str], list[Condition[Any]]]:
    def build(r: Reader, src: Src, field: str, key: str) -> list[Condition[Any]]:
        globs = r.globs(src, field)
        return [kind(f"match.{key}", globs)] if globs else []

    return build


def _serial(r: Reader, src: Src, field: str, key: str) -> list[Condition[Any]]:
    globs = r.globs(src, field)
    return [StringCondition(f"match.{key}", "serial", globs)] if globs else []


def _attribute_globs(r: Reader, src: Src, field: str) -> list[tuple[str, Any]] | None:
    """``{name: glob or [globs]}`` of sysfs attributes; None when any entry is wrong."""
    before = len(r.issues.items)
    keys = read_map(src, field, r.issues, None)
    if keys is None:
        return None
    if not keys and len(r.issues.items) == before:  # not when its only keys were wrong
        r.error(src, field, "give at least one attribute (leave the key out to match any device)")
        return None
    pairs, ok = r.named(keys, field, _attribute_name_problem, r.globs)
    return pairs if ok else None


def _attribute_name_problem(name: str) -> str | None:
    if SYSFS_ATTRIBUTE.match(name):
        return None
    return f"{quote(name)} is not a sysfs attribute name (e.g. 'type', 'device/vendor')"


def _attributes(r: Reader, src: Src, field: str, key: str) -> list[Condition[Any]]:
    pairs = _attribute_globs(r, src, field)
    if pairs is None:
        return []
    return [AttributeCondition(f"match.attributes.{name}", name, globs) for name, globs in pairs]


def _parent_attributes(r: Reader, src: Src, field: str, key: str) -> list[Condition[Any]]:
    pairs = _attribute_globs(r, src, field)
    return [ParentAttributesCondition(f"match.{key}", tuple(pairs))] if pairs else []


def _pci(r: Reader, src: Src, field: str, key: str) -> list[Condition[Any]]:
    before = len(r.issues.items)
    keys = read_map(src, field, r.issues, PCI_KEYS)
    if keys is None:
        return []
    if not keys and len(r.issues.items) == before:  # not when its only keys were wrong
        r.error(src, field, f"give at least one of {', '.join(PCI_KEYS)}")
        return []
    out: list[Condition[Any]] = []
    for name in PCI_KEYS:
        if name not in keys:
            continue
        value, sub = keys[name][1], f"{field}.{name}"
        if name == "slot":
            globs = r.globs(value, sub)
            if globs:
                out.append(PciSlotCondition(f"match.pci.{name}", globs))
        elif name == "class":
            prefixes = _class_prefixes(r, value, sub)
            if prefixes:
                out.append(PciClassCondition(f"match.pci.{name}", prefixes))
        else:
            ids = r.hex_set(value, sub, 0xFFFF, "PCI id")
            if ids:
                out.append(PciIdCondition(f"match.pci.{name}", name, ids))
    return out


def _class_prefixes(r: Reader, src: Src, field: str) -> frozenset[tuple[int, int]] | None:
    """PCI class codes as lspci writes them: 2, 4 or 6 hex digits (``0x0700``: serial controller)."""
    items = r.items(src, field)
    if items is None:
        return None
    prefixes: set[tuple[int, int]] = set()
    ok = True
    for element, sub in items:
        text = r.text(element, sub)
        match = _CLASS.match(text.strip()) if text is not None else None
        if match is None:
            if text is not None:
                r.error(element, sub, f"{quote(text)} is not a PCI class code: write 2, 4 or 6 hex digits "
                        "as lspci -nn shows them, e.g. 0x0700 (serial controller)")  # fmt: skip
            ok = False
            continue
        digits = match.group(2)
        prefixes.add((len(digits), int(digits, 16)))
    return frozenset(prefixes) if ok else None


# The kind: udev match schema as data: each key and the builder of its conditions.
UDEV_MATCH_BUILDERS: dict[str, Callable[[Reader, Src, str, str], list[Condition[Any]]]] = {
    "subsystem": _subsystem,
    "kernel": _glob_builder(KernelCondition),
    "devnode": _glob_builder(DevnodeCondition),
    "serial": _serial,
    "port": _glob_builder(NodePortCondition),
    "properties": property_conditions,
    "attributes": _attributes,
    "driver": _glob_builder(NodeDriverCondition),
    "platform": _glob_builder(PlatformCondition),
    "pci": _pci,
    "parent_attributes": _parent_attributes,
}
