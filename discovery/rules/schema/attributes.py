"""The ``attributes:`` section of a rule: names, typed values and units as Nomad will compare them."""

from __future__ import annotations

import math
import re

from discovery.rules.model import PLUGIN_ATTRIBUTES, AttrSpec, AttrValue
from discovery.rules.schema.keys import ATTR_SPEC_KEYS
from discovery.rules.schema.reader import Reader, read_map
from discovery.rules.schema.values import (
    ATTR_KEY,
    ATTR_TYPES,
    INT64_MAX,
    INT64_MIN,
    KNOWN_UNITS,
    NUMERIC_TYPES,
    convert_attr,
)
from discovery.rules.templates import Template
from discovery.rules.tree import Src, quote


def read_attributes(r: Reader, src: Src, field: str) -> tuple[AttrSpec, ...]:
    """The ``attributes:`` mapping: each name checked, each value typed (static or a template)."""
    keys = read_map(src, field, r.issues, None)
    if keys is None:
        return ()
    out = []
    for key, (key_src, value) in keys.items():
        sub = f"{field}.{key}"
        if not ATTR_KEY.match(key):
            r.error(key_src, sub, f"{quote(key)} is not an attribute name (letters, digits, '_', '.', '-')")
            continue
        if key in PLUGIN_ATTRIBUTES:
            r.error(key_src, sub, f"{quote(key)} is set by the plugin (the number of healthy devices in "
                    "the group); give this attribute another name")
            continue
        attr = _read_attribute(r, key, value, sub)
        if attr is not None:
            out.append(attr)
    return tuple(out)


def _read_attribute(r: Reader, key: str, src: Src, field: str) -> AttrSpec | None:
    kind: str | None = None
    unit: str | None = None
    unit_at: tuple[Src, str] = (src, field)
    value = src
    if src.kind == "map":
        keys = read_map(src, field, r.issues, ATTR_SPEC_KEYS)
        if keys is None:
            return None
        if "value" not in keys:
            r.error(src, f"{field}.value", "missing (write {value: ..., unit: ...})")
            return None
        value = keys["value"][1]
        if "type" in keys:
            kind = r.text(keys["type"][1], f"{field}.type")
            if kind is None:
                return None
            if kind not in ATTR_TYPES:
                r.error(keys["type"][1], f"{field}.type",
                        f"{quote(kind)} is not a type (one of {', '.join(ATTR_TYPES)})")  # fmt: skip
                return None
        if "unit" in keys:
            unit_at = (keys["unit"][1], f"{field}.unit")
            unit = _read_unit(r, *unit_at)
            if unit is None:
                return None
    elif not (src.is_scalar or src.kind == "other"):
        r.error(src, field, f"expected a value or {{value: ..., unit: ...}}, got {src.kind_name}")
        return None
    value_field = f"{field}.value" if value is not src else field
    return _attribute_value(r, key, value, value_field, kind, unit, unit_at)


def _attribute_value(
    r: Reader, key: str, value: Src, field: str, kind: str | None, unit: str | None, unit_at: tuple[Src, str]
) -> AttrSpec | None:
    if value.kind in ("bool", "int", "float") and kind is None:
        kind = value.kind
        static: object = value.value
        if kind == "float" and not math.isfinite(float(value.value)):
            r.error(value, field, "NaN and infinity cannot be compared in Nomad; give a finite number")
            return None
        if kind == "int" and not INT64_MIN <= int(value.value) <= INT64_MAX:
            r.error(value, field, f"{value.text} does not fit in 64 bits")
            return None
        return _finish(r, key, kind, None, static, unit, unit_at)
    template = r.template(value, field)
    if template is None:
        return None
    if kind is None:
        if unit is None:
            kind = "string"
        elif template.is_static:
            kind = "int" if re.fullmatch(r"\s*[+-]?\d+\s*", template.text) else "float"
        else:
            r.error(value, field, "a templated value with a unit needs 'type: int' or 'type: float'")
            return None
    if not template.is_static:
        return _finish(r, key, kind, template, None, unit, unit_at)
    try:
        converted = convert_attr(template.literal_text, kind)
    except ValueError as exc:
        r.error(value, field, f"{exc} (type {kind})")
        return None
    return _finish(r, key, kind, None, converted, unit, unit_at)


def _finish(
    r: Reader, key: str, kind: str, template: Template | None, static: object, unit: str | None,
    unit_at: tuple[Src, str],
) -> AttrSpec | None:  # fmt: skip
    if unit is not None and kind not in NUMERIC_TYPES:
        r.error(*unit_at, f"a unit goes only with a number, not a {kind} value")
        return None
    if template is not None:
        return AttrSpec(key, kind, template=template, unit=unit)
    assert isinstance(static, (bool, int, float, str))
    return AttrSpec(key, kind, static=AttrValue(static, unit), unit=unit)


def _read_unit(r: Reader, src: Src, field: str) -> str | None:
    text = r.text(src, field)
    if text is None:
        return None
    if text in KNOWN_UNITS:
        return text
    close = [u for u in KNOWN_UNITS if u.lower() == text.lower()]
    known = f" (Nomad knows: {', '.join(sorted(KNOWN_UNITS))})"
    hint = f"; did you mean {quote(close[0])}?" if close else known
    r.error(src, field, f"{quote(text)} is not a unit Nomad knows{hint}")
    return None
