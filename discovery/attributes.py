"""Attributes every matched device publishes, before the rule's own: what job constraints usually need.

Numbers are ints so a job writes ``value = "6353"`` for vendor 0x18d1 (contract §5.10: a string "18d1"
could never equal the literal). Per-unit values such as the serial or the port are left out: group
attributes count towards the node's computed class, and they would split every node into its own class.
"""

from __future__ import annotations

from discovery.model import DeclaredDevice, UsbDevice
from discovery.rules.model import AttrValue


def builtin_attributes(device: UsbDevice | DeclaredDevice) -> dict[str, AttrValue]:
    if not isinstance(device, UsbDevice):  # these are USB facts; other kinds have the rule's attributes only
        return {}
    attrs: dict[str, AttrValue] = {
        "vendor_id": AttrValue(device.vendor_id),
        "product_id": AttrValue(device.product_id),
        "device_class": AttrValue(device.device_class),
    }
    if device.usb_version:
        try:
            attrs["usb_version"] = AttrValue(float(device.usb_version))
        except ValueError:
            attrs["usb_version"] = AttrValue(device.usb_version)
    if device.speed_mbps is not None:
        attrs["speed_mbps"] = AttrValue(int(device.speed_mbps) if float(device.speed_mbps).is_integer() else float(device.speed_mbps))
    if device.manufacturer:
        attrs["manufacturer"] = AttrValue(device.manufacturer)
    if device.product:
        attrs["product"] = AttrValue(device.product)
    drivers = sorted({i.driver for i in device.interfaces if i.driver})
    if drivers:
        attrs["driver"] = AttrValue(",".join(drivers))
    return attrs
