"""Devices with a node outside USB (kind udev): listed only when asked, read with parents and driver, IDs, hotplug."""

from __future__ import annotations


import pytest

from discovery.fake.testbed import (
    Testbed,
    list_fixtures,
    load_fixture,
    make_cros_fp,
    make_ftdi,
    make_pcie_serial_card,
)
from discovery.state.ids import stable_id
from discovery.model import NodeDevice, UsbDevice
from discovery.sources.udev import UdevSource
from udev_support import drain_until

USB_FIXTURES = [name for name in list_fixtures()
                if name not in ("raspberry-pi-hat", "pcie-serial-card", "v4l2-capture-card", "cros-fp")]

# fixture -> (ID, subsystem, node, driver, port_path, [(parent sys_name, subsystem, driver), nearest first ...])
EXPECTED = {
    "raspberry-pi-hat": [
        ("gpio-platform-fe200000.gpio-gpiochip0", "gpio", "/dev/gpiochip0", "pinctrl-bcm2835",
         "platform-fe200000.gpio", [("fe200000.gpio", "platform", "pinctrl-bcm2835"), ("soc", "platform", None)]),
        ("tty-platform-fe201000.serial-ttyAMA0", "tty", "/dev/ttyAMA0", "uart-pl011", "platform-fe201000.serial",
         [("fe201000.serial", "amba", "uart-pl011"), ("soc", "platform", None)]),
        ("spidev-platform-fe204000.spi-spidev0.0", "spidev", "/dev/spidev0.0", "spidev", "platform-fe204000.spi",
         [("spi0.0", "spi", "spidev"), ("spi0", "spi_master", None), ("fe204000.spi", "platform", "spi-bcm2835"),
          ("soc", "platform", None)]),
        ("i2c-dev-platform-fe804000.i2c-i2c-1", "i2c-dev", "/dev/i2c-1", "i2c-bcm2835", "platform-fe804000.i2c",
         [("i2c-1", "i2c", None), ("fe804000.i2c", "platform", "i2c-bcm2835"), ("soc", "platform", None)]),
    ],
    "pcie-serial-card": [
        ("tty-pci-03_00.0-ttyS4", "tty", "/dev/ttyS4", "serial", "pci-0000:03:00.0",
         [("0000:03:00.0", "pci", "serial"), ("0000:00:1c.0", "pci", "pcieport")]),
        ("tty-pci-03_00.0-ttyS5", "tty", "/dev/ttyS5", "serial", "pci-0000:03:00.0",
         [("0000:03:00.0", "pci", "serial"), ("0000:00:1c.0", "pci", "pcieport")]),
    ],
    "v4l2-capture-card": [
        ("video4linux-pci-04_00.0-video0", "video4linux", "/dev/video0", "cx23885", "pci-0000:04:00.0",
         [("0000:04:00.0", "pci", "cx23885"), ("0000:00:1c.4", "pci", "pcieport")]),
        ("video4linux-pci-04_00.0-video1", "video4linux", "/dev/video1", "cx23885", "pci-0000:04:00.0",
         [("0000:04:00.0", "pci", "cx23885"), ("0000:00:1c.4", "pci", "pcieport")]),
    ],
    "cros-fp": [
        ("misc-platform-AMDI0020_01-cros_fp", "misc", "/dev/cros_fp", "cros-ec-chardev", "platform-AMDI0020:01",
         [("cros-ec-chardev.3.auto", "platform", "cros-ec-chardev"), ("cros-ec-dev.1.auto", "platform", "cros-ec-dev"),
          ("serial1-0", "serial", "cros-ec-uart"), ("serial1", "serial", None),
          ("AMDI0020:01", "platform", "dw-apb-uart")]),
    ],
}


def _summary(device: NodeDevice, devices: list[NodeDevice]) -> tuple[object, ...]:
    return (stable_id(device, devices), device.subsystem, device.device_node, device.driver, device.port_path,
            [(p.sys_name, p.subsystem, p.driver) for p in device.parents])


def _node_devices(source: UdevSource) -> list[NodeDevice]:
    devices = source.enumerate()
    return [d for d in devices if isinstance(d, NodeDevice)]


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_udev_source_enumerates_fixture_into_node_devices(testbed: Testbed, fixture: str) -> None:
    """Each board's nodes: subsystem, node, driver (own or nearest parent's), port path, parents nearest first, ID."""
    testbed.plug(load_fixture(fixture))
    devices = _node_devices(UdevSource(node_subsystems="all"))
    assert [_summary(d, devices) for d in devices] == [tuple(row) for row in EXPECTED[fixture]]


def test_udev_source_lists_no_node_devices_unless_asked(testbed: Testbed) -> None:
    """By default (today's behaviour) only USB devices are listed, whatever else has a node."""
    for name in ("raspberry-pi-hat", "pcie-serial-card", "ftdi-ft232r"):
        testbed.plug(load_fixture(name))
    devices = UdevSource().enumerate()
    assert [d.kind for d in devices] == ["usb"]


def test_udev_source_lists_only_the_asked_subsystems(testbed: Testbed) -> None:
    """A set of subsystems lists just those; set_node_subsystems changes it and says whether it changed."""
    for name in ("raspberry-pi-hat", "pcie-serial-card", "v4l2-capture-card"):
        testbed.plug(load_fixture(name))
    source = UdevSource(node_subsystems={"tty"})
    assert [d.sys_name for d in _node_devices(source)] == ["ttyS4", "ttyS5", "ttyAMA0"]
    assert source.set_node_subsystems(frozenset({"gpio", "video4linux"})) is True
    assert source.set_node_subsystems(frozenset({"video4linux", "gpio"})) is False
    assert sorted(d.sys_name for d in _node_devices(source)) == ["gpiochip0", "video0", "video1"]
    assert source.set_node_subsystems(None) is True
    assert _node_devices(source) == []


def test_node_device_attributes_properties_and_parent_attributes(testbed: Testbed) -> None:
    """ATTR{} of the device and ATTRS{} of a parent are read on demand; udev properties come with the device."""
    testbed.plug(load_fixture("pcie-serial-card"))
    tty = next(d for d in _node_devices(UdevSource(node_subsystems={"tty"})) if d.sys_name == "ttyS4")
    assert tty.attributes["line"] == "4"
    assert "dev" in set(tty.attributes)
    assert "missing" not in tty.attributes and "../uevent" not in tty.attributes
    card = tty.parents[0]
    assert (card.attributes["vendor"], card.attributes["device"], card.attributes["class"]) == \
        ("0x1415", "0xc158", "0x070002")
    assert tty.properties["ID_PATH"] == "pci-0000:03:00.0"
    assert tty.properties["SUBSYSTEM"] == "tty" and tty.serial is None


def test_udev_source_usb_devices_unchanged_when_node_devices_are_listed(testbed: Testbed) -> None:
    """Every USB fixture reads the same with and without non-USB listing; their ttys stay their children."""
    for name in [*USB_FIXTURES, *EXPECTED]:
        testbed.plug(load_fixture(name))
    only_usb = UdevSource().enumerate()
    everything = UdevSource(node_subsystems="all").enumerate()
    usb = [d for d in everything if isinstance(d, UsbDevice)]
    assert usb == only_usb
    assert [(d.sys_path, d.children) for d in usb] == [(d.sys_path, d.children) for d in only_usb]
    node_paths = {d.sys_path for d in everything if isinstance(d, NodeDevice)}
    assert not any("/usb1/" in path for path in node_paths)  # ttyUSB0 & co. belong to their USB device
    assert len(node_paths) == sum(len(rows) for rows in EXPECTED.values())


def test_device_at_reads_a_node_device_only_when_its_subsystem_is_listed(testbed: Testbed) -> None:
    """device_at on a node path: the NodeDevice when its subsystem is listed, else None (as before)."""
    testbed.plug(make_pcie_serial_card())
    tty = "/sys/devices/pci0000:00/0000:00:1c.0/0000:03:00.0/tty/ttyS4"
    assert UdevSource().device_at(tty) is None
    assert UdevSource(node_subsystems={"misc"}).device_at(tty) is None
    found = UdevSource(node_subsystems={"tty"}).device_at(tty)
    assert isinstance(found, NodeDevice) and found.device_node == "/dev/ttyS4"
    both = UdevSource(node_subsystems="all").devices_at([tty, tty.rsplit("/", 2)[0]])  # the PCI card has no node
    assert [type(d).__name__ for d in both] == ["NodeDevice", "NoneType"]


def test_monitor_passes_node_device_events_of_listed_subsystems(testbed: Testbed) -> None:
    """Hotplug of a board: add and remove of its node name the node device; USB events still name their usb_device."""
    source = UdevSource(node_subsystems={"misc"})
    source.start()
    try:
        board = testbed.plug(make_cros_fp())
        ftdi = testbed.plug(make_ftdi())
        events = drain_until(source, lambda evs: any(e.usb_sys_path for e in evs) and
                              any(e.node_sys_path for e in evs))
        nodes = [(e.action, e.subsystem, e.device_sys_path) for e in events if e.node_sys_path]
        cros = nodes[0][2]
        assert nodes == [("add", "misc", cros)] and cros is not None and cros.endswith("/misc/cros_fp")
        assert {e.device_sys_path for e in events if e.usb_sys_path} == {ftdi.sys_path}
        # parents (platform, serial) are not passed: only the listed subsystems and USB's
        assert not [e for e in events if e.subsystem in ("platform", "serial")]
        device = source.device_at(cros)
        assert isinstance(device, NodeDevice) and device.device_node == "/dev/cros_fp"

        testbed.unplug(board)
        gone = drain_until(source, lambda evs: any(e.action == "remove" for e in evs))
        assert [(e.action, e.device_sys_path) for e in gone if e.node_sys_path] == [("remove", cros)]
        assert source.device_at(cros) is None
    finally:
        source.close()


def test_monitor_filter_follows_set_node_subsystems(testbed: Testbed) -> None:
    """A started monitor passes a subsystem's events once it is listed (misc is no USB child subsystem)."""
    source = UdevSource()
    source.start()
    try:
        board = testbed.plug(make_cros_fp())
        marker = testbed.plug(make_ftdi(port="1-3"))
        events = drain_until(source, lambda evs: any(e.usb_sys_path == marker.sys_path for e in evs))
        assert [e for e in events if e.subsystem == "misc"] == []  # filtered out in the socket
        assert source.set_node_subsystems(frozenset({"misc"})) is True
        testbed.unplug(board)
        events = drain_until(source, lambda evs: any(e.node_sys_path for e in evs))
        assert [(e.action, e.subsystem, e.sys_path.rsplit("/", 1)[-1]) for e in events if e.node_sys_path] == \
            [("remove", "misc", "cros_fp")]
    finally:
        source.close()
