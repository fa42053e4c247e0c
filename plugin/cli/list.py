"""``list``: every attached device the plugin would look at, its stable ID, its nodes, what the rules make of it, and who holds it.

Devices outside USB (kind ``udev``: an on-board UART, a GPIO chip, a PCI card's ports) are listed
when the rules' ``kind: udev`` rules would have the plugin look at them, ``--all`` lists every one
(and the declared devices); with them comes a KIND column, and a udev device's DEVICE cell is its
subsystem and kernel name.

Holders come from the local Nomad agent (``plugin.cli.holders``). Without an agent that answers,
the HELD BY column is left out (a column of "unknown" says nothing) and one line under the table says why.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from discovery.model import Device, UsbDevice
from discovery.sources.base import ALL_NODE_SUBSYSTEMS
from plugin.cli.context import EXIT_OK, Context
from plugin.cli.declared import declared_json
from plugin.cli.declared import list_lines as declared_list_lines
from plugin.cli.table import Cell, Column, render_table
from plugin.cli.view import (
    IGNORED,
    MATCHED,
    Result,
    device_json,
    held_by_text,
    holders_line,
    natural_key,
    result_of,
    rule_ref,
    short_node,
    shown_nodes,
)

if TYPE_CHECKING:
    from discovery.state.inventory import Inventory
    from plugin.cli.holders import Holders

# What a rule writer needs most stays longest: ID, VID:PID, group and health never drop; serial and
# manufacturer give way first. Shrinking cuts a cell's end (IDs last: people copy them).
COLUMNS = (
    Column("ID", min_width=24, shrink=8),
    Column("VID:PID", min_width=9),
    Column("MANUFACTURER", min_width=8, shrink=2, drop=1),
    Column("PRODUCT", min_width=12, shrink=4, drop=6),
    Column("SERIAL", min_width=8, shrink=1, drop=2),
    Column("PORT", min_width=5, shrink=5, drop=3),
    Column("NODES", min_width=7, shrink=6, drop=5),
    Column("GROUP", min_width=20, shrink=7),
    Column("RULE", min_width=14, shrink=3, drop=4),
    Column("HEALTH", min_width=6, shrink=9),
    Column("HELD BY", min_width=8, shrink=10, drop=7),
)
HELD_BY = len(COLUMNS) - 1
# --all: a KIND column after the ID, and the VID:PID column names any kind of device.
ALL_COLUMNS = (COLUMNS[0], Column("KIND", min_width=4), Column("DEVICE", min_width=9, shrink=11), *COLUMNS[2:])


def run(ctx: Context, args: argparse.Namespace) -> int:
    path = ctx.rules_path(args.rules)
    every = bool(args.all)
    rules = ctx.load_rules(path)
    # Without --all: what the plugin would look at, USB devices and those of the subsystems the
    # kind: udev rules name; with it, every device with a node and the declared devices.
    wanted = ALL_NODE_SUBSYSTEMS if every else rules.node_subsystems()
    inventory = ctx.inventory(rules, wanted, check_declared=every)
    usb = sorted(inventory.entries, key=lambda e: natural_key(e.device.sys_path))
    entries = [*usb, *sorted(inventory.others, key=lambda e: natural_key(e.device.sys_path))]
    kinds = every or bool(inventory.others)  # a KIND column once more than USB devices are listed
    results = [result_of(inventory, e) for e in entries]
    declared = inventory.declared if every else ()
    holders = ctx.holders() if entries or declared else None
    if args.json:
        devices = [device_json(e, r, holders) for e, r in zip(entries, results, strict=True)]
        if kinds:  # which fields a device has depends on its kind: say it for every one
            devices = [{"kind": e.device.kind, **d} for e, d in zip(entries, devices, strict=True)]
        out: dict[str, object] = {
            "source": inventory.source,
            "rules_file": path,
            "devices": devices,
            "nomad": holders.to_json() if holders is not None else None,
        }
        if every:
            out["declared"] = [declared_json(s, holders) for s in declared]
        ctx.print_json(out)
        return EXIT_OK
    if not entries:  # nothing attached, so nobody was asked about attached devices
        ctx.print("no devices with a node attached" if every else "no USB devices attached")
        _print_declared(ctx, inventory, holders, args, every)
        return EXIT_OK
    assert holders is not None
    rows: list[list[Cell]] = []
    for entry, result in zip(entries, results, strict=True):
        d = entry.device
        nodes = " ".join(short_node(n) for n in shown_nodes(d)) or "-"
        if result.status == MATCHED:
            group: Cell = result.text
            health: Cell = "ok" if result.healthy else (result.reason, ("red",))
        else:
            group = (result.text, ("dim",) if result.status == IGNORED else ("yellow",))
            health = "-"
        held: Cell = held_by_text(holders.of(entry.id)) if result.status == MATCHED else "-"
        row: list[Cell] = [
            entry.id, *_identity_cells(d), d.serial or "-", _port(d), nodes, group,
            rule_ref(result.rule) if result.rule else "-", health, held,
        ]
        rows.append([row[0], d.kind, *row[1:]] if kinds else row)
    columns: tuple[Column, ...] = ALL_COLUMNS if kinds else COLUMNS
    if not holders.known:
        columns, rows = columns[:-1], [row[:-1] for row in rows]
    for line in render_table(columns, rows, None if args.wide else ctx.width, ctx.style):
        ctx.print(line)
    ctx.print()
    ctx.print(_footer(len(entries), results, path, inventory.source))
    ctx.print(holders_line(holders, sum(1 for e in entries if holders.of(e.id))))
    _print_declared(ctx, inventory, holders, args, every)
    return EXIT_OK


def _print_declared(
    ctx: Context, inventory: Inventory, holders: Holders | None, args: argparse.Namespace, every: bool
) -> None:
    """With --all: the declared devices, below the attached ones."""
    if not every:
        return
    ctx.print()
    for line in declared_list_lines(ctx, inventory, holders, args.wide):
        ctx.print(line)
def _identity_cells(d: Device) -> list[Cell]:
    """VID:PID (or the subsystem and kernel name), manufacturer and product."""
    if isinstance(d, UsbDevice):
        return [d.vid_pid, d.manufacturer or "-", d.product or "-"]
    return [d.label, "-", "-"]


def _port(d: Device) -> str:
    """A USB device's kernel name (``1-5.2``), another device's place (ID_PATH or its bus parent)."""
    return d.sys_name if isinstance(d, UsbDevice) else d.port_path


def _footer(total: int, results: list[Result], path: str | None, source: str) -> str:
    matched = [r for r in results if r.status == MATCHED]
    ignored = sum(1 for r in results if r.status == IGNORED)
    groups = len({r.group for r in matched})
    plural = "s" if total != 1 else ""
    text = (f"{total} device{plural}: {len(matched)} matched into {groups} group{'s' if groups != 1 else ''}, "
            f"{ignored} ignored, {total - len(matched) - ignored} with no rule")
    if path is None:
        text += " (no rules file: give --rules FILE)"
    else:
        text += f" (rules: {path})"
    if source != "udev":
        text += f"; source {source}: no udev, so no ports or child nodes"
    return text
