"""VM tier, raw udev: real kernel hotplug of each device kind, as a plain pyudev monitor in the guest sees it."""

from __future__ import annotations

import pytest

from vm.machine import Guest
from vm.testing import KINDS, Devices

pytestmark = pytest.mark.vm

NODE_PREFIX = {"serial": "/dev/ttyUSB", "keyboard": "/dev/hidraw", "storage": "/dev/sd", "gadget": "/dev/ttyACM"}
NODE_KIND = {"serial": "char", "keyboard": "char", "storage": "block", "gadget": "char"}


def test_guest_boots_with_xhci_and_udevd(guest: Guest) -> None:
    """The guest has the xHCI root hubs, a running udevd and no network."""
    listing = guest.exec("ls", "/sys/bus/usb/devices")["stdout"].split()
    assert {"usb1", "usb2"} <= set(listing)
    stat = guest.call("stat", paths=["/run/udev/control", "/sys/class/net/eth0"])
    assert stat["/run/udev/control"] is not None, "systemd-udevd is not running in the guest"
    assert stat["/sys/class/net/eth0"] is None


@pytest.mark.parametrize("kind", KINDS)
def test_hotplug_announces_device_and_node(kind: str, devices: Devices, guest: Guest) -> None:
    """A plug gives udev add events with the device's ids and serial and a real /dev node; unplug removes both."""
    device = devices.make(kind)
    plugged = devices.plug(device)
    props = plugged.usb["properties"]
    assert (props["ID_VENDOR_ID"], props["ID_MODEL_ID"]) == (f"{device.vendor_id:04x}", f"{device.product_id:04x}")
    assert props["ID_SERIAL_SHORT"] == device.serial
    assert plugged.node.startswith(NODE_PREFIX[kind])
    node = guest.call("stat", paths=[plugged.node, props["DEVNAME"]])
    assert node[plugged.node] is not None and node[plugged.node]["kind"] == NODE_KIND[kind]
    assert node[props["DEVNAME"]] is not None and node[props["DEVNAME"]]["major"] == 189  # usb_device node

    devices.unplug(plugged)
    assert guest.call("stat", paths=[plugged.node])[plugged.node] is None


@pytest.mark.parametrize("kind", ["serial", "gadget"])
def test_replug_changes_devnum_not_port_path(kind: str, devices: Devices) -> None:
    """Replugging at the same port gives a new device number but the same ID_PATH and serial."""
    device = devices.make(kind)
    first = devices.plug(device)
    devices.unplug(first)
    second = devices.plug(device)
    assert second.devnum != first.devnum
    assert second.usb["properties"]["ID_PATH"] == first.usb["properties"]["ID_PATH"]
    assert second.usb["properties"]["ID_SERIAL_SHORT"] == first.usb["properties"]["ID_SERIAL_SHORT"]
