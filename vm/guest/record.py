"""Guest side: a plugged device, with its children, as a umockdev recording read from a real kernel.

What ``umockdev-record`` would write for the device's sysfs directories (udev properties, every
readable attribute, the binary ``descriptors``, the driver link, the node), so that descriptor
parsing and attribute formatting are tested against what a kernel really shows. Two kinds: a
usb_device with its interfaces, and a PCI function with the class devices that have a node below
it (a serial card's ttys). The host writes the text to ``fixtures/kernel/``
(``python -m vm.record_fixtures``).
"""

from __future__ import annotations

import os
import re

import pyudev
from discovery.fake.recording import DeviceRecord, format_recording

INTERFACE = re.compile(r"^\d+-[\d.]+:\d+\.\d+$")
SKIPPED = frozenset({"uevent", "remove"})  # the event trigger, and a write-only file
# A PCI function's BAR files: reading an I/O BAR's file does port I/O on the device (a UART's
# receive register loses its byte), and a ROM or memory BAR is not an attribute anyone matches on.
PCI_SKIPPED = re.compile(r"^(resource\d+(_wc)?|rom)$")


def _attributes(path: str) -> dict[str, bytes]:
    found = {}
    for name in sorted(os.listdir(path)):
        file = os.path.join(path, name)
        if name in SKIPPED or PCI_SKIPPED.match(name) or os.path.islink(file) or not os.path.isfile(file):
            continue
        try:
            with open(file, "rb") as handle:
                found[name] = handle.read()
        except OSError:
            continue  # write-only or refusing to be read
    return found


def _record(device: pyudev.Device) -> DeviceRecord:
    path = device.sys_path
    links = {"driver": os.readlink(f"{path}/driver")} if os.path.islink(f"{path}/driver") else {}
    node = device.device_node
    return DeviceRecord(devpath=device.device_path, properties=dict(device.properties), attributes=_attributes(path),
                        links=links, node=node.removeprefix("/dev/") if node else None)


def record_usb_device(serial: str | None = None, vendor_product: str | None = None) -> str:
    """The recording of the usb_device with this ID_SERIAL_SHORT (or ``vvvv:pppp``) and its interfaces."""
    context = pyudev.Context()
    for device in context.list_devices(subsystem="usb", DEVTYPE="usb_device"):
        props = device.properties
        if serial is not None and props.get("ID_SERIAL_SHORT") != serial:
            continue
        if vendor_product is not None and f"{props.get('ID_VENDOR_ID')}:{props.get('ID_MODEL_ID')}" != vendor_product:
            continue
        interfaces = [child for child in device.children if INTERFACE.match(child.sys_name)]
        # umockdev-record writes each device before its parents
        return format_recording([*(_record(i) for i in interfaces), _record(device)])
    raise LookupError(f"no usb_device with serial {serial} / ids {vendor_product}")


def record_pci_device(slot_name: str) -> str:
    """The recording of the PCI function ``0000:00:10.0`` and every device with a node below it."""
    context = pyudev.Context()
    function = pyudev.Devices.from_name(context, "pci", slot_name)
    below = [device for device in context.list_devices() if device.device_node
             and device.sys_path.startswith(function.sys_path + "/")]
    below.sort(key=lambda device: device.sys_path)
    return format_recording([*(_record(device) for device in below), _record(function)])
