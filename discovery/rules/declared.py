"""How a ``kind: declared`` rule takes its devices: by ID, and with each device's own env, mounts and health."""

from __future__ import annotations

from dataclasses import replace

from discovery.model import DeclaredDevice
from discovery.rules.model import DeclaredSpec, Rule


def declaring_spec(rule: Rule, device: DeclaredDevice) -> DeclaredSpec | None:
    """The entry of ``rule``'s ``devices:`` that declares ``device``, if this rule declares it."""
    if rule.kind != "declared":
        return None
    for spec in rule.devices:
        if spec.device_id == device.device_id:
            return spec
    return None


def rule_for_device(rule: Rule, spec: DeclaredSpec) -> Rule:
    """``rule`` as one of its declared devices sees it: the device's env over the rule's, its mounts
    after the rule's, its health check instead of the rule's."""
    if not (spec.env or spec.mounts or spec.health):
        return rule
    env = dict(rule.env)
    env.update(spec.env)
    return replace(
        rule,
        env=tuple(env.items()),
        mounts=rule.mounts + spec.mounts,
        health=spec.health if spec.health is not None else rule.health,
    )
