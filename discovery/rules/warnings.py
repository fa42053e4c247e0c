"""Warnings for ``validate``: rules that can never win, likely typos, and trouble seen on attached devices."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence

from discovery.model import Device
from discovery.rules.errors import RuleIssue
from discovery.rules.matching import Match, accepts, first_match, render_group
from discovery.rules.model import GroupKey, Rule
from discovery.rules.schema.values import KNOWN_UNITS
from discovery.rules.templates import BUILTIN_PLACEHOLDERS, PLACEHOLDERS_BY_KIND, DeviceFacts
from discovery.rules.tree import quote

# Static shadow analysis compares every pair of rules; past this many it is skipped (with a warning).
MAX_SHADOW_CHECK = 1000

# sysfs attribute names of a usb_device; placeholders with these names are not typos.
SYSFS_ATTRIBUTES = frozenset(
    (
        "authorized", "avoid_reset_quirk", "bConfigurationValue", "bDeviceClass", "bDeviceProtocol",
        "bDeviceSubClass", "bMaxPacketSize0", "bMaxPower", "bNumConfigurations", "bNumInterfaces",
        "bcdDevice", "bmAttributes", "busnum", "configuration", "devnum", "devpath", "idProduct",
        "idVendor", "ltm_capable", "manufacturer", "maxchild", "product", "quirks", "removable",
        "rx_lanes", "serial", "speed", "tx_lanes", "urbnum", "version",
    )
)  # fmt: skip


def static_warnings(rules: Sequence[Rule]) -> list[RuleIssue]:
    """Problems visible without devices: rules that can never win, likely placeholder typos."""
    found: list[RuleIssue] = []
    if len(rules) > MAX_SHADOW_CHECK:
        message = f"more than {MAX_SHADOW_CHECK} rules: shadowed rules are not looked for"
        found.append(RuleIssue(rules[0].source, None, None, "", message))
    for position, earlier in shadowed_rules(rules).items():
        found.append(_issue(rules[position], "", f"can never win: {earlier.describe()} takes every "
                            "device it would match (same or broader conditions)"))  # fmt: skip
    for rule in rules:
        # A declared rule's placeholders are its devices' values, checked exactly at load time.
        for where, template in rule.templates() if rule.kind != "declared" else ():
            for name in template.placeholders:
                hint = _placeholder_hint(name, rule.kind)
                if hint:
                    found.append(_issue(rule, where, hint))
        for attr in rule.attributes:
            if attr.static is not None and isinstance(attr.static.value, str):
                kind = nomad_literal_kind(attr.static.value)
                if kind is not None:
                    found.append(_issue(rule, f"attributes.{attr.key}", _UNMATCHABLE.format(
                        text=quote(attr.static.value), kind=kind)))  # fmt: skip
    return found


def shadowed_rules(rules: Sequence[Rule]) -> dict[int, Rule]:
    """Position of each rule that can never win -> the earlier rule that takes its devices."""
    if len(rules) > MAX_SHADOW_CHECK:
        return {}
    shadowed: dict[int, Rule] = {}
    for position, later in enumerate(rules):
        for earlier in rules[:position]:
            if _shadows(earlier, later):
                shadowed[position] = earlier
                break
    return shadowed


def warnings_for(
    rules: Sequence[Rule], devices: Iterable[Device], device_ids: Mapping[str, str] | None = None
) -> list[RuleIssue]:
    """Warnings for ``validate``: static ones, then against the attached ``devices``.

    Rules that match none of the devices, rules whose every device is taken by an earlier rule,
    rendering notes (attributes left out), and groups whose devices disagree on attributes.
    ``device_ids`` maps a device's sys_path to its stable id, for ``{id}`` and for messages.
    """
    found = static_warnings(rules)
    by_id = {id(rule): rule for rule in rules}
    statically_dead = {id(rules[position]) for position in shadowed_rules(rules)}
    ids = device_ids or {}
    devices = list(devices)
    matched_any: dict[int, int] = {}  # rule -> devices whose conditions it accepts
    won: dict[int, int] = {}
    taken_by: dict[int, dict[int, list[str]]] = {}  # rule -> earlier winning rule -> labels of the devices it took
    notes: dict[tuple[int, str], list[str]] = {}
    groups: dict[GroupKey, list[tuple[str, Match]]] = {}
    for device in devices:
        device_id = ids.get(device.sys_path)
        label = device_id or f"{device.sys_name} ({device.label})"
        winner: Rule | None = None
        facts = DeviceFacts(device, device_id)
        for rule in rules:
            if not accepts(rule, device):
                continue
            if not rule.ignore and not isinstance(render_group(rule, facts), GroupKey):
                continue
            matched_any[id(rule)] = matched_any.get(id(rule), 0) + 1
            if winner is None:
                winner = rule
                won[id(rule)] = won.get(id(rule), 0) + 1
            else:
                taken_by.setdefault(id(rule), {}).setdefault(id(winner), []).append(label)
        if winner is None or winner.ignore:
            continue
        match = first_match(rules, device, device_id)
        if match is None:
            continue
        groups.setdefault(match.group, []).append((label, match))
        for note in match.notes:
            notes.setdefault((id(winner), note), []).append(label)
    for rule in rules:
        if id(rule) in statically_dead or rule.kind == "declared":  # its devices are declared, not attached
            continue
        if id(rule) not in matched_any:
            if rule.kind != "usb" and not any(device.kind == rule.kind for device in devices):
                continue  # no device of its kind was looked at (listed only when asked for): nothing to say
            found.append(_issue(rule, "", _matches_none(rule, devices)))
        elif id(rule) not in won:
            found.append(_issue(rule, "", _taken_first(matched_any[id(rule)], taken_by[id(rule)], by_id)))
    for (rule_id, note), labels in notes.items():
        suffix = f" (and {len(labels) - 1} more)" if len(labels) > 1 else ""
        found.append(_issue(by_id[rule_id], "", f"on {labels[0]}{suffix}: {note}"))
    for key, members in groups.items():
        found.extend(_group_disagreements(key, members))
    return found


def _matches_none(rule: Rule, devices: list[Device]) -> str:
    """A rule matches no attached device: counted among the devices of its kind, which are all it can take."""
    if rule.kind == "usb":
        count = sum(1 for device in devices if device.kind == "usb")
        return f"matches none of the {count} attached devices"
    count = sum(1 for device in devices if device.kind == rule.kind)
    return f"matches none of the {count} attached kind: {rule.kind} devices"


def _taken_first(count: int, winners: Mapping[int, list[str]], by_id: Mapping[int, Rule]) -> str:
    """Why a rule that matches attached devices wins none: each earlier rule that takes them, named."""
    matches = f"matches {count} attached device{'s' if count != 1 else ''}"
    if len(winners) == 1:
        (winner,) = winners
        return f"{matches}, but {by_id[winner].describe()} takes each of them first"
    # Different earlier rules take different devices: name every one (in the order devices were
    # listed), with the devices it takes.
    parts = [f"{by_id[winner].describe()} takes {_devices(labels)}" for winner, labels in winners.items()]
    return f"{matches}, but earlier rules take each of them first: " + "; ".join(parts)


def _devices(labels: list[str]) -> str:
    shown = ", ".join(labels[:3])
    return shown + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")


_UNMATCHABLE = (
    "the text {text} can never equal a constraint value in Nomad, which reads that literal as {kind}; "
    "write the value unquoted, or as {{value: ..., type: ...}}"
)
_GO_BOOLS = frozenset({"true", "false", "t", "f", "T", "F", "TRUE", "FALSE", "True", "False"})
_INT_TEXT = re.compile(r"[+-]?\d+\Z")
_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z|[+-]?(inf|infinity|nan)\Z", re.IGNORECASE)


def nomad_literal_kind(text: str) -> str | None:
    """How Nomad would read ``text`` written as a constraint value, when that is not a string.

    Nomad splits off a known unit, then tries int, float and bool (contract §5.10): a string
    attribute holding such text never compares equal to anything.
    """
    stripped = text.strip()
    for unit in sorted(KNOWN_UNITS, key=len, reverse=True):
        number = stripped[: -len(unit)].strip() if stripped.endswith(unit) else ""
        if number and (_INT_TEXT.match(number) or _FLOAT_TEXT.match(number)):
            return f"a number with the unit {unit}"
    if _INT_TEXT.match(stripped):
        return "an integer"
    if _FLOAT_TEXT.match(stripped):
        return "a float"
    if stripped in _GO_BOOLS:
        return "a bool"
    return None


def _issue(rule: Rule, where: str, message: str) -> RuleIssue:
    field_path = f"{rule.field}.{where}" if where else rule.field
    return RuleIssue(rule.source, rule.line, rule.column, field_path, message)


def _shadows(earlier: Rule, later: Rule) -> bool:
    """True when ``earlier`` takes every device ``later`` could match, judged from the rules alone."""
    if earlier.kind != later.kind or earlier.kind == "declared" or not earlier.group_always_renders:
        return False
    return all(any(mine.covers(theirs) for theirs in later.conditions) for mine in earlier.conditions)


def _placeholder_hint(name: str, kind: str) -> str | None:
    builtins = PLACEHOLDERS_BY_KIND.get(kind, BUILTIN_PLACEHOLDERS)
    if name in builtins or (kind == "usb" and name in SYSFS_ATTRIBUTES):
        return None
    close = difflib.get_close_matches(name.lower(), list(builtins), n=1, cutoff=0.75)
    if not close:
        return None
    return (
        f"placeholder {{{name}}} is not a built-in name, so it is read as a udev property or sysfs "
        f"attribute; did you mean {{{close[0]}}}?"
    )


def _group_disagreements(key: GroupKey, members: list[tuple[str, Match]]) -> list[RuleIssue]:
    """A warning when devices of one group would give the group different attributes."""
    first_label, first = members[0]
    for label, match in members[1:]:
        if dict(match.attributes) == dict(first.attributes):
            continue
        keys = sorted(set(first.attributes) | set(match.attributes))
        differing = next(k for k in keys if first.attributes.get(k) != match.attributes.get(k))
        mine, theirs = first.attributes.get(differing), match.attributes.get(differing)
        return [
            _issue(
                match.rule,
                "attributes",
                f"group {key} gets different attributes from its devices: {quote(differing)} is "
                f"{mine if mine is not None else '(unset)'} on {first_label} and "
                f"{theirs if theirs is not None else '(unset)'} on {label} (a group has one set of "
                "attributes: put the differing value into the group name, or leave it out)",
            )
        ]
    return []
