"""Stable device IDs: the same physical device gets the same ID after replug and plugin restart.

An ID is built from what the device says about itself (vendor, product, serial) when the serial
can tell it apart; otherwise from where it is plugged in (the physical port path). Bus and device
numbers change on every replug, so they never take part. IDs always start with ``usb-`` so Nomad
never reads one as a number (``${device.ids}`` constraints fail on numeric IDs) and never contain
a comma (Nomad joins IDs with commas).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from discovery.model import UsbDevice

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


def serial_id(device: UsbDevice) -> str:
    serial = (device.serial or "").strip()
    safe = _safe(serial)
    if safe != serial and "~" not in safe:
        # Cleaning changed the text: a short hash of the real serial keeps "AB CD" and "AB_CD" apart.
        safe = f"{safe}~{hashlib.sha256(serial.encode()).hexdigest()[:6]}"
    return f"usb-{device.vendor_id:04x}-{device.product_id:04x}-{safe}"


def compact_port(port_path: str) -> str:
    """udev's ID_PATH without the parts every USB port shares: ``pci-0000:00:14.0-usb-0:5.1`` -> ``00:14.0-5.1``.

    What stays still names the controller (its PCI address) and the port chain, so the result is as
    unique and as stable as ID_PATH, and short enough to read in a table or a job file.
    """
    # usbv2/usbv3 (two root hubs of one xHCI controller) stay apart as v2/v3.
    return _USB_IN_PATH.sub(lambda m: f"-v{m.group(1)}-" if m.group(1) else "-", _PCI_DOMAIN_0.sub("", port_path))


def port_id(device: UsbDevice) -> str:
    return f"usb-{device.vendor_id:04x}-{device.product_id:04x}-port-{_safe(compact_port(device.port_path))}"


def stable_id(device: UsbDevice, attached: Iterable[UsbDevice] = ()) -> str:
    """The ID of ``device`` among the ``attached`` devices (which may include itself).

    The serial is used when it is real and no other attached device of the same vendor and
    product reports it; otherwise the port path, which is unique among attached devices.
    """
    if is_junk_serial(device.serial):
        return port_id(device)
    for other in attached:
        if (
            other.sys_path != device.sys_path
            and other.vendor_id == device.vendor_id
            and other.product_id == device.product_id
            and other.serial == device.serial
        ):
            return port_id(device)
    return serial_id(device)
