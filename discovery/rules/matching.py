"""Matching one device: the first rule that takes it, its group rendered, and the Match it makes.

Pure and never raising: anything a device's data cannot fill in is reported in ``Match.notes`` or,
for the group name, makes the rule pass the device on (``discovery.rules.explain`` says why).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from discovery.model import DeclaredDevice, Device
from discovery.rules.declared import declaring_spec, rule_for_device
from discovery.rules.model import AttrSpec, AttrValue, GroupKey, Rule
from discovery.rules.schema.values import GROUP_FORBIDDEN, convert_attr, node_path_problem, path_problem
from discovery.rules.templates import DeviceFacts

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
class StatsCommand:
    """A rendered stats command: argv printing the device's readings, every ``interval`` s, killed after ``timeout``."""

    argv: tuple[str, ...]
    interval: float
    timeout: float
    summary: str | None = None  # the reading shown as the device's summary


@dataclass(frozen=True)
class Match:
    """What the winning rule makes of one device: its group and everything a reservation needs.

    ``children`` None means every child with a device node; ``nodes`` are the rule's further
    device nodes, rendered; ``notes`` lists what could not be rendered for this device (an
    attribute that did not convert, a mount path that left /dev).
    """

    rule: Rule
    group: GroupKey
    attributes: Mapping[str, AttrValue] = field(default_factory=lambda: _EMPTY_ATTRS, hash=False)
    env: Mapping[str, str] = field(default_factory=lambda: _EMPTY_ENV, hash=False)
    mounts: tuple[Mount, ...] = ()
    health: HealthCheck | None = None
    stats: StatsCommand | None = None
    children: frozenset[str] | None = None
    nodes: tuple[str, ...] = ()
    permissions: str = "rw"
    reset: bool = False
    require_driver: bool = False
    device_id: str | None = None
    notes: tuple[str, ...] = ()


def first_match(rules: Iterable[Rule], device: Device, device_id: str | None = None) -> Match | None:
    """The device's Match under the first rule that takes it; None if none does or it is ignored."""
    facts: DeviceFacts | None = None
    for rule in rules:
        if not accepts(rule, device):
            continue
        if rule.ignore:
            return None
        if facts is None:
            facts = DeviceFacts(device, device_id)
        group = render_group(rule, facts)
        if isinstance(group, GroupKey):
            if isinstance(device, DeclaredDevice):
                spec = declaring_spec(rule, device)
                assert spec is not None  # accepts() found it
                rule = rule_for_device(rule, spec)
            return build_match(rule, group, facts)
    return None


def accepts(rule: Rule, device: Device) -> bool:
    """True when ``rule`` takes ``device``: a rule of its kind whose every condition holds (a declared
    rule: one that declares it)."""
    if rule.kind != device.kind:  # a USB condition never sees a NodeDevice, nor the other way round
        return False
    if isinstance(device, DeclaredDevice):
        return declaring_spec(rule, device) is not None
    # A plain loop: this is the hot path of matching, and all() with a generator is slower here.
    for condition in rule.conditions:  # noqa: SIM110
        if not condition.test(device):
            return False
    return True


def missing_reason(names: Sequence[str]) -> str:
    return ", ".join("no device id" if name == "id" else f"no {name}" for name in names)


def render_group(rule: Rule, facts: DeviceFacts) -> GroupKey | tuple[str, str, str]:
    """The device's group, or (field, template, reason) when a part cannot be rendered."""
    assert rule.group is not None
    parts: list[str] = []
    for name, template in rule.group.fields():
        rendered = template.render(facts, blank_is_missing=True)
        if rendered.missing:
            return (f"group.{name}", template.text, missing_reason(rendered.missing))
        text = GROUP_FORBIDDEN.sub("-", rendered.text)
        if not text:
            return (f"group.{name}", template.text, "renders empty")
        parts.append(text)
    return GroupKey(parts[0], parts[1], parts[2])


def render_attribute(spec: AttrSpec, facts: DeviceFacts) -> AttrValue | str:
    """The attribute's value for this device, or a note saying why it is left out."""
    if spec.static is not None:
        return spec.static
    assert spec.template is not None
    text = spec.template.render(facts).text
    try:
        return AttrValue(convert_attr(text, spec.kind), spec.unit)
    except ValueError as exc:
        return f"attributes.{spec.key}: {exc} (type {spec.kind}); left out"


def build_match(rule: Rule, group: GroupKey, facts: DeviceFacts) -> Match:
    notes: list[str] = []
    attributes: dict[str, AttrValue] = {}
    for spec in rule.attributes:
        value = render_attribute(spec, facts)
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
    nodes: list[str] = []
    for i, template in enumerate(rule.nodes):
        rendered = template.render(facts)
        problem = node_path_problem(rendered.text)
        if rendered.missing:
            problem = f"{template.text!r} cannot be rendered: {missing_reason(rendered.missing)}"
        if problem is not None:
            notes.append(f"nodes[{i}]: {problem}; left out")
        elif rendered.text not in nodes:
            nodes.append(rendered.text)
    health = None
    if rule.health is not None:
        argv = tuple(template.render(facts).text for template in rule.health.command)
        health = HealthCheck(argv, rule.health.interval, rule.health.timeout)
    stats = None
    if rule.stats is not None:
        argv = tuple(template.render(facts).text for template in rule.stats.command)
        stats = StatsCommand(argv, rule.stats.interval, rule.stats.timeout, rule.stats.summary)
    return Match(
        rule=rule,
        group=group,
        attributes=MappingProxyType(attributes) if attributes else _EMPTY_ATTRS,
        env=MappingProxyType(env) if env else _EMPTY_ENV,
        mounts=tuple(mounts),
        health=health,
        stats=stats,
        children=rule.children,
        nodes=tuple(nodes),
        permissions=rule.permissions,
        reset=rule.reset,
        require_driver=rule.require_driver,
        device_id=facts.device_id,
        notes=tuple(notes),
    )
