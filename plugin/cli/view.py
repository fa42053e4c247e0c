"""How devices, rules and match results look in the CLI: short text for tables and lines, dicts for --json.

One place for these shapes, so ``list``, ``explain`` and ``watch`` print a device the same way. The
JSON keys are part of the CLI's interface (docs/cli.md): add keys freely, never rename one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from discovery.state.inventory import Entry, Inventory
from discovery.model import Device, NodeDevice, UsbDevice
from discovery.rules.model import Rule
from discovery.state.snapshot import DeviceState

if TYPE_CHECKING:
    from plugin.cli.holders import Holder, Holders

MATCHED, IGNORED, UNMATCHED = "matched", "ignored", "unmatched"


@dataclass(frozen=True)
class Result:
    """What the rules make of one device: taken into a group, excluded by an ignore rule, or left alone."""

    status: str  # MATCHED, IGNORED or UNMATCHED
    rule: Rule | None = None
    group: str | None = None  # "vendor/type/name" when matched
    healthy: bool | None = None  # None unless matched
    reason: str = ""

    @property
    def text(self) -> str:
        """``ftdi/serial/ft232r``, ``ignored`` or ``no rule``."""
        if self.status == MATCHED:
            return self.group or ""
        return "ignored" if self.status == IGNORED else "no rule"

    def summary(self, health: bool = True) -> str:
        """One phrase with the rule: ``ftdi/serial/ft232r by rules[5] "ftdi ft232r"``, ``no rule``; health if asked."""
        if self.rule is None:
            return self.text
        if not health or self.healthy in (None, True):
            return f"{self.text} by {rule_ref(self.rule)}"
        return f"{self.text} by {rule_ref(self.rule)} (unhealthy: {self.reason})"


def result_of(inventory: Inventory, entry: Entry[Device]) -> Result:
    """The device's Result, read from the snapshot (matched) or the deciding verdict (ignored)."""
    state = entry.state
    if state is not None:
        return result_from_state(state)
    verdict = inventory.deciding_verdict(entry)
    if verdict is not None and verdict.rule.ignore:
        return Result(IGNORED, verdict.rule)
    return Result(UNMATCHED)


def result_from_state(state: DeviceState) -> Result:
    return Result(MATCHED, state.match.rule, "/".join(state.group), state.healthy, state.reason)


def rule_ref(rule: Rule) -> str:
    """``rules[5] "ftdi ft232r"``, or ``rules[5]`` for a rule without a name."""
    return rule.ref


def rule_json(rule: Rule | None) -> dict[str, object] | None:
    if rule is None:
        return None
    # "number" (1-based) predates "field" and stays for scripts that read it; text output uses "field".
    return {"number": rule.index + 1, "field": rule.field, "name": rule.label, "source": rule.source,
            "line": rule.line, "column": rule.column, "ignore": rule.ignore}


def result_json(result: Result) -> dict[str, object]:
    return {
        "status": result.status,
        "group": result.group,
        "rule": rule_json(result.rule),
        "healthy": result.healthy,
        "reason": result.reason or None,
    }


def short_node(path: str) -> str:
    return path.removeprefix("/dev/")


def child_nodes(device: UsbDevice) -> list[str]:
    """The /dev nodes of the device's children (tty, hidraw, ...), not the USB node itself."""
    return [c.device_node for c in device.children if c.device_node]


def shown_nodes(device: Device) -> list[str]:
    """The nodes a person looks for in a table: a USB device's children's, another device's own."""
    if isinstance(device, UsbDevice):
        return child_nodes(device)
    return [device.device_node] if device.device_node else []


def held_by_text(holders: tuple[Holder, ...] | None) -> str:
    """``1a2b3c4d job/group`` for each allocation holding the device, ``-`` for none, ``?`` when unknown."""
    if holders is None:
        return "?"
    return ", ".join(h.text for h in holders) or "-"


def holders_line(holders: Holders, held: int) -> str:
    """The one line that says where the HELD BY column comes from, or why it is unknown."""
    if not holders.known:
        return f"held by: unknown, {holders.error}"
    node = holders.node_name or holders.node_id
    return f"held by: {held} device{'s' if held != 1 else ''} held by allocations on node {node} ({holders.address})"


def device_json(entry: Entry[Device], result: Result, holders: Holders | None = None) -> dict[str, object]:
    """Everything about one attached device that helps writing a rule for it, and who holds it.

    ``allocations`` is the list of allocations holding it (empty: free), or null when no agent answered.
    A non-USB device has ``kind`` (``udev``), its subsystem, node and parents instead of USB's ids and interfaces.
    """
    d = entry.device
    held = holders.of(entry.id) if holders is not None else None
    allocations = [h.to_json() for h in held] if held is not None else None
    if not isinstance(d, UsbDevice):
        return {**_other_device_json(entry.id, d), "match": result_json(result), "allocations": allocations}
    return {
        "id": entry.id,
        "vid_pid": d.vid_pid,
        "vendor_id": f"{d.vendor_id:04x}",
        "product_id": f"{d.product_id:04x}",
        "manufacturer": d.manufacturer,
        "product": d.product,
        "serial": d.serial,
        "port_path": d.port_path,
        "sys_name": d.sys_name,
        "sys_path": d.sys_path,
        "busnum": d.busnum,
        "devnum": d.devnum,
        "bus_node": d.device_node,
        "device_class": f"{d.device_class:02x}",
        "driver": d.driver,
        "interfaces": [
            {
                "number": i.number,
                "class": f"{i.interface_class:02x}",
                "subclass": f"{i.interface_subclass:02x}",
                "protocol": f"{i.interface_protocol:02x}",
                "driver": i.driver,
            }
            for i in d.interfaces
        ],
        "nodes": [
            {
                "path": c.device_node,
                "subsystem": c.subsystem,
                "interface": c.interface_number,
                "driver": c.driver,
                "links": list(c.devlinks),
            }
            for c in d.children
            if c.device_node
        ],
        "match": result_json(result),
        "allocations": allocations,
    }


def _other_device_json(dev_id: str, d: Device) -> dict[str, object]:
    """A non-USB device: its subsystem, node and links, its place and its parents (nearest first)."""
    out: dict[str, object] = {
        "id": dev_id,
        "kind": d.kind,
        "label": d.label,
        "serial": d.serial,
        "port_path": d.port_path,
        "sys_name": d.sys_name,
        "sys_path": d.sys_path,
        "node": d.device_node,
        "driver": d.driver,
    }
    if isinstance(d, NodeDevice):
        out["subsystem"] = d.subsystem
        out["links"] = list(d.devlinks)
        out["parents"] = [{"sys_name": p.sys_name, "subsystem": p.subsystem, "driver": p.driver} for p in d.parents]
    return out


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[object, ...]:
    """Sort key that puts ``1-2`` before ``1-10``."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(text))
