"""``list``: every attached USB device, its stable ID, its nodes, and what the rules make of it."""

from __future__ import annotations

import argparse

from plugin.cli.context import EXIT_OK, Context
from plugin.cli.table import Cell, Column, render_table
from plugin.cli.view import IGNORED, MATCHED, child_nodes, device_json, natural_key, result_of, rule_ref, short_node

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
)


def run(ctx: Context, args: argparse.Namespace) -> int:
    path = ctx.rules_path(args.rules)
    inventory = ctx.inventory(ctx.load_rules(path))
    entries = sorted(inventory.entries, key=lambda e: natural_key(e.device.sys_path))
    results = [result_of(inventory, e) for e in entries]
    if args.json:
        ctx.print_json({
            "source": inventory.source,
            "rules_file": path,
            "devices": [device_json(e, r) for e, r in zip(entries, results, strict=True)],
        })
        return EXIT_OK
    if not entries:
        ctx.print("no USB devices attached")
        return EXIT_OK
    rows: list[list[Cell]] = []
    for entry, result in zip(entries, results, strict=True):
        d = entry.device
        nodes = " ".join(short_node(n) for n in child_nodes(d)) or "-"
        if result.status == MATCHED:
            group: Cell = result.text
            health: Cell = "ok" if result.healthy else (result.reason, ("red",))
        else:
            group = (result.text, ("dim",) if result.status == IGNORED else ("yellow",))
            health = "-"
        rows.append([
            entry.id, d.vid_pid, d.manufacturer or "-", d.product or "-", d.serial or "-", d.sys_name,
            nodes, group, rule_ref(result.rule) if result.rule else "-", health,
        ])
    for line in render_table(COLUMNS, rows, None if args.wide else ctx.width, ctx.style):
        ctx.print(line)
    ctx.print()
    ctx.print(_footer(len(entries), results, path, inventory.source))
    return EXIT_OK


def _footer(total: int, results: list, path: str | None, source: str) -> str:
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
