"""The published picture of discovery: groups and device states, immutable, one version each.

The device service and the CLI only ever read these records. A new Snapshot is made only when
something a user of it could see has changed (IDs, health, reasons, groups, attributes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Mapping

from discovery.checks.health import HealthResult
from discovery.model import Device

if TYPE_CHECKING:
    from discovery.rules.matching import Match
    from discovery.rules.model import AttrValue

GroupKey = tuple[str, str, str]  # (vendor, type, name) as Nomad names a device group


@dataclass(frozen=True)
class DeviceState:
    """One matched device as Nomad should see it: present or recently unplugged, healthy or why not."""

    id: str
    device: Device  # as last seen; for an unplugged device, as it was before it left
    match: Match
    present: bool
    healthy: bool
    reason: str  # "" when healthy
    plugged_at: float  # wall clock of the latest plug
    unplugged_at: float | None = None
    replug_count: int = 0
    health: HealthResult | None = None

    @property
    def group(self) -> GroupKey:
        return self.match.group


@dataclass(frozen=True)
class Group:
    """A Nomad device group: devices under one vendor/type/name and the attributes they all share."""

    vendor: str
    type: str
    name: str
    attributes: Mapping[str, AttrValue]
    device_ids: tuple[str, ...]

    @property
    def key(self) -> GroupKey:
        return (self.vendor, self.type, self.name)


@dataclass(frozen=True)
class Snapshot:
    """Everything discovery knows at one moment."""

    version: int
    groups: tuple[Group, ...] = ()
    devices: Mapping[str, DeviceState] = field(default_factory=lambda: MappingProxyType({}))
    unmatched: tuple[tuple[str, Device], ...] = ()  # (id, device) attached but matched by no rule
    rules_error: str | None = None  # why the rules file is not in force, if it is not
    source: str = "udev"  # "udev" or "usbfs" (fallback without udev)

    def group_of(self, key: GroupKey) -> Group | None:
        for group in self.groups:
            if group.key == key:
                return group
        return None

    def fingerprint_key(self) -> tuple[object, ...]:
        """What Nomad sees of this snapshot; two snapshots with equal keys need no new message."""
        return tuple(
            (
                g.key,
                tuple(sorted((k, v.value, v.unit) for k, v in g.attributes.items())),
                tuple((i, self.devices[i].healthy, self.devices[i].reason) for i in g.device_ids),
            )
            for g in self.groups
        )
