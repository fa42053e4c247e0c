"""Guest side: reading every USB device on a real kernel, ours against the minimal scan, and checks of how we read.

Needs the installed plugin (discovery) and ``baselines.py``, the benchmarks' minimal pyudev scan, which
the host puts into the share beside this file. Timings are in the guest's own clock and returned as
plain numbers; nothing here asserts a time.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from typing import Any

import pyudev
from discovery.rules.loader import load_rules
from discovery.sources.udev import UdevSource
from discovery.sources.udevdb import device_properties
from discovery.loop.watcher import Discovery

import baselines

SET_VALUED = ("DEVLINKS", "TAGS", "CURRENT_TAGS")  # libudev joins these from hash sets: order is its own


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000.0, 2)


def enumerate_timings(rules_file: str, runs: int = 5) -> dict[str, Any]:
    """Discovery.start() (rules, monitor, enumerate, IDs, match, first snapshot) and the minimal scan, ``runs`` each."""
    ours: list[float] = []
    enumerate_only: list[float] = []
    scan: list[float] = []
    devices = usable = found = 0
    for _ in range(runs):
        gc.collect()
        discovery = Discovery(UdevSource(), lambda: load_rules(rules_file), rules_file=rules_file)
        began = time.perf_counter()
        snapshot = discovery.start()
        ours.append(time.perf_counter() - began)
        discovery.stop()
        devices = len(snapshot.devices)
        usable = sum(1 for state in snapshot.devices.values() if state.healthy)
        gc.collect()
        began = time.perf_counter()
        UdevSource().enumerate()
        enumerate_only.append(time.perf_counter() - began)
        gc.collect()
        began = time.perf_counter()
        found = len(baselines.scan(pyudev.Context()))
        scan.append(time.perf_counter() - began)
    return {
        "runs": runs, "ours_ms": _median_ms(ours), "enumerate_ms": _median_ms(enumerate_only),
        "scan_ms": _median_ms(scan), "ours_devices": devices, "ours_healthy": usable, "scan_found": found,
    }


def compare_properties() -> dict[str, Any]:
    """Every device under /sys/devices: our one-read properties against pyudev's (libudev's) own."""
    context = pyudev.Context()
    checked = skipped = 0
    with_database = 0
    differ: list[dict[str, Any]] = []
    for folder, _, files in os.walk("/sys/devices"):
        if "uevent" not in files:
            continue
        try:
            theirs = dict(pyudev.Devices.from_sys_path(context, folder).properties)
            ours = device_properties(folder)
        except (pyudev.DeviceNotFoundError, OSError, ValueError):
            continue  # gone meanwhile, or not a device libudev would open
        if not theirs:
            skipped += 1  # libudev lists nothing for a device without a subsystem (/sys/devices/pnp0)
            continue
        checked += 1
        with_database += "USEC_INITIALIZED" in theirs
        for key in SET_VALUED:
            for props in (ours, theirs):
                if key in props:
                    props[key] = " ".join(sorted(props[key].replace(":", " ").split()))
        if ours != theirs and len(differ) < 10:
            keys = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
            differ.append({"sys_path": folder, "keys": {k: [ours.get(k), theirs.get(k)] for k in keys}})
    return {"checked": checked, "skipped": skipped, "with_database": with_database, "differ": differ}


def compare_reads() -> dict[str, Any]:
    """enumerate() (one pass) against device_at() (one device) for every USB device: same records."""
    source = UdevSource()
    devices = source.enumerate()
    differ = []
    for device in devices:
        again = source.device_at(device.sys_path)
        if again is None or (again, dict(again.properties), dict(again.attributes)) != (
                device, dict(device.properties), dict(device.attributes)):
            differ.append(device.sys_path)
    return {"devices": len(devices), "children": sum(len(d.children) for d in devices), "differ": differ}


def find_usb_device(serial: str, child_subsystem: str) -> dict[str, Any]:
    """The usb_device with this ID_SERIAL_SHORT and its first child of ``child_subsystem``, as udev events describe them."""
    context = pyudev.Context()
    for device in context.list_devices(subsystem="usb", DEVTYPE="usb_device"):
        if device.properties.get("ID_SERIAL_SHORT") != serial:
            continue
        for child in context.list_devices(subsystem=child_subsystem).match_parent(device):
            if child.device_node:
                return {
                    "usb": {"devpath": device.device_path, "properties": dict(device.properties)},
                    "child": {"devpath": child.device_path, "device_node": child.device_node},
                }
    raise LookupError(f"no usb_device with serial {serial} and a {child_subsystem} node")
