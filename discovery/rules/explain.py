"""Explaining a match: every rule's verdict on one device, condition by condition, and who won."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from discovery.model import DeclaredDevice, Device
from discovery.rules.declared import declaring_spec
from discovery.rules.matching import render_group
from discovery.rules.model import GroupKey, Rule
from discovery.rules.templates import DeviceFacts
from discovery.rules.tree import quote


@dataclass(frozen=True)
class ConditionResult:
    """One condition of one rule, checked against one device (a line of ``explain``)."""

    field: str
    expected: str
    actual: str
    ok: bool


@dataclass(frozen=True)
class RuleVerdict:
    """How one rule judged one device.

    ``matched``: every condition held and the group name rendered. ``winner``: the first matching
    rule, which decides (for an ignore rule: the device is excluded). ``shadowed``: it matched, but an
    earlier rule had already won. ``reason`` says in words why it did not match.
    """

    rule: Rule
    conditions: tuple[ConditionResult, ...]
    matched: bool
    winner: bool
    shadowed: bool
    group: GroupKey | None = None
    reason: str | None = None

    @property
    def excluded(self) -> bool:
        """True when this verdict excludes the device (a winning ignore rule)."""
        return self.winner and self.rule.ignore

    def lines(self) -> list[str]:
        """Human lines for the CLI: a heading, then one line per condition."""
        if self.winner:
            outcome = "WINNER: device excluded" if self.rule.ignore else f"WINNER -> {self.group}"
        elif self.shadowed:
            outcome = "matches, but an earlier rule won"
        else:
            outcome = f"no match: {self.reason}"
        out = [f"{self.rule.describe()}: {outcome}"]
        if not self.conditions and self.rule.kind == "usb":
            out.append("    (no conditions: matches every device)")
        elif all(result.field == "kind" and result.ok for result in self.conditions):
            out.append(f"    (no other conditions: matches every kind: {self.rule.kind} device)")
        for result in self.conditions:
            mark = "ok  " if result.ok else "FAIL"
            out.append(f"  {mark} {result.field}: {result.actual} (wanted {result.expected})")
        return out


def verdicts_for(rules: Iterable[Rule], device: Device, device_id: str | None = None) -> list[RuleVerdict]:
    """How every rule judges ``device``, in order: each condition, and who won.

    A rule of another kind is judged on its kind alone (its conditions are about other devices).
    The kind is shown as a first condition whenever the rule or the device is not USB.
    """
    facts = DeviceFacts(device, device_id)
    verdicts: list[RuleVerdict] = []
    decided = False
    for rule in rules:
        results = _results(rule, device)
        failed = [r for r in results if not r.ok]
        matched = not failed
        group: GroupKey | None = None
        reason: str | None = None
        if failed:
            first = failed[0]
            reason = f"{first.field} is {first.actual}, wanted {first.expected}"
        elif not rule.ignore:
            rendered = render_group(rule, facts)
            if isinstance(rendered, GroupKey):
                group = rendered
            else:
                where, template, why = rendered
                results.append(ConditionResult(where, quote(template), why, False))
                matched = False
                reason = f"{where} {quote(template)} cannot be rendered: {why}"
        verdicts.append(
            RuleVerdict(
                rule=rule,
                conditions=tuple(results),
                matched=matched,
                winner=matched and not decided,
                shadowed=matched and decided,
                group=group,
                reason=reason,
            )
        )
        decided = decided or matched
    return verdicts


def _results(rule: Rule, device: Device) -> list[ConditionResult]:
    """The rule's conditions checked on ``device``, after its kind when the rule or the device is not USB;
    a rule of another kind fails on its kind alone."""
    results: list[ConditionResult] = []
    if rule.kind != "usb" or device.kind != "usb":
        results.append(ConditionResult("kind", rule.kind, device.kind, rule.kind == device.kind))
    if rule.kind != device.kind:
        return results
    if isinstance(device, DeclaredDevice):
        declared = declaring_spec(rule, device) is not None
        ids = ", ".join(spec.device_id for spec in rule.devices) or "none"
        return [*results, ConditionResult("devices", f"one of {ids}", quote(device.device_id), declared)]
    return [*results, *(ConditionResult(c.field, c.expected, c.actual(device), c.test(device)) for c in rule.conditions)]
