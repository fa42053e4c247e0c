"""The rules schema: the validator that builds Rule records (``discovery.rules.model``) from input.

The validator reads the positioned tree of ``discovery.rules.tree`` (YAML or plain data alike),
checks every key and value, and reports every problem it finds into one ``Issues`` list, so a user
fixes a file in one pass. A rule with any problem is left out; the caller refuses the whole source
when there is any problem at all ("a rejected file changes nothing").
"""

from __future__ import annotations

import difflib
import math
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from discovery.rules.conditions import (
    Condition,
    DriverCondition,
    Glob,
    GlobError,
    IdCondition,
    InterfaceClassCondition,
    InterfaceCondition,
    PortCondition,
    PropertyCondition,
    StringCondition,
    SubsystemCondition,
    compile_glob,
)
from discovery.durations import DurationError, format_duration, parse_duration
from discovery.rules.errors import RuleIssue
from discovery.rules.model import (
    DEFAULT_INTERVAL,
    DEFAULT_PERMISSIONS,
    DEFAULT_TIMEOUT,
    AttrSpec,
    AttrValue,
    GroupKey,
    GroupSpec,
    HealthSpec,
    MountSpec,
    Rule,
)
from discovery.rules.tree import Issues, Src, quote
from discovery.rules.templates import Placeholder, Template, TemplateError, parse_template

MAX_RULES = 10_000

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
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
SUBSYSTEM_NAME = re.compile(r"[a-z0-9_][a-z0-9_\-]*\Z")
PROPERTY_KEY = re.compile(r"[A-Za-z0-9_.]+\Z")
# Characters that a group name may not contain: Nomad splits requests on '/', and whitespace or
# control characters make names that cannot be written in a job file.
GROUP_FORBIDDEN = re.compile(r"[\s/\x00-\x1f\x7f]")
RESERVED_ENV = frozenset({"NVIDIA_VISIBLE_DEVICES"})  # docker reads it as "use the NVIDIA runtime"
HOST_ROOTS = ("/dev/", "/sys/")

RULE_KEYS = (
    "name", "match", "ignore", "group", "attributes", "children", "permissions",
    "env", "mounts", "health", "reset", "require_driver",
)  # fmt: skip
MATCH_KEYS = (
    "vendor_id", "product_id", "serial", "manufacturer", "product", "properties",
    "subsystem", "device_class", "interface_class", "interface", "port", "driver",
)  # fmt: skip
IGNORE_RULE_KEYS = frozenset({"name", "match", "ignore"})
GROUP_KEYS = ("vendor", "type", "name")
ATTR_SPEC_KEYS = ("value", "type", "unit")
MOUNT_KEYS = ("host_path", "task_path", "read_only")
HEALTH_KEYS = ("command", "interval", "timeout")
INTERFACE_KEYS = ("class", "subclass", "protocol")

MIN_INTERVAL = 1.0


# ---------------------------------------------------------------------------------------------
# Value converters shared by load time and match time


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


# ---------------------------------------------------------------------------------------------
# The validator


def rules_from_tree(root: Src, issues: Issues) -> list[Rule]:
    """Rules of a whole YAML document: a mapping with one key, ``rules``, holding a list."""
    if root.kind == "seq":
        issues.add(root, "", "the top level is a list; put the rules under a 'rules:' key")
        return []
    before = len(issues.items)
    top = _read_map(root, "", issues, ("rules",))
    if top is None:
        return []
    if "rules" not in top:
        if len(issues.items) == before:  # an unknown or empty key already explains the absence
            issues.add(root, "", "no 'rules:' list (write 'rules: []' for none)")
        return []
    return rules_from_list(top["rules"][1], issues, "rules")


def rules_from_list(src: Src, issues: Issues, prefix: str) -> list[Rule]:
    """Rules of a list of rule mappings; ``prefix`` starts each field path (``rules``)."""
    if src.kind != "seq":
        issues.add(src, prefix, f"expected a list of rules, got {src.kind_name}")
        return []
    elements = src.elements()
    if len(elements) > MAX_RULES:
        issues.add(src, prefix, f"{len(elements)} rules; the limit is {MAX_RULES}")
        return []
    rules = []
    for index, element in enumerate(elements):
        rule = _Validator(issues).rule(element, index, f"{prefix}[{index}]")
        if rule is not None:
            rules.append(rule)
    return rules


def group_conflicts(rules: Sequence[Rule]) -> list[RuleIssue]:
    """Rules that make the same static group with different attributes (one issue per later rule)."""
    found: list[RuleIssue] = []
    first: dict[GroupKey, Rule] = {}
    for rule in rules:
        if rule.ignore or rule.group is None:
            continue
        key = rule.group.static_key
        if key is None:
            continue
        earlier = first.setdefault(key, rule)
        if earlier is rule:
            continue
        difference = attribute_difference(earlier.attributes, rule.attributes)
        if difference:
            found.append(
                RuleIssue(
                    rule.source,
                    rule.line,
                    rule.column,
                    f"{rule.field}.group",
                    f"group {key} is also made by {earlier.describe()} with different attributes: "
                    f"{difference} (a group has one set of attributes; give this group another name)",
                )
            )
    return found


def attribute_difference(there: Sequence[AttrSpec], here: Sequence[AttrSpec]) -> str | None:
    """The first difference between two rules' attributes, in words, or None when they agree."""
    theirs = {attr.key: attr for attr in there}
    mine = {attr.key: attr for attr in here}
    for key in sorted(set(theirs) | set(mine)):
        a, b = theirs.get(key), mine.get(key)
        if a is None and b is not None:
            return f"{quote(key)} is set only here"
        if b is None and a is not None:
            return f"{quote(key)} is missing here"
        if a is not None and b is not None and a.signature != b.signature:
            return f"{quote(key)} is {a.describe()} there and {b.describe()} here"
    return None


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def _unknown_key(key: str, valid: Sequence[str], elsewhere: dict[str, str]) -> str:
    message = f"unknown key {quote(key)}"
    if key in elsewhere:
        return f"{message}: it belongs {elsewhere[key]}"
    close = difflib.get_close_matches(key.lower(), valid, n=1, cutoff=0.6)
    if close:
        return f"{message}; did you mean {quote(close[0])}?"
    return f"{message} (valid keys: {', '.join(valid)})"


_ELSEWHERE_RULE = dict.fromkeys(MATCH_KEYS, "under 'match:'") | {
    "vendor": "under 'group:'",
    "type": "under 'group:'",
}
_ELSEWHERE_MATCH = {key: "at the rule level, beside 'match:'" for key in RULE_KEYS if key != "name"}


def _read_map(
    src: Src,
    field: str,
    issues: Issues,
    keys: Sequence[str] | None,
    elsewhere: dict[str, str] | None = None,
) -> dict[str, tuple[Src, Src]] | None:
    """Key -> (key source, value source) of a mapping; with ``keys``, unknown keys are errors."""
    if src.kind != "map":
        issues.add(src, field, f"expected a mapping, got {src.kind_name}")
        return None
    result: dict[str, tuple[Src, Src]] = {}
    for key, key_src, value_src in src.entries(issues, field):
        if keys is not None and key not in keys:
            issues.add(key_src, _join(field, key), _unknown_key(key, keys, elsewhere or {}))
            continue
        if value_src.kind == "null":
            issues.add(key_src, _join(field, key), "has no value (give one, or remove the key)")
            continue
        result[key] = (key_src, value_src)
    return result


class _Validator:
    """Builds one Rule from its source, adding every problem to ``issues``."""

    def __init__(self, issues: Issues) -> None:
        self.issues = issues

    def error(self, at: Src | None, field: str, message: str) -> None:
        self.issues.add(at, field, message)

    # -- rule ----------------------------------------------------------------------------------

    def rule(self, src: Src, index: int, field: str) -> Rule | None:
        before = len(self.issues.items)
        keys = _read_map(src, field, self.issues, RULE_KEYS, _ELSEWHERE_RULE)
        if keys is None:
            return None
        value = {key: pair[1] for key, pair in keys.items()}
        label = f"rule #{index + 1}"
        if "name" in value:
            label = self.text(value["name"], f"{field}.name", non_empty=True) or label
        before_ignore = len(self.issues.items)
        ignore = self.boolean(value.get("ignore"), f"{field}.ignore", False)
        ignore_valid = len(self.issues.items) == before_ignore
        conditions = self.match(value["match"], f"{field}.match") if "match" in value else ()
        rule = Rule(
            index=index,
            label=label,
            source=self.issues.source,
            line=src.line,
            column=src.column,
            field=field,
            conditions=conditions,
            ignore=ignore,
        )
        # With a bad 'ignore' it is unknown what else the rule needs: report only that.
        if ignore_valid and ignore:
            for key, (key_src, _) in keys.items():
                if key not in IGNORE_RULE_KEYS:
                    self.error(key_src, f"{field}.{key}", "an ignore rule takes only 'name' and 'match'")
        elif ignore_valid and "group" not in value:
            missing = "missing: every rule that is not 'ignore: true' needs a group with vendor, type and name"
            self.error(src, f"{field}.group", missing)
        elif ignore_valid:
            rule = self.with_outputs(rule, value, field)
        if len(self.issues.items) > before:
            return None
        return rule

    def with_outputs(self, rule: Rule, value: dict[str, Src], field: str) -> Rule:
        """``rule`` with everything a non-ignore rule makes of its devices (errors go to ``issues``)."""
        children = None
        if "children" in value:
            names = self.names(value["children"], f"{field}.children", allow_empty=True)
            children = frozenset(names) if names is not None else None
        permissions = DEFAULT_PERMISSIONS
        if "permissions" in value:
            permissions = self.permissions(value["permissions"], f"{field}.permissions") or DEFAULT_PERMISSIONS
        return replace(
            rule,
            group=self.group(value["group"], f"{field}.group"),
            attributes=self.attributes(value["attributes"], f"{field}.attributes") if "attributes" in value else (),
            children=children,
            permissions=permissions,
            env=self.env(value["env"], f"{field}.env") if "env" in value else (),
            mounts=self.mounts(value["mounts"], f"{field}.mounts") if "mounts" in value else (),
            health=self.health(value["health"], f"{field}.health") if "health" in value else None,
            reset=self.boolean(value.get("reset"), f"{field}.reset", False),
            require_driver=self.boolean(value.get("require_driver"), f"{field}.require_driver", False),
        )

    # -- match ---------------------------------------------------------------------------------

    def match(self, src: Src, field: str) -> tuple[Condition, ...]:
        keys = _read_map(src, field, self.issues, MATCH_KEYS, _ELSEWHERE_MATCH)
        if keys is None:
            return ()
        conditions: list[Condition] = []
        for key in MATCH_KEYS:  # schema order: cheap id checks first, and a stable explain order
            if key in keys:
                conditions.extend(_MATCH_BUILDERS[key](self, keys[key][1], f"{field}.{key}", key))
        return tuple(conditions)

    def id_condition(self, src: Src, field: str, key: str) -> list[Condition]:
        if key == "device_class":
            ids = self.hex_set(src, field, 0xFF, "class code")
            return [IdCondition(f"match.{key}", key, ids, 2)] if ids else []
        ids = self.hex_set(src, field, 0xFFFF, "USB id")
        return [IdCondition(f"match.{key}", key, ids, 4)] if ids else []

    def interface_class_condition(self, src: Src, field: str, key: str) -> list[Condition]:
        ids = self.hex_set(src, field, 0xFF, "class code")
        return [InterfaceClassCondition(f"match.{key}", ids)] if ids else []

    def string_condition(self, src: Src, field: str, key: str) -> list[Condition]:
        globs = self.globs(src, field)
        return [StringCondition(f"match.{key}", key, globs)] if globs else []

    def port_condition(self, src: Src, field: str, key: str) -> list[Condition]:
        globs = self.globs(src, field)
        return [PortCondition(f"match.{key}", globs)] if globs else []

    def driver_condition(self, src: Src, field: str, key: str) -> list[Condition]:
        globs = self.globs(src, field)
        return [DriverCondition(f"match.{key}", globs)] if globs else []

    def subsystem_condition(self, src: Src, field: str, key: str) -> list[Condition]:
        names = self.names(src, field, allow_empty=False)
        return [SubsystemCondition(f"match.{key}", frozenset(names))] if names else []

    def property_conditions(self, src: Src, field: str, key: str) -> list[Condition]:
        keys = _read_map(src, field, self.issues, None)
        if keys is None:
            return []
        out: list[Condition] = []
        for name, (key_src, value) in keys.items():
            sub = f"{field}.{name}"
            if not PROPERTY_KEY.match(name):
                self.error(key_src, sub, f"{quote(name)} is not a udev property name")
                continue
            globs = self.globs(value, sub)
            if globs:
                out.append(PropertyCondition(f"match.properties.{name}", name, globs))
        return out

    def interface_condition(self, src: Src, field: str, key: str) -> list[Condition]:
        keys = _read_map(src, field, self.issues, INTERFACE_KEYS)
        if keys is None:
            return []
        if not keys:
            self.error(src, field, "give at least one of class, subclass, protocol")
            return []
        sets = [
            self.hex_set(keys[name][1], f"{field}.{name}", 0xFF, "class code") if name in keys else None
            for name in INTERFACE_KEYS
        ]
        if any(name in keys and values is None for name, values in zip(INTERFACE_KEYS, sets, strict=True)):
            return []
        return [InterfaceCondition(f"match.{key}", sets[0], sets[1], sets[2])]

    # -- scalars and lists ---------------------------------------------------------------------

    def text(self, src: Src, field: str, non_empty: bool = False) -> str | None:
        if src.kind == "other":
            self.error(src, field, f"unsupported {src.value}")
            return None
        if not src.is_scalar:
            self.error(src, field, f"expected text, got {src.kind_name}")
            return None
        if "\x00" in src.text:
            self.error(src, field, "contains a NUL character")
            return None
        if non_empty and not src.text.strip():
            self.error(src, field, "must not be empty")
            return None
        return src.text

    def boolean(self, src: Src | None, field: str, default: bool) -> bool:
        if src is None:
            return default
        if src.kind == "bool":
            return bool(src.value)
        if src.kind == "str" and src.text.strip().lower() in ("true", "false"):
            return src.text.strip().lower() == "true"
        self.error(src, field, f"expected true or false, got {self.shown(src)}")
        return default

    def shown(self, src: Src) -> str:
        return quote(src.text) if src.is_scalar else src.kind_name

    def items(self, src: Src, field: str, allow_empty: bool = False) -> list[tuple[Src, str]] | None:
        """A scalar as a one-item list, or a list's items, each with its field path."""
        if src.is_scalar or src.kind == "other":
            return [(src, field)]
        if src.kind != "seq":
            self.error(src, field, f"expected a value or a list, got {src.kind_name}")
            return None
        elements = src.elements()
        if not elements and not allow_empty:
            self.error(src, field, "empty list (leave the condition out to match any device)")
            return None
        return [(element, f"{field}[{i}]") for i, element in enumerate(elements)]

    def hex_set(self, src: Src, field: str, maximum: int, what: str) -> frozenset[int] | None:
        items = self.items(src, field)
        if items is None:
            return None
        values: set[int] = set()
        ok = True
        for element, sub in items:
            text = self.text(element, sub)
            if text is None:
                ok = False
                continue
            try:
                values.add(parse_hex_id(text, maximum, what))
            except ValueError as exc:
                self.error(element, sub, str(exc))
                ok = False
        return frozenset(values) if ok else None

    def globs(self, src: Src, field: str) -> tuple[Glob, ...] | None:
        items = self.items(src, field)
        if items is None:
            return None
        globs: list[Glob] = []
        ok = True
        for element, sub in items:
            text = self.text(element, sub)
            if text is None:
                ok = False
                continue
            try:
                globs.append(compile_glob(text))
            except GlobError as exc:
                self.error(element, sub, f"{quote(text)}: {exc}")
                ok = False
        return tuple(globs) if ok else None

    def names(self, src: Src, field: str, allow_empty: bool) -> list[str] | None:
        items = self.items(src, field, allow_empty=allow_empty)
        if items is None:
            return None
        names: list[str] = []
        ok = True
        for element, sub in items:
            text = self.text(element, sub)
            if text is not None and not SUBSYSTEM_NAME.match(text):
                self.error(element, sub, f"{quote(text)} is not a subsystem name (tty, hidraw, usb, ...)")
                text = None
            if text is None:
                ok = False
            else:
                names.append(text)
        return names if ok else None

    def template(self, src: Src, field: str, non_empty: bool = False) -> Template | None:
        text = self.text(src, field, non_empty=non_empty)
        if text is None:
            return None
        try:
            return parse_template(text)
        except TemplateError as exc:
            self.error(src, field, f"{quote(text)}: {exc}")
            return None

    def duration(self, src: Src | None, field: str, default: float) -> float | None:
        if src is None:
            return default
        if src.kind in ("int", "float"):
            self.error(src, field, f"{src.text} has no unit (write e.g. \"{src.text}s\")")
            return None
        text = self.text(src, field)
        if text is None:
            return None
        try:
            return parse_duration(text)
        except DurationError as exc:
            self.error(src, field, str(exc))
            return None

    # -- outputs -------------------------------------------------------------------------------

    def group(self, src: Src, field: str) -> GroupSpec | None:
        keys = _read_map(src, field, self.issues, GROUP_KEYS)
        if keys is None:
            return None
        parts: dict[str, Template] = {}
        for key in GROUP_KEYS:
            if key not in keys:
                self.error(src, f"{field}.{key}", "missing (a group needs vendor, type and name)")
                continue
            value = keys[key][1]
            template = self.template(value, f"{field}.{key}", non_empty=True)
            if template is None:
                continue
            bad = GROUP_FORBIDDEN.search(template.literal_text)
            if bad:
                self.error(value, f"{field}.{key}", f"{quote(template.text)} contains {bad.group()!r}: "
                           "group names cannot hold '/', whitespace or control characters")  # fmt: skip
                continue
            parts[key] = template
        if len(parts) != len(GROUP_KEYS):
            return None
        return GroupSpec(parts["vendor"], parts["type"], parts["name"])

    def attributes(self, src: Src, field: str) -> tuple[AttrSpec, ...]:
        keys = _read_map(src, field, self.issues, None)
        if keys is None:
            return ()
        out = []
        for key, (key_src, value) in keys.items():
            sub = f"{field}.{key}"
            if not ATTR_KEY.match(key):
                self.error(key_src, sub, f"{quote(key)} is not an attribute name (letters, digits, '_', '.', '-')")
                continue
            attr = self.attribute(key, value, sub)
            if attr is not None:
                out.append(attr)
        return tuple(out)

    def attribute(self, key: str, src: Src, field: str) -> AttrSpec | None:
        kind: str | None = None
        unit: str | None = None
        unit_at: tuple[Src, str] = (src, field)
        value = src
        if src.kind == "map":
            keys = _read_map(src, field, self.issues, ATTR_SPEC_KEYS)
            if keys is None:
                return None
            if "value" not in keys:
                self.error(src, f"{field}.value", "missing (write {value: ..., unit: ...})")
                return None
            value = keys["value"][1]
            if "type" in keys:
                kind = self.text(keys["type"][1], f"{field}.type")
                if kind is None:
                    return None
                if kind not in ATTR_TYPES:
                    self.error(keys["type"][1], f"{field}.type",
                               f"{quote(kind)} is not a type (one of {', '.join(ATTR_TYPES)})")  # fmt: skip
                    return None
            if "unit" in keys:
                unit_at = (keys["unit"][1], f"{field}.unit")
                unit = self.unit(*unit_at)
                if unit is None:
                    return None
        elif not (src.is_scalar or src.kind == "other"):
            self.error(src, field, f"expected a value or {{value: ..., unit: ...}}, got {src.kind_name}")
            return None
        value_field = f"{field}.value" if value is not src else field
        return self._attribute_value(key, value, value_field, kind, unit, unit_at)

    def _attribute_value(
        self, key: str, value: Src, field: str, kind: str | None, unit: str | None, unit_at: tuple[Src, str]
    ) -> AttrSpec | None:
        if value.kind in ("bool", "int", "float") and kind is None:
            kind = value.kind
            static: object = value.value
            if kind == "float" and not math.isfinite(float(value.value)):
                self.error(value, field, "NaN and infinity cannot be compared in Nomad; give a finite number")
                return None
            if kind == "int" and not INT64_MIN <= int(value.value) <= INT64_MAX:
                self.error(value, field, f"{value.text} does not fit in 64 bits")
                return None
            return self._finish(key, kind, None, static, unit, unit_at)
        template = self.template(value, field)
        if template is None:
            return None
        if kind is None:
            if unit is None:
                kind = "string"
            elif template.is_static:
                kind = "int" if re.fullmatch(r"\s*[+-]?\d+\s*", template.text) else "float"
            else:
                self.error(value, field, "a templated value with a unit needs 'type: int' or 'type: float'")
                return None
        if not template.is_static:
            return self._finish(key, kind, template, None, unit, unit_at)
        try:
            converted = convert_attr(template.literal_text, kind)
        except ValueError as exc:
            self.error(value, field, f"{exc} (type {kind})")
            return None
        return self._finish(key, kind, None, converted, unit, unit_at)

    def _finish(
        self, key: str, kind: str, template: Template | None, static: object, unit: str | None,
        unit_at: tuple[Src, str],
    ) -> AttrSpec | None:  # fmt: skip
        if unit is not None and kind not in NUMERIC_TYPES:
            self.error(*unit_at, f"a unit goes only with a number, not a {kind} value")
            return None
        if template is not None:
            return AttrSpec(key, kind, template=template, unit=unit)
        assert isinstance(static, (bool, int, float, str))
        return AttrSpec(key, kind, static=AttrValue(static, unit), unit=unit)

    def unit(self, src: Src, field: str) -> str | None:
        text = self.text(src, field)
        if text is None:
            return None
        if text in KNOWN_UNITS:
            return text
        close = [u for u in KNOWN_UNITS if u.lower() == text.lower()]
        known = f" (Nomad knows: {', '.join(sorted(KNOWN_UNITS))})"
        hint = f"; did you mean {quote(close[0])}?" if close else known
        self.error(src, field, f"{quote(text)} is not a unit Nomad knows{hint}")
        return None

    def permissions(self, src: Src, field: str) -> str | None:
        text = self.text(src, field)
        if text is None:
            return None
        if not text or set(text) - set("rwm") or len(set(text)) != len(text):
            self.error(src, field, f"{quote(text)}: permissions are a non-empty subset of 'rwm', e.g. 'rw'")
            return None
        return "".join(char for char in "rwm" if char in text)

    def env(self, src: Src, field: str) -> tuple[tuple[str, Template], ...]:
        keys = _read_map(src, field, self.issues, None)
        if keys is None:
            return ()
        out = []
        for name, (key_src, value) in keys.items():
            sub = f"{field}.{name}"
            if not ENV_NAME.match(name):
                self.error(key_src, sub, f"{quote(name)} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
                continue
            if name in RESERVED_ENV:
                self.error(key_src, sub, f"{name} is reserved: docker would switch to the NVIDIA runtime")
                continue
            if name.startswith("NOMAD_"):
                self.error(key_src, sub, "NOMAD_ names belong to Nomad")
                continue
            template = self.template(value, sub)
            if template is not None:
                out.append((name, template))
        return tuple(out)

    def mounts(self, src: Src, field: str) -> tuple[MountSpec, ...]:
        if src.kind != "seq":
            self.error(src, field, f"expected a list of mounts, got {src.kind_name}")
            return ()
        out = []
        for i, element in enumerate(src.elements()):
            mount = self.mount(element, f"{field}[{i}]")
            if mount is not None:
                out.append(mount)
        return tuple(out)

    def mount(self, src: Src, field: str) -> MountSpec | None:
        keys = _read_map(src, field, self.issues, MOUNT_KEYS)
        if keys is None:
            return None
        if "host_path" not in keys:
            self.error(src, f"{field}.host_path", "missing")
            return None
        host = self.path(keys["host_path"][1], f"{field}.host_path", host=True)
        task = host
        if "task_path" in keys:
            task = self.path(keys["task_path"][1], f"{field}.task_path", host=False)
        read_only = self.boolean(keys["read_only"][1] if "read_only" in keys else None, f"{field}.read_only", True)
        if host is None or task is None:
            return None
        return MountSpec(host, task, read_only)

    def path(self, src: Src, field: str, host: bool) -> Template | None:
        template = self.template(src, field, non_empty=True)
        if template is None:
            return None
        # Check the shape with every placeholder as a plain name; the rendered path is checked again.
        probe = "".join("x" if isinstance(part, Placeholder) else part for part in template.parts)
        # A placeholder cannot choose the root: "x" never makes "/dev/" or "/sys/" out of other text.
        problem = path_problem(probe, host, shown=template.text)
        if problem is not None:
            self.error(src, field, problem)
            return None
        return template

    def health(self, src: Src, field: str) -> HealthSpec | None:
        keys = _read_map(src, field, self.issues, HEALTH_KEYS)
        if keys is None:
            return None
        command: list[Template] = []
        ok = True
        if "command" not in keys:
            self.error(src, f"{field}.command", "missing")
            ok = False
        else:
            command_src = keys["command"][1]
            sub = f"{field}.command"
            if command_src.is_scalar:
                self.error(command_src, sub, 'an argv list, not a shell string: write ["/usr/bin/adb", "get-state"]')
                ok = False
            elif command_src.kind != "seq" or not command_src.elements():
                self.error(command_src, sub, "expected a non-empty argv list")
                ok = False
            else:
                for i, element in enumerate(command_src.elements()):
                    template = self.template(element, f"{sub}[{i}]", non_empty=(i == 0))
                    if template is None:
                        ok = False
                    elif i == 0 and not template.is_static:
                        self.error(element, f"{sub}[0]", "the program must be written out, not a placeholder")
                        ok = False
                    else:
                        command.append(template)
        interval_src = keys["interval"][1] if "interval" in keys else None
        timeout_src = keys["timeout"][1] if "timeout" in keys else None
        interval = self.duration(interval_src, f"{field}.interval", DEFAULT_INTERVAL)
        timeout = self.duration(timeout_src, f"{field}.timeout", DEFAULT_TIMEOUT)
        if interval is not None and interval < MIN_INTERVAL:
            self.error(interval_src, f"{field}.interval", f"must be at least {format_duration(MIN_INTERVAL)}")
            interval = None
        if timeout is not None and timeout <= 0:
            self.error(timeout_src, f"{field}.timeout", "must be more than 0s")
            ok = False
        elif timeout is not None and interval is not None and timeout > interval:
            longer = f"{format_duration(timeout)} is longer than the interval {format_duration(interval)}"
            self.error(timeout_src or src, f"{field}.timeout", longer)
            ok = False
        if not ok or interval is None or timeout is None:
            return None
        return HealthSpec(tuple(command), interval, timeout)


# The match schema as data: each key of ``match:`` and the builder of its conditions.
_MATCH_BUILDERS: dict[str, Callable[[_Validator, Src, str, str], list[Condition]]] = {
    "vendor_id": _Validator.id_condition,
    "product_id": _Validator.id_condition,
    "serial": _Validator.string_condition,
    "manufacturer": _Validator.string_condition,
    "product": _Validator.string_condition,
    "properties": _Validator.property_conditions,
    "subsystem": _Validator.subsystem_condition,
    "device_class": _Validator.id_condition,
    "interface_class": _Validator.interface_class_condition,
    "interface": _Validator.interface_condition,
    "port": _Validator.port_condition,
    "driver": _Validator.driver_condition,
}
assert tuple(_MATCH_BUILDERS) == MATCH_KEYS
