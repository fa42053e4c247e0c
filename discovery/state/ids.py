"""Stable device IDs: the same physical device gets the same ID after replug and plugin restart.

An ID is built from what the device says about itself (vendor, product, serial) when the serial
can tell it apart; otherwise from where it is plugged in (the physical port path). Bus and device
numbers change on every replug, so they never take part. IDs always start with a word (``usb-``,
a udev subsystem such as ``tty-``) so Nomad never reads one as a number (``${device.ids}``
constraints fail on numeric IDs) and never contain a comma (Nomad joins IDs with commas).

The same rules for each kind of device: USB ``usb-<vid>-<pid>-<serial>`` or
``usb-<vid>-<pid>-port-<port>``; other udev devices ``<subsystem>-<serial>`` or
``<subsystem>-<port>-<kernel name>`` (one PCI card's ports share a port path, so the kernel name
tells them apart: ``tty-pci-03_00.0-ttyS4``); declared devices the operator's own ID.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from discovery.model import DeclaredDevice, Device, NodeDevice, UsbDevice

_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]+")
_ZEROS_THEN_DIGIT = re.compile(r"^0+[0-9]$")
_PCI_DOMAIN_0 = re.compile(r"^pci-0000:")
_USB_IN_PATH = re.compile(r"-usb(?:v(\d+))?-0:")
_MAX_PART = 48

# Serials that manufacturers burn into every unit, so they identify nothing.
_KNOWN_JUNK = frozenset(
    s.lower()
    for s in (
        "0123456789",
        "0123456789abcdef",
        "123456789",
        "1234567890",
        "123456",
        "none",
        "n/a",
        "na",
        "null",
        "serial",
        "default",
        "unknown",
        "to be filled by o.e.m.",
    )
)


def is_junk_serial(serial: str | None) -> bool:
    """True when a serial cannot tell two units apart: missing, blank, one repeated character, a known placeholder."""
    if serial is None:
        return True
    s = serial.strip()
    if len(s) < 2:
        return True
    if len(set(s.lower())) == 1:  # "000000000", "FFFFFFFF"
        return True
    if _ZEROS_THEN_DIGIT.match(s):  # "0001": what every CP210x ships with
        return True
    return s.lower() in _KNOWN_JUNK


def _safe(text: str) -> str:
    """Characters Nomad, env vars and file names all tolerate; long values shortened with a hash."""
    cleaned = _UNSAFE.sub("_", text.strip()).strip("_") or "x"
    if len(cleaned) > _MAX_PART:
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        cleaned = f"{cleaned[: _MAX_PART - 11]}~{digest}"
    return cleaned


def _safe_serial(serial: str | None) -> str:
    serial = (serial or "").strip()
    safe = _safe(serial)
    if safe != serial and "~" not in safe:
        # Cleaning changed the text: a short hash of the real serial keeps "AB CD" and "AB_CD" apart.
        safe = f"{safe}~{hashlib.sha256(serial.encode()).hexdigest()[:6]}"
    return safe


def serial_id(device: UsbDevice) -> str:
    return f"usb-{device.vendor_id:04x}-{device.product_id:04x}-{_safe_serial(device.serial)}"


def compact_port(port_path: str) -> str:
    """udev's ID_PATH without the parts every USB port shares: ``pci-0000:00:14.0-usb-0:5.1`` -> ``00:14.0-5.1``.

    What stays still names the controller (its PCI address) and the port chain, so the result is as
    unique and as stable as ID_PATH, and short enough to read in a table or a job file.
    """
    # usbv2/usbv3 (two root hubs of one xHCI controller) stay apart as v2/v3.
    return _USB_IN_PATH.sub(lambda m: f"-v{m.group(1)}-" if m.group(1) else "-", _PCI_DOMAIN_0.sub("", port_path))


def port_id(device: UsbDevice) -> str:
    return f"usb-{device.vendor_id:04x}-{device.product_id:04x}-port-{_safe(compact_port(device.port_path))}"


def compact_node_port(port_path: str) -> str:
    """A udev device's port path, short: ``pci-0000:03:00.0`` -> ``pci-03_00.0``; colons become ``_``."""
    return _PCI_DOMAIN_0.sub("pci-", port_path).replace(":", "_")


def node_serial_id(device: NodeDevice) -> str:
    return f"{_safe(device.subsystem)}-{_safe_serial(device.serial)}"


def node_port_id(device: NodeDevice) -> str:
    return f"{_safe(device.subsystem)}-{_safe(compact_node_port(device.port_path))}-{_safe(device.sys_name)}"


Identity = tuple[object, ...]


def twin_key(device: Device) -> Identity:
    """What two devices share when only their place can tell them apart: same kind of device, same serial.

    USB: vendor, product and serial; udev: subsystem and serial; declared: the operator's ID.
    """
    if isinstance(device, UsbDevice):
        return (device.vendor_id, device.product_id, device.serial)
    if isinstance(device, NodeDevice):
        return ("udev", device.subsystem, device.serial)
    return ("declared", device.device_id)


def stable_id(device: Device, attached: Iterable[Device] = ()) -> str:
    """The ID of ``device`` among the ``attached`` devices (which may include itself).

    The serial is used when it is real and no other attached device of the same kind (USB: vendor
    and product; udev: subsystem) reports it; otherwise the port path, which is unique among
    attached devices (for udev devices with the kernel name). A declared device has the ID its
    rule gives it.
    """
    if isinstance(device, DeclaredDevice):
        return device.device_id
    if not is_junk_serial(device.serial):
        key = twin_key(device)
        # the serial first: it differs for nearly every pair, so the key is rarely built
        if not any(other.serial == device.serial and other.sys_path != device.sys_path and twin_key(other) == key
                   for other in attached):
            return serial_id(device) if isinstance(device, UsbDevice) else node_serial_id(device)
    return port_id(device) if isinstance(device, UsbDevice) else node_port_id(device)
