"""Declared devices in the CLI: the table ``list --all`` adds, and ``explain <declared ID>``.

A declared device is not attached, so it has no VID:PID, port or sysfs path: it is shown by its
ID, values, nodes, group and health (its health check run once, as the plugin would run it).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from discovery.model import DeclaredDevice
from discovery.reservation import ReservationError, plan_reservation
from discovery.state.snapshot import DeviceState
from plugin.cli.context import EXIT_OK, Context
from plugin.cli.table import Cell, Column, render_table
from plugin.cli.view import held_by_text, result_from_state, result_json, rule_ref, short_node

if TYPE_CHECKING:
    from discovery.state.inventory import Inventory
    from plugin.cli.holders import Holders

COLUMNS = (
    Column("ID", min_width=16, shrink=6),
    Column("VALUES", min_width=8, shrink=3, drop=2),
    Column("NODES", min_width=7, shrink=4, drop=3),
    Column("GROUP", min_width=20, shrink=5),
    Column("RULE", min_width=14, shrink=2, drop=1),
    Column("HEALTH", min_width=6, shrink=7),
    Column("HELD BY", min_width=8, shrink=8, drop=4),
)
HELD_BY = len(COLUMNS) - 1
_INDENT = "  "


def device_of(state: DeviceState) -> DeclaredDevice:
    assert isinstance(state.device, DeclaredDevice)
    return state.device


def values_text(device: DeclaredDevice) -> str:
    return " ".join(f"{k}={v}" for k, v in device.values.items()) or "-"


def list_lines(ctx: Context, inventory: Inventory, holders: Holders | None, wide: bool) -> list[str]:
    """The DECLARED DEVICES table of ``list --all`` and its footer line."""
    if not inventory.declared:
        return ["no declared devices (a 'kind: declared' rule declares them)"]
    rows: list[list[Cell]] = []
    for state in inventory.declared:
        device = device_of(state)
        health: Cell = "ok" if state.healthy else (state.reason, ("red",))
        held: Cell = held_by_text(holders.of(state.id)) if holders is not None else "-"
        rows.append([
            state.id, values_text(device), " ".join(short_node(n) for n in device.nodes) or "-",
            "/".join(state.group), rule_ref(state.match.rule), health, held,
        ])
    columns: tuple[Column, ...] = COLUMNS
    if holders is None or not holders.known:
        columns, rows = COLUMNS[:HELD_BY], [row[:HELD_BY] for row in rows]
    lines = [ctx.style.paint("DECLARED DEVICES", "bold")]
    lines.extend(render_table(columns, rows, None if wide else ctx.width, ctx.style))
    healthy = sum(1 for s in inventory.declared if s.healthy)
    count = len(inventory.declared)
    lines.append(f"{count} declared device{'s' if count != 1 else ''}, {healthy} healthy (health checks run once)")
    return lines


def declared_json(state: DeviceState, holders: Holders | None) -> dict[str, object]:
    device = device_of(state)
    held = holders.of(state.id) if holders is not None else None
    return {
        "id": state.id,
        "kind": device.kind,
        "values": dict(device.values),
        "nodes": list(device.nodes),
        "serial": device.serial,
        "match": result_json(result_from_state(state)),
        "allocations": [h.to_json() for h in held] if held is not None else None,
    }


def explain(ctx: Context, args: argparse.Namespace, inventory: Inventory, state: DeviceState, path: str | None) -> int:
    """``explain <declared ID>``: the device, every rule's verdict, its health check and reservation."""
    device = device_of(state)
    verdicts = inventory.rules.explain(device, state.id)
    holders = ctx.holders()
    match = state.match
    try:
        reservation = plan_reservation([state.id], inventory.snapshot)
        why_not = ""
    except ReservationError as exc:
        reservation, why_not = None, f"none now: {exc}"
    if args.json:
        ctx.print_json({
            "rules_file": path,
            "device": declared_json(state, holders),
            "verdicts": [{"rule": rule_ref(v.rule), "matched": v.matched, "winner": v.winner, "reason": v.reason}
                         for v in verdicts],
            "health": {"command": list(match.health.argv), "interval": match.health.interval,
                       "timeout": match.health.timeout} if match.health is not None else None,
            "reservation": {"ok": True, "envs": dict(reservation.envs),
                            "devices": [d.host_path for d in reservation.devices],
                            "mounts": [m.host_path for m in reservation.mounts]}
            if reservation is not None else {"ok": False, "error": why_not},
        })
        return EXIT_OK
    ctx.print(ctx.style.paint(f"DEVICE {state.id}", "bold"))
    rows = [
        ("kind", "declared (in the rules; udev does not see it)"),
        ("values", values_text(device)),
        ("serial", device.serial or "(none)"),
        ("nodes", " ".join(device.nodes) or "(none)"),
    ]
    for label, value in rows:
        ctx.print(f"{_INDENT}{label:<11}{value}")
    ctx.print()
    ctx.print(ctx.style.paint(f"RULES ({path}, {len(verdicts)} rules)", "bold"))
    for verdict in verdicts:
        for line in verdict.lines():
            ctx.print(line)
    ctx.print()
    ctx.print(ctx.style.paint("RESULT", "bold"))
    result = [
        ("group", "/".join(state.group)),
        ("rule", f"{rule_ref(match.rule)} ({match.rule.where})"),
        ("health", "healthy (its check ran once)" if state.healthy else f"unhealthy: {state.reason}"),
    ]
    if match.health is not None:
        check = match.health
        result.append(("check", f"{' '.join(check.argv)} (every {check.interval:g}s, timeout {check.timeout:g}s)"))
    group = inventory.snapshot.group_of(state.group)
    if group is not None:
        result.append(("attributes", " ".join(f"{k}={v}" for k, v in sorted(group.attributes.items()))))
    held = holders.of(state.id)
    result.append(("held by", f"unknown: {holders.error}" if held is None
                   else ", ".join(h.text for h in held) or "no allocation"))
    for label, value in result:
        ctx.print(f"{_INDENT}{label:<11}{value}")
    ctx.print()
    ctx.print(ctx.style.paint("RESERVATION (what a task given this device gets)", "bold"))
    if reservation is None:
        ctx.print(_INDENT + why_not)
        return EXIT_OK
    for label, values in (
        ("devices", [f"{d.host_path} ({d.permissions})" for d in reservation.devices]),
        ("env", [f"{k}={v}" for k, v in reservation.envs.items()]),
        ("mounts", [f"{m.host_path} -> {m.task_path} ({'ro' if m.read_only else 'rw'})" for m in reservation.mounts]),
    ):
        values = values or ["(none)"]
        ctx.print(f"{_INDENT}{label:<11}{values[0]}")
        for value in values[1:]:
            ctx.print(f"{_INDENT}{'':<11}{value}")
    return EXIT_OK
