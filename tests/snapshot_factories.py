"""Snapshots built by hand for the builders' unit tests: ``make_state(**overrides)``, ``make_snapshot(...)``."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from discovery.rules.matching import Match
from discovery.rules.model import AttrValue, GroupKey, Rule
from discovery.state.snapshot import DeviceState, Group, Snapshot
from rules_factories import make_device

RULE = Rule(index=0, label="test rule", source="test", line=None, column=None, field="rules[0]")


def make_match(group: tuple[str, str, str] = ("google", "phone", "pixel-7"), **overrides: Any) -> Match:
    """The Match a rule made of a device; any Match field can be overridden."""
    fields: dict[str, Any] = {"rule": RULE, "group": GroupKey(*group)}
    fields.update(overrides)
    return Match(**fields)


def make_state(device_id: str = "usb-18d1-4ee7-1A2B3C4D", **overrides: Any) -> DeviceState:
    """A present, healthy device in google/phone/pixel-7, plugged at wall time 1000."""
    fields: dict[str, Any] = {
        "id": device_id,
        "device": make_device(),
        "match": make_match(),
        "present": True,
        "healthy": True,
        "reason": "",
        "plugged_at": 1000.0,
    }
    fields.update(overrides)
    return DeviceState(**fields)


def make_snapshot(
    *states: DeviceState, attributes: Mapping[tuple[str, str, str], Mapping[str, AttrValue]] | None = None
) -> Snapshot:
    """A Snapshot of ``states``: one Group per group key (IDs sorted), with the given group attributes."""
    keys = sorted({tuple(s.group) for s in states})
    groups = tuple(
        Group(
            vendor=key[0],
            type=key[1],
            name=key[2],
            attributes=MappingProxyType(dict((attributes or {}).get(key, {}))),
            device_ids=tuple(sorted(s.id for s in states if tuple(s.group) == key)),
        )
        for key in keys
    )
    return Snapshot(version=1, groups=groups, devices=MappingProxyType({s.id: s for s in states}))
