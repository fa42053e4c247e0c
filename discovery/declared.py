"""Declared devices: the ``DeclaredDevice`` records a rule set declares, and the rule as each of them sees it.

A declared device is always present: it is in the device table exactly while the loaded rules
declare it, so a reload that adds one shows it and one that removes it makes it gone. Its values
double as its udev-style properties, so the ordinary template machinery fills ``{address}`` in
without a special case; ``{id}`` is its ID and ``{serial}`` a ``serial`` value when it has one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from discovery.model import DeclaredDevice, frozen_mapping
from discovery.rules.model import DeclaredSpec, Rule
from discovery.rules.templates import DeviceFacts

DECLARED_PREFIX = "declared:"  # the sys_path of a declared device: declared:<id>


def declared_devices(rules: Iterable[Rule]) -> list[DeclaredDevice]:
    """Every device the ``kind: declared`` rules declare, in rule order (IDs are unique: the loader checks)."""
    out: list[DeclaredDevice] = []
    for index, rule in enumerate(rules):
        if rule.kind != "declared":
            continue
        for spec in rule.devices:
            out.append(device_from_spec(spec, index))
    return out


def device_from_spec(spec: DeclaredSpec, rule_index: int) -> DeclaredDevice:
    values = frozen_mapping(dict(spec.values))
    probe = DeclaredDevice(device_id=spec.device_id, rule_index=rule_index, values=values, properties=values)
    facts = DeviceFacts(probe, spec.device_id)
    nodes = tuple(template.render(facts).text for template in spec.nodes)
    return replace(
        probe,
        nodes=nodes,
        device_node=nodes[0] if nodes else None,
        serial=values.get("serial"),
    )
