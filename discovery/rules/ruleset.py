"""Rules: which USB devices count and how Nomad names them. Load, match, explain, warn.

``load_rules`` / ``parse_rules`` read a YAML rules file, ``rules_from_dicts`` reads inline rules from the
plugin config; all three validate everything at once and raise ``RulesError`` listing every problem
with file, line, column and field. ``RuleSet.match`` picks the first rule (in order) whose conditions
hold and whose group name renders; an ``ignore`` rule that wins means "excluded". Matching is pure
and never raises: anything a device's data cannot fill in is reported in ``Match.notes`` or, for the
group name, makes the rule pass the device on (``explain`` says why).
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from discovery.rules.errors import RuleIssue, RulesError
from discovery.model import UsbDevice
from discovery.rules.model import AttrSpec, AttrValue, GroupKey, Rule
from discovery.rules.schema import (
    GROUP_FORBIDDEN,
    KNOWN_UNITS,
    convert_attr,
    group_conflicts,
    path_problem,
    rules_from_list,
    rules_from_tree,
)
from discovery.rules.tree import MAX_BYTES, Issues, PlainSrc, compose_yaml, quote
from discovery.rules.templates import BUILTIN_PLACEHOLDERS, DeviceFacts

__all__ = [
    "AttrValue",
    "ConditionResult",
    "GroupKey",
    "HealthCheck",
    "Match",
    "Mount",
    "Rule",
    "RuleIssue",
    "RuleSet",
    "RuleVerdict",
    "RulesError",
    "load_rules",
    "parse_rules",
    "rules_from_dicts",
]

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

_EMPTY_ATTRS: Mapping[str, AttrValue] = MappingProxyType({})
_EMPTY_ENV: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Mount:
    """A rendered bind mount. Symlinks in ``host_path`` are resolved (and re-checked) at reservation."""

    host_path: str
    task_path: str
    read_only: bool = True


@dataclass(frozen=True)
class HealthCheck:
    """A rendered health check: argv to run, every ``interval`` seconds, killed after ``timeout``."""

    argv: tuple[str, ...]
    interval: float
    timeout: float


@dataclass(frozen=True)
class Match:
    """What the winning rule makes of one device: its group and everything a reservation needs.

    ``children`` None means every child with a device node; ``notes`` lists what could not be
    rendered for this device (an attribute that did not convert, a mount path that left /dev).
    """

    rule: Rule
    group: GroupKey
    attributes: Mapping[str, AttrValue] = field(default_factory=lambda: _EMPTY_ATTRS, hash=False)
    env: Mapping[str, str] = field(default_factory=lambda: _EMPTY_ENV, hash=False)
    mounts: tuple[Mount, ...] = ()
    health: HealthCheck | None = None
    children: frozenset[str] | None = None
    permissions: str = "rw"
    reset: bool = False
    require_driver: bool = False
    device_id: str | None = None
    notes: tuple[str, ...] = ()


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
        if not self.conditions:
            out.append("    (no conditions: matches every device)")
        for result in self.conditions:
            mark = "ok  " if result.ok else "FAIL"
            out.append(f"  {mark} {result.field}: {result.actual} (wanted {result.expected})")
        return out


# ---------------------------------------------------------------------------------------------
# Loading


def parse_rules(text: str | bytes, source: str = "<string>") -> RuleSet:
    """Rules from YAML text; raises RulesError listing every problem."""
    issues = Issues(source)
    if isinstance(text, (bytes, bytearray)):
        decoded = _decode(bytes(text), issues)
        if decoded is None:
            raise RulesError(issues.sorted())
        text = decoded
    elif not isinstance(text, str):
        issues.add(None, "", f"expected rules text, got {type(text).__name__}")
        raise RulesError(issues.sorted())
    root = compose_yaml(text, issues)
    rules = rules_from_tree(root, issues) if root is not None else []
    issues.items.extend(group_conflicts(rules))
    if issues:
        raise RulesError(issues.sorted())
    return RuleSet(tuple(rules))


def load_rules(path: str | os.PathLike[str]) -> RuleSet:
    """Rules from a YAML file; raises RulesError (also for a missing, unreadable or huge file)."""
    source = os.fspath(path)
    issues = Issues(source)
    data = _read_file(source, issues)
    if data is None:
        raise RulesError(issues.sorted())
    return parse_rules(data, source)


def rules_from_dicts(items: Sequence[Mapping[str, object]], source: str, field_prefix: str = "rules") -> list[Rule]:
    """Rules from plain data (inline rules of the plugin config), same schema as one YAML rule.

    ``None`` values mean "absent"; numbers may come as text. There are no line numbers, but every
    problem still names its field (``rules[0].match.vendor_id``). Raises RulesError.
    """
    issues = Issues(source)
    rules = rules_from_list(PlainSrc(items), issues, field_prefix)
    issues.items.extend(group_conflicts(rules))
    if issues:
        raise RulesError(issues.sorted())
    return rules


def _read_file(path: str, issues: Issues) -> bytes | None:
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            issues.add(None, "", "is a directory, not a rules file")
            return None
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            issues.add(None, "", "is not a regular file")
            return None
        if info.st_size > MAX_BYTES:
            issues.add(None, "", f"file is {info.st_size} bytes; the limit is {MAX_BYTES} (1 MiB)")
            return None
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        issues.add(None, "", "no such file")
        return None
    except OSError as exc:
        issues.add(None, "", f"cannot read: {exc.strerror or exc}")
        return None
    if len(data) > MAX_BYTES:
        issues.add(None, "", f"file is larger than the limit of {MAX_BYTES} bytes (1 MiB)")
        return None
    return data


def _decode(data: bytes, issues: Issues) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        issues.items.append(
            RuleIssue(issues.source, line, column, "", f"not UTF-8 text (byte 0x{data[exc.start]:02x})")
        )
        return None


# ---------------------------------------------------------------------------------------------
# Matching


def _accepts(rule: Rule, device: UsbDevice) -> bool:
    # A plain loop: this is the hot path of matching, and all() with a generator is slower here.
    for condition in rule.conditions:  # noqa: SIM110
        if not condition.test(device):
            return False
    return True


def _missing_reason(names: Sequence[str]) -> str:
    return ", ".join("no device id" if name == "id" else f"no {name}" for name in names)


def _render_group(rule: Rule, facts: DeviceFacts) -> GroupKey | tuple[str, str, str]:
    """The device's group, or (field, template, reason) when a part cannot be rendered."""
    assert rule.group is not None
    parts: list[str] = []
    for name, template in rule.group.fields():
        rendered = template.render(facts, blank_is_missing=True)
        if rendered.missing:
            return (f"group.{name}", template.text, _missing_reason(rendered.missing))
        text = GROUP_FORBIDDEN.sub("-", rendered.text)
        if not text:
            return (f"group.{name}", template.text, "renders empty")
        parts.append(text)
    return GroupKey(parts[0], parts[1], parts[2])


def _render_attribute(spec: AttrSpec, facts: DeviceFacts) -> AttrValue | str:
    """The attribute's value for this device, or a note saying why it is left out."""
    if spec.static is not None:
        return spec.static
    assert spec.template is not None
    text = spec.template.render(facts).text
    try:
        return AttrValue(convert_attr(text, spec.kind), spec.unit)
    except ValueError as exc:
        return f"attributes.{spec.key}: {exc} (type {spec.kind}); left out"


def _build_match(rule: Rule, group: GroupKey, facts: DeviceFacts) -> Match:
    notes: list[str] = []
    attributes: dict[str, AttrValue] = {}
    for spec in rule.attributes:
        value = _render_attribute(spec, facts)
        if isinstance(value, str):
            notes.append(value)
        else:
            attributes[spec.key] = value
    env = {name: template.render(facts).text for name, template in rule.env}
    mounts: list[Mount] = []
    for i, mount in enumerate(rule.mounts):
        host = mount.host_path.render(facts).text
        task = mount.task_path.render(facts).text
        problem = path_problem(host, host=True) or path_problem(task, host=False)
        if problem is not None:
            notes.append(f"mounts[{i}]: {problem}; left out")
            continue
        mounts.append(Mount(host, task, mount.read_only))
    health = None
    if rule.health is not None:
        argv = tuple(template.render(facts).text for template in rule.health.command)
        health = HealthCheck(argv, rule.health.interval, rule.health.timeout)
    return Match(
        rule=rule,
        group=group,
        attributes=MappingProxyType(attributes) if attributes else _EMPTY_ATTRS,
        env=MappingProxyType(env) if env else _EMPTY_ENV,
        mounts=tuple(mounts),
        health=health,
        children=rule.children,
        permissions=rule.permissions,
        reset=rule.reset,
        require_driver=rule.require_driver,
        device_id=facts.device_id,
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class RuleSet:
    """An ordered list of rules; the first that matches a device decides."""

    rules: tuple[Rule, ...] = ()

    @classmethod
    def from_parts(cls, *parts: RuleSet | Iterable[Rule] | None) -> RuleSet:
        """Rules of every part, in order (None parts skipped); RulesError if their groups conflict."""
        rules: list[Rule] = []
        for part in parts:
            if part is None:
                continue
            rules.extend(part.rules if isinstance(part, RuleSet) else part)
        conflicts = group_conflicts(rules)
        if conflicts:
            raise RulesError(conflicts)
        return cls(tuple(rules))

    def combined(self, other: RuleSet | Iterable[Rule]) -> RuleSet:
        """This set's rules, then ``other``'s (so this set takes precedence); RulesError on conflicts."""
        return RuleSet.from_parts(self, other)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def match(self, device: UsbDevice, device_id: str | None = None) -> Match | None:
        """The device's Match under the first rule that takes it; None if none does or it is ignored."""
        facts: DeviceFacts | None = None
        for rule in self.rules:
            if not _accepts(rule, device):
                continue
            if rule.ignore:
                return None
            if facts is None:
                facts = DeviceFacts(device, device_id)
            group = _render_group(rule, facts)
            if isinstance(group, GroupKey):
                return _build_match(rule, group, facts)
        return None

    def explain(self, device: UsbDevice, device_id: str | None = None) -> list[RuleVerdict]:
        """How every rule judges ``device``, in order: each condition, and who won."""
        facts = DeviceFacts(device, device_id)
        verdicts: list[RuleVerdict] = []
        decided = False
        for rule in self.rules:
            results = [
                ConditionResult(c.field, c.expected, c.actual(device), c.test(device)) for c in rule.conditions
            ]
            failed = [r for r in results if not r.ok]
            matched = not failed
            group: GroupKey | None = None
            reason: str | None = None
            if failed:
                first = failed[0]
                reason = f"{first.field} is {first.actual}, wanted {first.expected}"
            elif not rule.ignore:
                rendered = _render_group(rule, facts)
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

    # -- warnings for `validate` -------------------------------------------------------------------

    def static_warnings(self) -> list[RuleIssue]:
        """Problems visible without devices: rules that can never win, likely placeholder typos."""
        found: list[RuleIssue] = []
        if len(self.rules) > MAX_SHADOW_CHECK:
            message = f"more than {MAX_SHADOW_CHECK} rules: shadowed rules are not looked for"
            found.append(RuleIssue(self.rules[0].source, None, None, "", message))
        for position, earlier in self._shadowed().items():
            found.append(_issue(self.rules[position], "", f"can never win: {earlier.describe()} takes every "
                                "device it would match (same or broader conditions)"))  # fmt: skip
        for rule in self.rules:
            for where, template in rule.templates():
                for name in template.placeholders:
                    hint = _placeholder_hint(name)
                    if hint:
                        found.append(_issue(rule, where, hint))
            for attr in rule.attributes:
                if attr.static is not None and isinstance(attr.static.value, str):
                    kind = nomad_literal_kind(attr.static.value)
                    if kind is not None:
                        found.append(_issue(rule, f"attributes.{attr.key}", _UNMATCHABLE.format(
                            text=quote(attr.static.value), kind=kind)))  # fmt: skip
        return found

    def _shadowed(self) -> dict[int, Rule]:
        """Position of each rule that can never win -> the earlier rule that takes its devices."""
        if len(self.rules) > MAX_SHADOW_CHECK:
            return {}
        shadowed: dict[int, Rule] = {}
        for position, later in enumerate(self.rules):
            for earlier in self.rules[:position]:
                if _shadows(earlier, later):
                    shadowed[position] = earlier
                    break
        return shadowed

    def warnings_for(
        self, devices: Iterable[UsbDevice], device_ids: Mapping[str, str] | None = None
    ) -> list[RuleIssue]:
        """Warnings for ``validate``: static ones, then against the attached ``devices``.

        Rules that match none of the devices, rules whose every device is taken by an earlier rule,
        rendering notes (attributes left out), and groups whose devices disagree on attributes.
        ``device_ids`` maps a device's sys_path to its stable id, for ``{id}`` and for messages.
        """
        found = self.static_warnings()
        statically_dead = {id(self.rules[position]) for position in self._shadowed()}
        ids = device_ids or {}
        devices = list(devices)
        matched_any: dict[int, int] = {}  # rule -> devices whose conditions it accepts
        won: dict[int, int] = {}
        taken_by: dict[int, Rule] = {}
        notes: dict[tuple[int, str], list[str]] = {}
        groups: dict[GroupKey, list[tuple[str, Match]]] = {}
        for device in devices:
            device_id = ids.get(device.sys_path)
            label = device_id or f"{device.sys_name} ({device.vid_pid})"
            winner: Rule | None = None
            facts = DeviceFacts(device, device_id)
            for rule in self.rules:
                if not _accepts(rule, device):
                    continue
                if not rule.ignore and not isinstance(_render_group(rule, facts), GroupKey):
                    continue
                matched_any[id(rule)] = matched_any.get(id(rule), 0) + 1
                if winner is None:
                    winner = rule
                    won[id(rule)] = won.get(id(rule), 0) + 1
                else:
                    taken_by.setdefault(id(rule), winner)
            if winner is None or winner.ignore:
                continue
            match = self.match(device, device_id)
            if match is None:
                continue
            groups.setdefault(match.group, []).append((label, match))
            for note in match.notes:
                notes.setdefault((id(winner), note), []).append(label)
        for rule in self.rules:
            if id(rule) in statically_dead:
                continue
            if id(rule) not in matched_any:
                found.append(_issue(rule, "", f"matches none of the {len(devices)} attached devices"))
            elif id(rule) not in won:
                count = matched_any[id(rule)]
                found.append(_issue(rule, "", f"matches {count} attached device{'s' if count != 1 else ''}, "
                                    f"but {taken_by[id(rule)].describe()} takes each of them first"))  # fmt: skip
        by_id = {id(rule): rule for rule in self.rules}
        for (rule_id, note), labels in notes.items():
            suffix = f" (and {len(labels) - 1} more)" if len(labels) > 1 else ""
            found.append(_issue(by_id[rule_id], "", f"on {labels[0]}{suffix}: {note}"))
        for key, members in groups.items():
            found.extend(_group_disagreements(key, members))
        return found


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
    if not earlier.group_always_renders:
        return False
    return all(any(mine.covers(theirs) for theirs in later.conditions) for mine in earlier.conditions)


def _placeholder_hint(name: str) -> str | None:
    if name in BUILTIN_PLACEHOLDERS or name in SYSFS_ATTRIBUTES:
        return None
    close = difflib.get_close_matches(name.lower(), list(BUILTIN_PLACEHOLDERS), n=1, cutoff=0.75)
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
