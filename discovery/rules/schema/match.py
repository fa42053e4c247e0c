"""The ``match:`` section of a rule: each key's value checked and compiled into conditions, per kind of rule.

This module holds the ``kind: usb`` keys; ``udev_match`` holds those of ``kind: udev``. A key of
another kind is refused with a message that names the rule's kind and what to write instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from discovery.rules.conditions import (
    Condition,
    DriverCondition,
    IdCondition,
    InterfaceClassCondition,
    InterfaceCondition,
    PortCondition,
    StringCondition,
    SubsystemCondition,
)
from discovery.rules.schema.keys import (
    INTERFACE_KEYS,
    MATCH_KEYS_BY_KIND,
    MISPLACED_IN_MATCH,
    USB_MATCH_KEYS,
    WRONG_KIND_MATCH,
)
from discovery.rules.schema.reader import Reader, read_map
from discovery.rules.schema.udev_match import UDEV_MATCH_BUILDERS, property_conditions
from discovery.rules.tree import Src, quote

Builder = Callable[[Reader, Src, str, str], list[Condition[Any]]]


def read_match(r: Reader, src: Src, field: str, kind: str = "usb") -> tuple[Condition[Any], ...]:
    """The ``match:`` mapping of a rule of ``kind`` as conditions, in schema order."""
    valid = MATCH_KEYS_BY_KIND[kind]
    refused = {
        key: f"{quote(key)} is not a match key of a 'kind: {kind}' rule"
        + (" (the default kind)" if kind == "usb" else "")
        + f": {hint}"
        for key, hint in WRONG_KIND_MATCH.get(kind, {}).items()
    }
    keys = read_map(src, field, r.issues, valid, MISPLACED_IN_MATCH, refused)
    if keys is None:
        return ()
    builders = _BUILDERS_BY_KIND[kind]
    conditions: list[Condition[Any]] = []
    for key in valid:  # schema order: cheap checks first, and a stable explain order
        if key in keys:
            conditions.extend(builders[key](r, keys[key][1], f"{field}.{key}", key))
    return tuple(conditions)


def _id_condition(r: Reader, src: Src, field: str, key: str) -> list[Condition[Any]]:
    if key == "device_class":
        ids = r.hex_set(src, field, 0xFF, "class code")
        return [IdCondition(f"match.{key}", key, ids, 2)] if ids else []
    ids = r.hex_set(src, field, 0xFFFF, "USB id")
    return [IdCondition(f"match.{key}", key, ids, 4)] if ids else []


def _interface_class_condition(r: Reader, src: Src, field: str, key: str) -> list[Condition[Any]]:
    ids = r.hex_set(src, field, 0xFF, "class code")
    return [InterfaceClassCondition(f"match.{key}", ids)] if ids else []


def _string_condition(r: Reader, src: Src, field: str, key: str) -> list[Condition[Any]]:
    globs = r.globs(src, field)
    return [StringCondition(f"match.{key}", key, globs)] if globs else []


def _port_condition(r: Reader, src: Src, field: str, key: str) -> list[Condition[Any]]:
    globs = r.globs(src, field)
    return [PortCondition(f"match.{key}", globs)] if globs else []


def _driver_condition(r: Reader, src: Src, field: str, key: str) -> list[Condition[Any]]:
    globs = r.globs(src, field)
    return [DriverCondition(f"match.{key}", globs)] if globs else []


def _subsystem_condition(r: Reader, src: Src, field: str, key: str) -> list[Condition[Any]]:
    names = r.names(src, field, allow_empty=False)
    return [SubsystemCondition(f"match.{key}", frozenset(names))] if names else []


def _interface_condition(r: Reader, src: Src, field: str, key: str) -> list[Condition[Any]]:
    keys = read_map(src, field, r.issues, INTERFACE_KEYS)
    if keys is None:
        return []
    if not keys:
        r.error(src, field, "give at least one of class, subclass, protocol")
        return []
    sets = [
        r.hex_set(keys[name][1], f"{field}.{name}", 0xFF, "class code") if name in keys else None
        for name in INTERFACE_KEYS
    ]
    if any(name in keys and values is None for name, values in zip(INTERFACE_KEYS, sets, strict=True)):
        return []
    return [InterfaceCondition(f"match.{key}", sets[0], sets[1], sets[2])]


# The kind: usb match schema as data: each key of ``match:`` and the builder of its conditions.
_MATCH_BUILDERS: dict[str, Builder] = {
    "vendor_id": _id_condition,
    "product_id": _id_condition,
    "serial": _string_condition,
    "manufacturer": _string_condition,
    "product": _string_condition,
    "properties": property_conditions,
    "subsystem": _subsystem_condition,
    "device_class": _id_condition,
    "interface_class": _interface_class_condition,
    "interface": _interface_condition,
    "port": _port_condition,
    "driver": _driver_condition,
}
assert tuple(_MATCH_BUILDERS) == USB_MATCH_KEYS
_BUILDERS_BY_KIND: dict[str, dict[str, Builder]] = {"usb": _MATCH_BUILDERS, "udev": UDEV_MATCH_BUILDERS}
assert {kind: tuple(b) for kind, b in _BUILDERS_BY_KIND.items()} == MATCH_KEYS_BY_KIND
