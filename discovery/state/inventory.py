"""Enumerate once, snapshot once: the attached devices with the IDs and matches the plugin would give them.

The CLI (``list``, ``explain``, ``validate``, ``suggest``) needs the same picture the plugin publishes,
so this builds it the same way: every device from one enumeration goes through ``DeviceTable``
(sticky, unique IDs judged against the whole enumeration), the table gets the rules, and
``build()`` makes the Snapshot, health reasons and all. Nothing here matches or names devices on
its own. :func:`find_devices` resolves what a person types (an ID, ``VID:PID``, a sysfs path, a /dev
node, a port or a kernel name) to attached devices of any kind.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from discovery.declared import declared_devices
from discovery.checks.health import run_check
from discovery.state.idmemory import IdMemory
from discovery.model import Device, NodeDevice, UsbDevice
from discovery.rules.explain import RuleVerdict
from discovery.rules.ruleset import RuleSet
from discovery.state.snapshot import DeviceState, Snapshot
from discovery.nodes import NodeCheck, check_node
from discovery.sources.base import SourceError
from discovery.state.table import DeviceTable

if TYPE_CHECKING:
    from discovery.sources.base import DeviceSource

_VID_PID = re.compile(r"(?:0x)?([0-9a-fA-F]{1,4}):(?:0x)?([0-9a-fA-F]{1,4})\Z")
# What a person means as VID:PID even when it is not one ("zz:1", "0403:60011"): no other DEVICE
# form has this shape (IDs start with "usb-", ports hold '-' or '.', paths start with '/').
_VID_PID_SHAPE = re.compile(r"(?:0x)?[0-9a-zA-Z]{1,8}:(?:0x)?[0-9a-zA-Z]{1,8}\Z")


class DeviceAccessError(Exception):
    """USB devices cannot be listed here at all: no udev, and no usable libusb either."""


DeviceT = TypeVar("DeviceT", bound=Device, covariant=True)


@dataclass(frozen=True)
class Entry(Generic[DeviceT]):
    """One attached device as the plugin sees it: its ID, the device, and its state if a rule took it."""

    id: str
    device: DeviceT
    state: DeviceState | None  # None: no rule takes it (or an ignore rule excludes it)


@dataclass(frozen=True)
class Inventory:
    """Everything attached at one moment, under one rule set.

    ``entries`` are the USB devices (what ``validate`` looks at); ``others`` the non-USB devices,
    there when the enumeration was asked for them (``list --all``, ``explain``, ``suggest``).
    """

    rules: RuleSet
    snapshot: Snapshot
    entries: tuple[Entry[UsbDevice], ...]  # sorted by sys_path, the order udev lists them
    others: tuple[Entry[Device], ...] = ()  # devices with a node outside USB, sorted by sys_path
    declared: tuple[DeviceState, ...] = ()  # the devices the rules declare, in rule order

    @property
    def all_entries(self) -> tuple[Entry[Device], ...]:
        """Every attached device: USB first, then the others."""
        return self.entries + self.others

    def find_declared(self, query: str) -> DeviceState | None:
        """The declared device with ID ``query`` (or ``declared:<id>``), if the rules declare one."""
        text = query.strip().removeprefix("declared:")
        return next((s for s in self.declared if s.id == text), None)

    @property
    def source(self) -> str:
        return self.snapshot.source

    def ids_by_sys_path(self) -> dict[str, str]:
        """sys_path -> ID, the form ``RuleSet.warnings_for`` takes."""
        return {e.device.sys_path: e.id for e in self.all_entries}

    def verdicts(self, entry: Entry[Device]) -> list[RuleVerdict]:
        """Every rule's verdict on ``entry``'s device, with its ID filled in for ``{id}``."""
        if all(rule.kind != entry.device.kind for rule in self.rules):
            return []  # no rule is for this kind of device: no verdicts that only say "wrong kind"
        return self.rules.explain(entry.device, entry.id)

    def deciding_verdict(self, entry: Entry[Device]) -> RuleVerdict | None:
        """The rule that decides the device (an ignore rule for an excluded one), None when none does."""
        return next((v for v in self.verdicts(entry) if v.winner), None)


def enumerate_devices(source: DeviceSource) -> list[Device]:
    """``source.enumerate()``, with "cannot see USB at all" turned into :class:`DeviceAccessError`."""
    try:
        return source.enumerate()
    except ImportError as exc:  # pyudev without libudev, pyusb without a backend module
        raise DeviceAccessError(f"cannot list USB devices: {exc}") from exc
    except SourceError as exc:  # only the pyusb fallback, used where udev is missing, fails as a whole
        raise DeviceAccessError(f"cannot list USB devices: no udev (/run/udev is missing) and {exc}") from exc
    except OSError as exc:
        raise DeviceAccessError(f"cannot list USB devices through {source.name}: {exc.strerror or exc}") from exc


def take_inventory(
    rules: RuleSet,
    devices: list[Device],
    *,
    source: str = "udev",
    now: Callable[[], float] = time.time,
    node_check: NodeCheck = check_node,
    check_declared: bool = False,
    memory: IdMemory | None = None,
) -> Inventory:
    """The devices of one enumeration, named and matched exactly as the plugin's first snapshot would be.

    The declared devices are in it too; with ``check_declared`` their health checks run once (at the
    same time, each with its timeout), so their health is what the plugin would find. ``memory``: the
    plugin's saved IDs, so twins sharing a serial are named as the plugin names them.
    """
    table = DeviceTable(unplugged_grace=0.0, node_check=node_check, memory=memory)
    table.set_rules(rules)
    table.replace_all(devices, now())
    table.set_declared(declared_devices(rules), now())
    if check_declared:
        _check_declared(table)
    snapshot = table.build(1, source=source)
    entries: list[Entry[UsbDevice]] = []
    others: list[Entry[Device]] = []
    for dev_id, device in sorted(table.attached(), key=lambda item: item[1].sys_path):
        if isinstance(device, UsbDevice):
            entries.append(Entry(dev_id, device, snapshot.devices.get(dev_id)))
        else:
            others.append(Entry(dev_id, device, snapshot.devices.get(dev_id)))
    declared = tuple(snapshot.devices[dev_id] for dev_id, _ in table.declared() if dev_id in snapshot.devices)
    return Inventory(rules=rules, snapshot=snapshot, entries=tuple(entries), others=tuple(others), declared=declared)


def _check_declared(table: DeviceTable) -> None:
    declared = {dev_id for dev_id, _ in table.declared()}
    checks = [(i, m.health) for i, m in table.health_checks() if m.health is not None and i in declared]
    if not checks:
        return
    with ThreadPoolExecutor(max_workers=min(8, len(checks))) as pool:
        results = pool.map(lambda item: (item[0], run_check(item[1].argv, item[1].timeout)), checks)
        for dev_id, result in results:
            table.set_health(dev_id, result)


def malformed_vid_pid(query: str) -> bool:
    """True when ``query`` is written like a VID:PID but is not one (not hex, or more than 4 digits)."""
    text = query.strip()
    return bool(_VID_PID_SHAPE.match(text)) and not _VID_PID.match(text)


def find_devices(inventory: Inventory, query: str) -> list[Entry[Device]]:
    """The attached devices ``query`` names, tried in this order (the first kind that finds any wins).

    An ID; ``VID:PID`` (hex, as lsusb prints it; may name several devices); a sysfs path (of the
    device or of anything below it, ``/devices/...`` works too); a /dev node (the USB node, a child's
    node or one of its udev links such as /dev/serial/by-id/...); a port (udev ``ID_PATH`` or the
    kernel name such as ``1-5.2``).
    """
    text = query.strip()
    entries = inventory.all_entries  # /dev/ttyAMA0 names a device outside USB
    if not text:
        return []
    by_id = [e for e in entries if e.id == text]
    if by_id:
        return by_id
    pair = _VID_PID.match(text)
    if pair:
        vid, pid = int(pair.group(1), 16), int(pair.group(2), 16)
        return [e for e in entries
                if isinstance(e.device, UsbDevice) and (e.device.vendor_id, e.device.product_id) == (vid, pid)]
    if text.startswith("/devices/"):
        text = "/sys" + text
    if text.startswith("/sys/"):
        path = os.path.normpath(text)
        owners = [e for e in entries if path == e.device.sys_path or path.startswith(e.device.sys_path + "/")]
        # the deepest owner: a path below a hub's child belongs to the child, not the hub
        return sorted(owners, key=lambda e: len(e.device.sys_path), reverse=True)[:1]
    if text.startswith("/dev/"):
        found = [e for e in entries if text in _nodes_and_links(e.device)]
        if found:
            return found
        resolved = os.path.realpath(text)
        return [e for e in entries if resolved in _nodes_and_links(e.device)]
    return [e for e in entries if text in (e.device.port_path, e.device.sys_name)]


def _nodes_and_links(device: Device) -> set[str]:
    names = {device.device_node} if device.device_node else set()
    if isinstance(device, NodeDevice):
        names.update(device.devlinks)
    for child in device.children:
        if child.device_node:
            names.add(child.device_node)
        names.update(child.devlinks)
    return names
