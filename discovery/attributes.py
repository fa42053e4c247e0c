"""Attributes every matched device publishes, before the rule's own: what job constraints usually need.

Numbers are ints so a job writes ``value = "6353"`` for vendor 0x18d1 (contract §5.10: a string "18d1"
could never equal the literal). Per-unit values such as the serial or the port are left out: group
attributes count towards the node's computed class, and they would split every node into its own class.
For a ``kind: udev`` device that means its subsystem and driver, and the ids of its PCI card.
"""

from __future__ import annotations

from discovery.model import Device, NodeDevice, UsbDevice
from discovery.rules.model import AttrValue
from discovery.rules.udev_conditions import PCI_SUBSYSTEM, nearest_parent, sysfs_hex


def builtin_attributes(device: Device) -> dict[str, AttrValue]:
    if isinstance(device, UsbDevice):
        return usb_attributes(device)
    if isinstance(device, NodeDevice):
        return udev_attributes(device)
    return {}  # declared devices publish only their rule's attributes


def usb_attributes(device: UsbDevice) -> dict[str, AttrValue]:
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


def udev_attributes(device: NodeDevice) -> dict[str, AttrValue]:
    """``subsystem``, ``driver`` and, on a PCI card, ``pci_vendor_id``/``pci_device_id``/``pci_class`` as ints."""
    attrs: dict[str, AttrValue] = {"subsystem": AttrValue(device.subsystem)}
    if device.driver:
        attrs["driver"] = AttrValue(device.driver)
    pci = nearest_parent(device, (PCI_SUBSYSTEM,))
    if pci is not None:
        for name, sysfs in (("pci_vendor_id", "vendor"), ("pci_device_id", "device"), ("pci_class", "class")):
            number = sysfs_hex(pci.attributes.get(sysfs))
            if number is not None:
                attrs[name] = AttrValue(number)
    return attrs
