"""``explain DEVICE``: every rule's verdict on one attached device, condition by condition, and its reservation.

The verdicts come from ``RuleSet.explain`` and the reservation from ``plan_reservation`` on the same
snapshot the plugin would publish, so what this prints is what Nomad would get. The allocation
holding the device comes from the local Nomad agent, when one answers.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING

from discovery.declared import declared_devices
from discovery.state.inventory import Entry, Inventory
from discovery.model import NodeDevice, UsbDevice
from discovery.reservation import Reservation, ReservationError, plan_reservation
from discovery.rules.explain import RuleVerdict
from discovery.rules.matching import Match
from discovery.rules.model import AttrValue
from discovery.rules.udev_conditions import PCI_SUBSYSTEM, PLATFORM_SUBSYSTEMS, nearest_parent
from discovery.sources.base import ALL_NODE_SUBSYSTEMS
from plugin.cli.context import EXIT_OK, Context
from plugin.cli.declared import explain as explain_declared
from plugin.cli.table import Style
from plugin.cli.view import MATCHED, Result, device_json, result_json, result_of, rule_json, rule_ref

if TYPE_CHECKING:
    from plugin.cli.holders import Holders

_INDENT = "  "


def run(ctx: Context, args: argparse.Namespace) -> int:
    path = ctx.rules_path(args.rules)
    rules = ctx.load_rules(path)
    declared = next((d for d in declared_devices(rules) if d.device_id == args.device.strip()), None)
    # every device with a node: a person may name one no rule lists yet (/dev/ttyAMA0)
    inventory = ctx.inventory(rules, ALL_NODE_SUBSYSTEMS, check_declared=declared is not None)
    state = inventory.find_declared(args.device) if declared is not None else None
    if state is not None:
        return explain_declared(ctx, args, inventory, state, path)
    entry = ctx.resolve(inventory, args.device)
    return report(ctx, inventory, entry, path, ctx.holders(), as_json=args.json)


def report(ctx: Context, inventory: Inventory, entry: Entry, path: str | None, holders: Holders,
           as_json: bool = False) -> int:
    """Print the explanation of ``entry`` (any kind of device) under ``inventory``'s rules."""
    verdicts = inventory.verdicts(entry)
    result = result_of(inventory, entry)
    reservation, why_not = _reservation(inventory, entry, result)
    if as_json:
        ctx.print_json({
            "rules_file": path,
            "device": device_json(entry, result, holders) if isinstance(entry.device, UsbDevice)
            else _other_device_json(entry, result, holders),
            "nomad": holders.to_json(),
            "verdicts": [_verdict_json(v) for v in verdicts],
            "details": _match_json(entry.state.match) if entry.state else None,
            "group_attributes": _attributes_json(_group_attributes(inventory, result)),
            "reservation": _reservation_json(reservation, why_not),
        })
        return EXIT_OK
    for line in _device_lines(entry, ctx.style):
        ctx.print(line)
    ctx.print()
    ctx.print(ctx.style.paint(f"RULES ({path}, {len(verdicts)} rules)" if path else "RULES (none: give --rules FILE)",
                              "bold"))
    for verdict in verdicts:
        for line in verdict.lines():
            ctx.print(_paint_verdict_line(line, verdict, ctx.style))
    if not verdicts:
        ctx.print(f"{_INDENT}no rules, so no device is offered to Nomad")
    ctx.print()
    ctx.print(ctx.style.paint("RESULT", "bold"))
    for line in _result_lines(inventory, entry, result, holders):
        ctx.print(_INDENT + line)
    ctx.print()
    ctx.print(ctx.style.paint("RESERVATION (what a task given this device gets)", "bold"))
    for line in _reservation_lines(reservation, why_not):
        ctx.print(_INDENT + line)
    return EXIT_OK


# -- text -----------------------------------------------------------------------------------------


def _device_lines(entry: Entry, style: Style) -> list[str]:
    d = entry.device
    if not isinstance(d, UsbDevice):
        return _other_device_lines(entry, style)
    names = "  ".join(x for x in (d.manufacturer, d.product) if x) or "(no strings)"
    rows = [
        ("device", f"{d.vid_pid}  {names}"),
        ("serial", d.serial or "(none)"),
        ("port", f"{d.sys_name}  ({d.port_path})" if d.port_path != d.sys_name else d.sys_name),
        ("sysfs", d.sys_path),
        ("usb node", d.device_node or "(none)"),
    ]
    nodes = [
        f"{c.device_node} ({', '.join(x for x in (c.subsystem, _iface(c.interface_number), c.driver) if x)})"
        for c in d.children if c.device_node
    ]
    rows.append(("nodes", nodes[0] if nodes else "(none)"))
    rows.extend(("", n) for n in nodes[1:])
    ifaces = [
        f"{i.number}: {i.interface_class:02x}/{i.interface_subclass:02x}/{i.interface_protocol:02x} "
        f"{i.driver or '(no driver)'}" for i in d.interfaces
    ]
    rows.append(("interfaces", ifaces[0] if ifaces else "(none)"))
    rows.extend(("", i) for i in ifaces[1:])
    lines = [style.paint(f"DEVICE {entry.id}", "bold")]
    lines.extend(f"{_INDENT}{label:<11}{value}".rstrip() for label, value in rows)
    return lines


def _other_device_lines(entry: Entry, style: Style) -> list[str]:
    """A device that is not USB: its kind, subsystem, kernel name, node, place and the parents rules look at."""
    d = entry.device
    rows: list[tuple[str, str]] = [("kind", d.kind)]
    if isinstance(d, NodeDevice):
        links = f"  (links {', '.join(d.devlinks)})" if d.devlinks else ""
        rows += [
            ("subsystem", d.subsystem),
            ("kernel", d.sys_name),
            ("node", (d.device_node or "(none)") + links),
            ("serial", d.serial or "(none)"),
            ("port", d.port_path),
            ("sysfs", d.sys_path),
            ("driver", d.driver or "(none)"),
        ]
        parents = [
            f"{p.sys_name} ({', '.join(x for x in (p.subsystem, 'driver ' + p.driver if p.driver else '') if x)})"
            for p in d.parents
        ]
        rows.append(("parents", parents[0] if parents else "(none)"))
        rows.extend(("", p) for p in parents[1:])
        platform = nearest_parent(d, PLATFORM_SUBSYSTEMS)
        if platform is not None:
            rows.append(("platform", platform.sys_name))
        pci = nearest_parent(d, (PCI_SUBSYSTEM,))
        if pci is not None:
            ids = " ".join(f"{name} {pci.attributes[name]}" for name in
                           ("vendor", "device", "subsystem_vendor", "subsystem_device", "class")
                           if name in pci.attributes)
            rows.append(("pci", f"{pci.sys_name}  {ids}".rstrip()))
    else:
        rows += [("node", d.device_node or "(none)"), ("serial", d.serial or "(none)")]
    lines = [style.paint(f"DEVICE {entry.id}", "bold")]
    lines.extend(f"{_INDENT}{label:<11}{value}".rstrip() for label, value in rows)
    return lines


def _other_device_json(entry: Entry, result: Result, holders: Holders) -> dict[str, object]:
    d = entry.device
    out: dict[str, object] = {"id": entry.id, "kind": d.kind, "sys_path": d.sys_path, "sys_name": d.sys_name,
                              "node": d.device_node, "serial": d.serial, "port": d.port_path, "driver": d.driver}
    if isinstance(d, NodeDevice):
        out["subsystem"] = d.subsystem
        out["devlinks"] = list(d.devlinks)
        out["parents"] = [
            {"sys_name": p.sys_name, "subsystem": p.subsystem, "driver": p.driver} for p in d.parents
        ]
    out["properties"] = dict(d.properties)
    out["result"] = result_json(result)
    held = holders.of(entry.id)
    out["allocations"] = None if held is None else [h.text for h in held]
    return out


def _iface(number: int | None) -> str:
    return f"interface {number}" if number is not None else ""


def _paint_verdict_line(line: str, verdict: RuleVerdict, style: Style) -> str:
    if not line.startswith(" "):
        if verdict.winner:
            return style.paint(line, "green" if not verdict.rule.ignore else "yellow")
        return style.paint(line, "dim") if not verdict.matched else line
    if line.startswith("  FAIL"):
        return "  " + style.paint("FAIL", "red") + line[6:]
    return line


def _result_lines(inventory: Inventory, entry: Entry, result: Result, holders: Holders) -> list[str]:
    if result.status != MATCHED:
        if result.rule is not None:
            return [f"excluded by {result.rule.describe()}: Nomad does not see this device"]
        return ["no rule takes this device: Nomad does not see it"]
    assert entry.state is not None and result.rule is not None
    match = entry.state.match
    rows: list[tuple[str, list[str]]] = [
        ("group", [result.group or ""]),
        ("rule", [f"{rule_ref(result.rule)} ({result.rule.where})"]),
        ("health", ["healthy" if result.healthy else f"unhealthy: {result.reason}"]),
        ("attributes", [f"{k}={v}" for k, v in _group_attributes(inventory, result).items()]),
    ]
    if match.health is not None:
        check = match.health
        rows.append(("check", [f"{' '.join(check.argv)} (every {check.interval:g}s, timeout {check.timeout:g}s)"]))
    if match.stats is not None:
        stats = match.stats
        summary = f", summary {stats.summary}" if stats.summary else ""
        rows.append(("stats", [f"{' '.join(stats.argv)} (every {stats.interval:g}s, timeout {stats.timeout:g}s"
                               f"{summary})"]))
    if match.nodes:
        rows.append(("nodes", list(match.nodes)))
    if match.reset:
        rows.append(("reset", ["the device is reset before it is handed to a task"]))
    if match.require_driver:
        rows.append(("driver", ["required: unhealthy while no interface has a kernel driver"]))
    if match.notes:
        rows.append(("notes", list(match.notes)))
    held = holders.of(entry.id)
    if held is None:
        rows.append(("held by", [f"unknown: {holders.error}"]))
    else:
        rows.append(("held by", [f"{h.text} ({h.client_status}, task {h.task})" for h in held] or ["no allocation"]))
    return _labelled(rows, 11)


def _labelled(rows: list[tuple[str, list[str]]], width: int) -> list[str]:
    """``label  value`` lines, further values of a label aligned below the first."""
    lines = []
    for label, values in rows:
        values = values or ["(none)"]
        lines.append(f"{label:<{width}}{values[0]}")
        lines.extend(f"{'':<{width}}{v}" for v in values[1:])
    return lines


def _group_attributes(inventory: Inventory, result: Result) -> dict[str, AttrValue]:
    """The attributes Nomad sees on the device's group: the built-ins plus the rule's, those all its devices share."""
    if result.group is None:
        return {}
    vendor, kind, name = result.group.split("/", 2)
    group = inventory.snapshot.group_of((vendor, kind, name))
    if group is None:
        return {}
    return dict(sorted(group.attributes.items()))


def _attributes_json(attributes: Mapping[str, AttrValue]) -> dict[str, object]:
    return {key: {"value": value.value, "unit": value.unit} for key, value in attributes.items()}


def _reservation(inventory: Inventory, entry: Entry, result: Result) -> tuple[Reservation | None, str]:
    if result.status != MATCHED:
        return None, "none: Nomad does not offer this device"
    try:
        return plan_reservation([entry.id], inventory.snapshot), ""
    except ReservationError as exc:
        return None, f"none now: {exc}"


def _reservation_lines(reservation: Reservation | None, why_not: str) -> list[str]:
    if reservation is None:
        return [why_not]
    return _labelled([
        ("devices", [f"{d.host_path} ({d.permissions})" if d.host_path == d.task_path
                     else f"{d.host_path} -> {d.task_path} ({d.permissions})" for d in reservation.devices]),
        ("env", [f"{k}={v}" for k, v in reservation.envs.items()]),
        ("mounts", [f"{m.host_path} -> {m.task_path} ({'ro' if m.read_only else 'rw'})" for m in reservation.mounts]),
    ], 11)


# -- JSON -----------------------------------------------------------------------------------------


def _verdict_json(verdict: RuleVerdict) -> dict[str, object]:
    return {
        "rule": rule_json(verdict.rule),
        "kind": verdict.rule.kind,
        "matched": verdict.matched,
        "winner": verdict.winner,
        "shadowed": verdict.shadowed,
        "excluded": verdict.excluded,
        "group": str(verdict.group) if verdict.group is not None else None,
        "reason": verdict.reason,
        "conditions": [
            {"field": c.field, "expected": c.expected, "actual": c.actual, "ok": c.ok} for c in verdict.conditions
        ],
    }


def _match_json(match: Match) -> dict[str, object]:
    health = match.health
    return {
        "attributes": _attributes_json(match.attributes),
        "children": sorted(match.children) if match.children is not None else None,
        "nodes": list(match.nodes),
        "permissions": match.permissions,
        "health": {"command": list(health.argv), "interval": health.interval, "timeout": health.timeout}
        if health is not None else None,
        "stats": {"command": list(match.stats.argv), "interval": match.stats.interval,
                  "timeout": match.stats.timeout, "summary": match.stats.summary}
        if match.stats is not None else None,
        "reset": match.reset,
        "require_driver": match.require_driver,
        "notes": list(match.notes),
    }


def _reservation_json(reservation: Reservation | None, why_not: str) -> dict[str, object]:
    if reservation is None:
        return {"ok": False, "error": why_not}
    return {
        "ok": True,
        "devices": [
            {"host_path": d.host_path, "task_path": d.task_path, "permissions": d.permissions}
            for d in reservation.devices
        ],
        "envs": dict(reservation.envs),
        "mounts": [
            {"host_path": m.host_path, "task_path": m.task_path, "read_only": m.read_only} for m in reservation.mounts
        ],
    }
