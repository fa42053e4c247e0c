"""The ``match:`` section of a rule: each key's value checked and compiled into conditions."""

from __future__ import annotations

from collections.abc import Callable

from discovery.rules.conditions import (
    Condition,
    DriverCondition,
    IdCondition,
    InterfaceClassCondition,
    InterfaceCondition,
    PortCondition,
    PropertyCondition,
    StringCondition,
    SubsystemCondition,
)
from discovery.rules.schema.keys import INTERFACE_KEYS, MATCH_KEYS, MISPLACED_IN_MATCH
from discovery.rules.schema.reader import Reader, read_map
from discovery.rules.schema.values import PROPERTY_KEY
from discovery.rules.tree import Src, quote


def read_match(r: Reader, src: Src, field: str) -> tuple[Condition, ...]:
    """The ``match:`` mapping as conditions, in schema order."""
    keys = read_map(src, field, r.issues, MATCH_KEYS, MISPLACED_IN_MATCH)
    if keys is None:
        return ()
    conditions: list[Condition] = []
    for key in MATCH_KEYS:  # schema order: cheap id checks first, and a stable explain order
        if key in keys:
            conditions.extend(_MATCH_BUILDERS[key](r, keys[key][1], f"{field}.{key}", key))
    return tuple(conditions)


def _id_condition(r: Reader, src: Src, field: str, key: str) -> list[Condition]:
    if key == "device_class":
        ids = r.hex_set(src, field, 0xFF, "class code")
        return [IdCondition(f"match.{key}", key, ids, 2)] if ids else []
    ids = r.hex_set(src, field, 0xFFFF, "USB id")
    return [IdCondition(f"match.{key}", key, ids, 4)] if ids else []


def _interface_class_condition(r: Reader, src: Src, field: str, key: str) -> list[Condition]:
    ids = r.hex_set(src, field, 0xFF, "class code")
    return [InterfaceClassCondition(f"match.{key}", ids)] if ids else []


def _string_condition(r: Reader, src: Src, field: str, key: str) -> list[Condition]:
    globs = r.globs(src, field)
    return [StringCondition(f"match.{key}", key, globs)] if globs else []


def _port_condition(r: Reader, src: Src, field: str, key: str) -> list[Condition]:
    globs = r.globs(src, field)
    return [PortCondition(f"match.{key}", globs)] if globs else []


def _driver_condition(r: Reader, src: Src, field: str, key: str) -> list[Condition]:
    globs = r.globs(src, field)
    return [DriverCondition(f"match.{key}", globs)] if globs else []


def _subsystem_condition(r: Reader, src: Src, field: str, key: str) -> list[Condition]:
    names = r.names(src, field, allow_empty=False)
    return [SubsystemCondition(f"match.{key}", frozenset(names))] if names else []


def _property_conditions(r: Reader, src: Src, field: str, key: str) -> list[Condition]:
    keys = read_map(src, field, r.issues, None)
    if keys is None:
        return []
    out: list[Condition] = []
    for name, (key_src, value) in keys.items():
        sub = f"{field}.{name}"
        if not PROPERTY_KEY.match(name):
            r.error(key_src, sub, f"{quote(name)} is not a udev property name")
            continue
        globs = r.globs(value, sub)
        if globs:
            out.append(PropertyCondition(f"match.properties.{name}", name, globs))
    return out


def _interface_condition(r: Reader, src: Src, field: str, key: str) -> list[Condition]:
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


# The match schema as data: each key of ``match:`` and the builder of its conditions.
_MATCH_BUILDERS: dict[str, Callable[[Reader, Src, str, str], list[Condition]]] = {
    "vendor_id": _id_condition,
    "product_id": _id_condition,
    "serial": _string_condition,
    "manufacturer": _string_condition,
    "product": _string_condition,
    "properties": _property_conditions,
    "subsystem": _subsystem_condition,
    "device_class": _id_condition,
    "interface_class": _interface_class_condition,
    "interface": _interface_condition,
    "port": _port_condition,
    "driver": _driver_condition,
}
assert tuple(_MATCH_BUILDERS) == MATCH_KEYS
