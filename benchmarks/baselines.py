"""The two baselines: how generic device plugins usually find devices, in a few lines each.

* ``poll``: re-enumerate all of udev on a fixed period (5 s by default), like plugins that fingerprint
  on a timer.
* ``rescan``: listen to udev, and re-enumerate everything on every event, without debounce.

Both use the same matcher, a table of vendor:product ids, and call a device usable once the tty
its driver creates is there, which is what our benchmark rules ask of the plugin. Each runs as its
own process, ``python -m benchmarks.baselines poll|rescan [--interval S]``, in the same umockdev
world as the plugin, and writes one JSON line to stdout whenever what it would offer changes:
``{"usable": [ids], "listed": n, "groups": ["vendor/type/name", ...]}``. A pipe is cheaper than
gRPC, so that part of the comparison favours the baselines.

This module may import pyudev directly: it lives in benchmarks/, outside the packages.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import pyudev

# The devices the benchmark plugs (FTDI FT232R fleets) and the group the benchmark rules give them.
MATCH: dict[tuple[int, int], str] = {(0x0403, 0x6001): "ftdi/serial/ft232r"}
SUBSYSTEMS = ("usb", "tty")

Found = dict[str, tuple[str, str | None]]  # device ID -> (group, tty node or None)


def device_id(vendor_id: int, product_id: int, serial: str | None, sys_name: str) -> str:
    """The same shape of ID as the plugin's, so one benchmark check fits all three."""
    return f"usb-{vendor_id:04x}-{product_id:04x}-{serial or 'port-' + sys_name}"


def scan(context: pyudev.Context) -> Found:
    """Enumerate and match everything from scratch: matched USB devices and their tty nodes."""
    devices: dict[str, tuple[str, str]] = {}  # sys_path -> (ID, group)
    for dev in context.list_devices(subsystem="usb", DEVTYPE="usb_device"):
        attrs = dev.attributes
        try:
            ids = (int(attrs.asstring("idVendor"), 16), int(attrs.asstring("idProduct"), 16))
        except (KeyError, ValueError):
            continue  # gone while we looked, or not a real device
        group = MATCH.get(ids)
        if group is None:
            continue
        serial = attrs.get("serial")
        text = serial.decode(errors="replace").strip() if serial else None
        devices[dev.sys_path] = (device_id(*ids, text, dev.sys_name), group)
    found: Found = {dev_id: (group, None) for dev_id, group in devices.values()}
    for tty in context.list_devices(subsystem="tty"):
        node = tty.device_node
        path = tty.sys_path
        while node and "/" in path:  # the nearest usb_device above the tty owns it
            path = path.rsplit("/", 1)[0]
            if path in devices:
                dev_id, group = devices[path]
                found[dev_id] = (group, node)
                break
    return found


def emit(found: Found) -> None:
    usable = sorted(dev_id for dev_id, (_, node) in found.items() if node)
    groups = sorted({group for group, _ in found.values()})
    sys.stdout.write(json.dumps({"usable": usable, "listed": len(found), "groups": groups}) + "\n")
    sys.stdout.flush()


def poll_forever(interval: float) -> None:
    context = pyudev.Context()
    last: Found | None = None
    due = time.monotonic()
    while True:
        found = scan(context)
        if found != last:
            emit(found)
            last = found
        due += interval
        time.sleep(max(0.0, due - time.monotonic()))


def rescan_forever() -> None:
    context = pyudev.Context()
    monitor = pyudev.Monitor.from_netlink(context, source="udev")
    for subsystem in SUBSYSTEMS:
        monitor.filter_by(subsystem)
    monitor.start()  # bound before the first scan: nothing falls in between
    last = scan(context)
    emit(last)
    while True:
        monitor.poll()  # blocks until the next event; each one is a full re-enumeration
        found = scan(context)
        if found != last:
            emit(found)
            last = found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baselines", description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("poll", "rescan"))
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between polls (poll mode)")
    args = parser.parse_args(argv)
    try:
        if args.mode == "poll":
            poll_forever(args.interval)
        else:
            rescan_forever()
    except (BrokenPipeError, KeyboardInterrupt):
        return 0  # the benchmark stopped reading: we are done
    return 0


if __name__ == "__main__":
    sys.exit(main())
