"""The device table: IDs kept while a device is the same unit, new when another unit takes its port."""

from __future__ import annotations

from node_factories import pcie_serial_port
from rules_factories import ft232r

from discovery.rules.loader import parse_rules
from discovery.rules.model import AttrValue
from discovery.state.table import DeviceTable

RULES = parse_rules("rules:\n  - match: {vendor_id: '0403'}\n    group: {vendor: ftdi, type: serial, name: ft232r}\n")


def table() -> DeviceTable:
    t = DeviceTable(unplugged_grace=60.0, node_check=lambda path: None)
    t.set_rules(RULES)
    return t


def test_device_table_keeps_id_when_the_same_device_changes() -> None:
    """A re-read of the same unit (a child appeared) keeps its ID and counts no replug."""
    t = table()
    dev = ft232r(serial="AAAA1111")
    t.update(dev.sys_path, dev, 1.0)
    t.update(dev.sys_path, ft232r(serial="AAAA1111"), 2.0)
    snap = t.build(1)
    (state,) = snap.devices.values()
    assert state.id == "usb-0403-6001-AAAA1111" and state.replug_count == 0


def test_device_table_swapped_unit_on_same_port_gets_its_own_id() -> None:
    """Another unit of the same model at the same sysfs path (events coalesced) is a new device."""
    t = table()
    first = ft232r(serial="AAAA1111")
    t.update(first.sys_path, first, 1.0)
    second = ft232r(serial="BBBB2222", devnum=first.devnum + 1)
    t.update(second.sys_path, second, 2.0)
    snap = t.build(1)
    assert {i: s.present for i, s in snap.devices.items()} == {
        "usb-0403-6001-AAAA1111": False,
        "usb-0403-6001-BBBB2222": True,
    }


def test_reservation_paths_strictly_below_dev_and_sys() -> None:
    """/dev itself (or /sys) is never handed over: only paths strictly below them."""
    from discovery.reservation import within_allowed_roots

    assert within_allowed_roots("/dev/ttyUSB0") and within_allowed_roots("/sys/bus/usb")
    assert not within_allowed_roots("/dev") and not within_allowed_roots("/sys")
    assert not within_allowed_roots("/devil/x") and not within_allowed_roots("/etc/shadow")


HEALTH_RULES = parse_rules(
    "rules:\n  - match: {vendor_id: '0403'}\n    group: {vendor: ftdi, type: serial, name: ft232r}\n"
    "    health: {command: [/bin/true]}\n"
)


def test_device_table_healthy_count_follows_health_plug_and_unplug() -> None:
    """The group's healthy_count is the number of its healthy devices: plug, failed check, unplug."""
    from discovery.checks.health import HealthResult

    t = DeviceTable(unplugged_grace=60.0, node_check=lambda path: None)
    t.set_rules(HEALTH_RULES)
    a = ft232r(serial="AAAA1111", sys_path="/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1")
    b = ft232r(serial="BBBB2222", sys_path="/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2", devnum=9)

    def count() -> int:
        (group,) = t.build(1).groups
        return int(group.attributes["healthy_count"].value)

    t.update(a.sys_path, a, 1.0)
    assert count() == 1
    t.update(b.sys_path, b, 2.0)
    assert count() == 2
    t.set_health("usb-0403-6001-BBBB2222", HealthResult(False, 1, "exit 1", 0.01, 3.0))
    assert count() == 1
    t.update(a.sys_path, None, 4.0)  # unplugged: still listed, not healthy
    assert len(t.build(1).devices) == 2 and count() == 0


def test_device_table_attributes_identical_while_healthy_count_holds() -> None:
    """Two snapshots with the same healthy count carry equal attributes (nothing else flaps)."""
    t = table()
    a = ft232r(serial="AAAA1111")
    t.update(a.sys_path, a, 1.0)
    first = t.build(1).groups[0].attributes
    t.update(a.sys_path, ft232r(serial="AAAA1111"), 2.0)  # a re-read of the same unit
    assert dict(t.build(2).groups[0].attributes) == dict(first)


def test_device_table_udev_group_has_the_builtin_udev_attributes_under_the_rules() -> None:
    """A kind: udev group publishes subsystem, driver and its PCI card's ids (docs/rules.md), the rule's on top."""
    t = DeviceTable(unplugged_grace=60.0, node_check=lambda path: None)
    t.set_rules(parse_rules(
        "rules:\n  - kind: udev\n    match: {subsystem: tty}\n    group: {vendor: oxford, type: serial, name: card}\n"
        "    attributes: {driver: 8250_pci}\n"
    ))
    for port in (4, 5):
        device = pcie_serial_port(port)
        t.update(device.sys_path, device, 1.0)
    (group,) = t.build(1).groups
    assert {k: v for k, v in group.attributes.items() if k != "healthy_count"} == {
        "subsystem": AttrValue("tty"), "driver": AttrValue("8250_pci"), "pci_vendor_id": AttrValue(0x1415),
        "pci_device_id": AttrValue(0xC158), "pci_class": AttrValue(0x070002),
    }
