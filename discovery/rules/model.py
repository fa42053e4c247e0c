"""What a validated rule is: immutable records for a rule, its group, attributes, mounts, health and stats commands.

``discovery.rules.schema`` builds these from input; ``discovery.rules.matching`` renders them per device.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from typing import Any

from discovery.rules.conditions import Condition
from discovery.rules.tree import quote
from discovery.rules.templates import Template

DEFAULT_PERMISSIONS = "rw"
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 5.0
# Placeholders every device of a kind has a value for; a group made only of these never fails to render.
ALWAYS_PRESENT = frozenset({"vendor_id", "product_id", "port", "sys_name", "busnum", "devnum"})
ALWAYS_PRESENT_BY_KIND = {"usb": ALWAYS_PRESENT, "udev": frozenset({"port", "sys_name", "subsystem"})}
# Group attributes the plugin sets itself; a rule may not use these names.
# healthy_count: Nomad caches its device check per node class, and the class hashes group attributes
# but not device health. A count that changes with health changes the class, so a blocked job is
# re-evaluated as soon as a device it waits for turns healthy.
HEALTHY_COUNT = "healthy_count"
PLUGIN_ATTRIBUTES = frozenset({HEALTHY_COUNT})


class GroupKey(NamedTuple):
    """The (vendor, type, name) triple that names a Nomad device group (a plain tuple too)."""

    vendor: str
    type: str
    name: str

    def __str__(self) -> str:
        return f"{self.vendor}/{self.type}/{self.name}"


@dataclass(frozen=True)
class AttrValue:
    """A typed group attribute value, with a Nomad unit on numbers only."""

    value: int | float | str | bool
    unit: str | None = None

    def __str__(self) -> str:
        if isinstance(self.value, bool):
            text = "true" if self.value else "false"
        elif isinstance(self.value, str):
            text = quote(self.value)
        else:
            text = str(self.value)
        return f"{text} {self.unit}" if self.unit else text

    @property
    def signature(self) -> tuple[str, object, str | None]:
        """Comparable form that tells 8 from 8.0 (Nomad keeps int and float apart)."""
        return (type(self.value).__name__, self.value, self.unit)


@dataclass(frozen=True)
class AttrSpec:
    """One attribute of a rule: a static value, or a template converted to ``kind`` per device."""

    key: str
    kind: str  # one of ATTR_TYPES
    template: Template | None = None
    static: AttrValue | None = None
    unit: str | None = None

    @property
    def signature(self) -> tuple[object, ...]:
        if self.static is not None:
            return ("static", *self.static.signature)
        assert self.template is not None
        return ("template", self.kind, self.template.text, self.unit)

    def describe(self) -> str:
        if self.static is not None:
            return str(self.static)
        assert self.template is not None
        text = f"{quote(self.template.text)} as {self.kind}"
        return f"{text} {self.unit}" if self.unit else text


@dataclass(frozen=True)
class GroupSpec:
    """Vendor, type and name templates of the group a rule puts devices in."""

    vendor: Template
    type: Template
    name: Template

    @property
    def static_key(self) -> GroupKey | None:
        """The group when no part depends on the device, else None."""
        if self.vendor.is_static and self.type.is_static and self.name.is_static:
            return GroupKey(self.vendor.literal_text, self.type.literal_text, self.name.literal_text)
        return None

    def fields(self) -> tuple[tuple[str, Template], ...]:
        return (("vendor", self.vendor), ("type", self.type), ("name", self.name))


@dataclass(frozen=True)
class MountSpec:
    """A bind mount for the task; paths may contain placeholders (checked again per device)."""

    host_path: Template
    task_path: Template
    read_only: bool = True


@dataclass(frozen=True)
class HealthSpec:
    """A health check command (argv, templated per device) with its interval and timeout in seconds."""

    command: tuple[Template, ...]
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class StatsSpec:
    """A readings command (argv, templated per device), how often it runs, its timeout, and the summary reading.

    The command prints one JSON object of readings; ``summary`` names the one shown as the device's summary.
    """

    command: tuple[Template, ...]
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    summary: str | None = None


@dataclass(frozen=True)
class DeclaredSpec:
    """One device of a ``kind: declared`` rule as written: its ID, its values and what it adds to the rule's outputs.

    ``values`` are the placeholders only this device has (``{address}``); ``env`` is merged over the
    rule's, ``mounts`` come after the rule's and ``health`` replaces the rule's (see ``discovery.declared``).
    """

    device_id: str
    values: tuple[tuple[str, str], ...] = ()
    nodes: tuple[Template, ...] = ()
    env: tuple[tuple[str, Template], ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    health: HealthSpec | None = None
    line: int | None = None
    column: int | None = None
    field: str = ""


@dataclass(frozen=True)
class Rule:
    """One validated rule: which devices it takes (``conditions``) and what it makes of them.

    ``index`` is the 0-based position in its source (as in the field path ``rules[index]``, which
    names the rule in every message); ``label`` is its name, or that field path when it has none;
    ``line``/``column`` are None for rules from plain data. ``kind`` says which devices it takes
    (``usb``, ``udev``, ``declared``): its conditions are only ever tested on devices of that kind.
    ``children`` None means "every child with a device node"; otherwise only children in those
    subsystems are handed over. ``nodes`` are further device nodes (under /dev) handed over with each device.
    """

    index: int
    label: str
    source: str
    line: int | None
    column: int | None
    field: str
    conditions: tuple[Condition[Any], ...] = ()
    kind: str = "usb"
    ignore: bool = False
    group: GroupSpec | None = None
    attributes: tuple[AttrSpec, ...] = ()
    children: frozenset[str] | None = None
    permissions: str = DEFAULT_PERMISSIONS
    env: tuple[tuple[str, Template], ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    nodes: tuple[Template, ...] = ()
    health: HealthSpec | None = None
    stats: StatsSpec | None = None
    reset: bool = False
    require_driver: bool = False
    devices: tuple[DeclaredSpec, ...] = ()  # kind "declared" only: the devices it declares

    @property
    def where(self) -> str:
        """``rules.yaml:12``, or for plain data (no lines) just the source: ``plugin config``."""
        if self.line is None:
            return self.source
        return f"{self.source}:{self.line}"

    @property
    def ref(self) -> str:
        """``rules[1] "pixel phones"``, or ``rules[1]`` for a rule without a name.

        Rules are numbered one way everywhere, messages and field paths alike: by their field path,
        counting from 0 as YAML tools do (``yq '.rules[1]'`` shows this rule).
        """
        if self.label == self.field:
            return self.field
        return f"{self.field} {quote(self.label)}"

    def describe(self) -> str:
        """``rules[1] "pixel phones" (rules.yaml:12)`` for messages."""
        return f"{self.ref} ({self.where})"

    def templates(self) -> Iterator[tuple[str, Template]]:
        """Every template of the rule with its field path relative to the rule."""
        if self.group is not None:
            for name, template in self.group.fields():
                yield f"group.{name}", template
        for attr in self.attributes:
            if attr.template is not None:
                yield f"attributes.{attr.key}", attr.template
        for name, template in self.env:
            yield f"env.{name}", template
        for i, mount in enumerate(self.mounts):
            yield f"mounts[{i}].host_path", mount.host_path
            yield f"mounts[{i}].task_path", mount.task_path
        for i, node in enumerate(self.nodes):
            yield f"nodes[{i}]", node
        if self.health is not None:
            for i, template in enumerate(self.health.command):
                yield f"health.command[{i}]", template
        if self.stats is not None:
            for i, template in enumerate(self.stats.command):
                yield f"stats.command[{i}]", template

    @property
    def group_always_renders(self) -> bool:
        """True when the group name cannot fail to render, so a matching device always goes here."""
        if self.ignore:
            return True
        if self.group is None:
            return False
        always = ALWAYS_PRESENT_BY_KIND.get(self.kind, frozenset())
        return all(
            name in always
            for _, template in self.group.fields()
            for name in template.placeholders
        )
