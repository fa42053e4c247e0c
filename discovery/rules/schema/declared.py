"""``kind:`` and the ``devices:`` of a ``kind: declared`` rule: hardware udev cannot see, listed by the operator.

A declared device has an ID the operator chose, ``values`` that its templates read as placeholders
(``{address}``), and optional nodes, env, mounts and a health check of its own. Its templates (and
its rule's) may use only ``{id}`` and the keys of its ``values``: anything else could never be
filled in, so it is an error at load time, not an empty string at run time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from discovery.rules.errors import RuleIssue
from discovery.rules.model import DeclaredSpec, Rule
from discovery.rules.schema.keys import DECLARED_DEVICE_KEYS
from discovery.rules.schema.outputs import read_env, read_health, read_mounts, read_node
from discovery.rules.schema.reader import Reader, read_map
from discovery.rules.templates import BUILTIN_PLACEHOLDERS, PROPERTY_NAME, Template
from discovery.rules.tree import Src, quote

# The operator's ID: never numeric (Nomad's ${device.ids} constraints), no comma (USB_DEVICE_IDS-style
# lists), and never "usb-..." so it cannot collide with an ID the plugin gives a discovered device.
DECLARED_ID = re.compile(r"[A-Za-z][A-Za-z0-9._:-]{0,63}\Z")
RESERVED_ID_PREFIX = "usb-"
# Built-in placeholders a declared device has a value for; "serial" comes from its values.
DECLARED_BUILTINS = frozenset({"id"})
VALUE_BUILTINS_ALLOWED = frozenset({"serial"})  # a values key may fill this built-in; the others are USB facts
MAX_DEVICES = 10_000


def read_devices(r: Reader, src: Src, field: str) -> tuple[DeclaredSpec, ...] | None:
    """``devices:``: the list of declared devices, each with its own ``id``."""
    if src.kind != "seq":
        r.error(src, field, f"expected a list of devices, got {src.kind_name}")
        return None
    elements = src.elements()
    if len(elements) > MAX_DEVICES:
        r.error(src, field, f"{len(elements)} devices; the limit is {MAX_DEVICES}")
        return None
    before = len(r.issues.items)
    specs = [_read_device(r, element, f"{field}[{i}]") for i, element in enumerate(elements)]
    if len(r.issues.items) > before:
        return None
    return tuple(spec for spec in specs if spec is not None)


def _read_device(r: Reader, src: Src, field: str) -> DeclaredSpec | None:
    keys = read_map(src, field, r.issues, DECLARED_DEVICE_KEYS)
    if keys is None:
        return None
    value = {key: pair[1] for key, pair in keys.items()}
    if "id" not in value:
        r.error(src, f"{field}.id", "missing: every declared device needs a stable ID you choose (e.g. phone-1)")
        return None
    device_id = _read_id(r, value["id"], f"{field}.id")
    values = _read_values(r, value["values"], f"{field}.values") if "values" in value else ()
    nodes = _read_nodes(r, value["nodes"], f"{field}.nodes") if "nodes" in value else ()
    env = read_env(r, value["env"], f"{field}.env") if "env" in value else ()
    mounts = read_mounts(r, value["mounts"], f"{field}.mounts") if "mounts" in value else ()
    health = read_health(r, value["health"], f"{field}.health") if "health" in value else None
    if device_id is None or values is None or nodes is None:
        return None
    return DeclaredSpec(device_id, values, nodes, env, mounts, health, src.line, src.column, field)


def _read_id(r: Reader, src: Src, field: str) -> str | None:
    text = r.text(src, field, non_empty=True)
    if text is None:
        return None
    if not DECLARED_ID.match(text):
        r.error(src, field, f"{quote(text)} is not a device ID: a letter, then up to 63 letters, digits, "
                "'.', '_', ':' or '-' (no spaces or commas)")  # fmt: skip
        return None
    if text.lower().startswith(RESERVED_ID_PREFIX):
        r.error(src, field, f"{quote(text)}: IDs starting with 'usb-' belong to discovered USB devices")
        return None
    return text


def _read_values(r: Reader, src: Src, field: str) -> tuple[tuple[str, str], ...] | None:
    """``values:``: placeholder name -> text (numbers are taken as written)."""
    keys = read_map(src, field, r.issues, None)
    if keys is None:
        return None
    pairs, ok = r.named(keys, field, _value_name_problem, r.text)
    return tuple(pairs) if ok else None


def _value_name_problem(name: str) -> str | None:
    if not PROPERTY_NAME.match(name):
        return f"{quote(name)} is not a placeholder name (letters, digits and '_')"
    if name in DECLARED_BUILTINS or (name in BUILTIN_PLACEHOLDERS and name not in VALUE_BUILTINS_ALLOWED):
        return f"{quote(name)} is a built-in placeholder; give the value another name"
    return None


def _read_nodes(r: Reader, src: Src, field: str) -> tuple[Template, ...] | None:
    """``nodes:``: device node paths under /dev (templates); resolved and checked again at reservation."""
    items = r.items(src, field, allow_empty=True)
    if items is None:
        return None
    templates = [read_node(r, element, sub) for element, sub in items]
    if any(template is None for template in templates):
        return None
    return tuple(template for template in templates if template is not None)


def check_placeholders(r: Reader, rule: Rule) -> None:
    """Every template a declared device renders uses only ``{id}`` and that device's values."""
    rule_templates = list(_rule_templates(rule))
    for spec in rule.devices:
        known = DECLARED_BUILTINS | {name for name, _ in spec.values}
        for where, template in rule_templates + list(_device_templates(spec)):
            unknown = [name for name in template.placeholders if name not in known]
            if unknown:
                given = ", ".join(sorted(known))
                r.issues.items.append(RuleIssue(
                    r.issues.source, spec.line, spec.column, f"{spec.field}",
                    f"{where} uses {{{unknown[0]}}}, which device {quote(spec.device_id)} has no value for "
                    f"(a declared device has only: {given}; add it under 'values:')",
                ))  # fmt: skip
                break  # one message per device is enough to find the typo


def _rule_templates(rule: Rule) -> Iterator[tuple[str, Template]]:
    for where, template in rule.templates():
        yield f"{rule.field}.{where}", template


def _device_templates(spec: DeclaredSpec) -> Iterator[tuple[str, Template]]:
    for i, template in enumerate(spec.nodes):
        yield f"{spec.field}.nodes[{i}]", template
    for name, template in spec.env:
        yield f"{spec.field}.env.{name}", template
    for i, mount in enumerate(spec.mounts):
        yield f"{spec.field}.mounts[{i}].host_path", mount.host_path
        yield f"{spec.field}.mounts[{i}].task_path", mount.task_path
    if spec.health is not None:
        for i, template in enumerate(spec.health.command):
            yield f"{spec.field}.health.command[{i}]", template


def declared_id_conflicts(rules: Sequence[Rule]) -> list[RuleIssue]:
    """Declared IDs given twice (in one rule or across rules): an ID names one device."""
    found: list[RuleIssue] = []
    first: dict[str, tuple[Rule, DeclaredSpec]] = {}
    for rule in rules:
        for spec in rule.devices:
            earlier = first.setdefault(spec.device_id, (rule, spec))
            if earlier[1] is spec:
                continue
            where = earlier[1].field + (f" ({earlier[0].source}:{earlier[1].line})" if earlier[1].line else
                                        f" ({earlier[0].source})")
            found.append(RuleIssue(rule.source, spec.line, spec.column, f"{spec.field}.id",
                                   f"device ID {quote(spec.device_id)} is already declared at {where}; "
                                   "every declared device needs its own ID"))  # fmt: skip
    return found
