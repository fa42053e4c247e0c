"""IDs, ID memory and the device table for devices outside USB (kind udev) and declared ones, beside USB devices."""

from __future__ import annotations

import pytest

from discovery.fake.memory_source import MemorySource
from discovery.state.idmemory import IdMemory
from discovery.state.ids import compact_node_port, stable_id, twin_key
from discovery.model import DeclaredDevice, NodeDevice
from discovery.rules.ruleset import RuleSet
from discovery.state.table import DeviceTable
from discovery.loop.watcher import Discovery
from rules_factories import make_device


def make_node(name: str = "ttyS4", subsystem: str = "tty", port: str = "pci-0000:03:00.0",
              serial: str | None = None, node: str | None = None) -> NodeDevice:
    return NodeDevice(sys_path=f"/sys/devices/pci0000:00/0000:00:1c.0/0000:03:00.0/{subsystem}/{name}",
                      sys_name=name, subsystem=subsystem, port_path=port, serial=serial,
                      device_node=node or f"/dev/{name}")


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        (make_node(), "tty-pci-03_00.0-ttyS4"),
        (make_node("ttyAMA0", port="platform-fe201000.serial"), "tty-platform-fe201000.serial-ttyAMA0"),
        (make_node("cros_fp", "misc", "platform-AMDI0020:01"), "misc-platform-AMDI0020_01-cros_fp"),
        (make_node(serial="FP-4711"), "tty-FP-4711"),
        (make_node(serial="0001"), "tty-pci-03_00.0-ttyS4"),  # junk serial: the place
        (make_node(serial="AB CD"), "tty-AB_CD~" + __import__("hashlib").sha256(b"AB CD").hexdigest()[:6]),
        (make_node("i2c-1", "i2c-dev", "platform/soc/fe804000.i2c/i2c-1,x"), "i2c-dev-platform_soc_fe804000.i2c_i2c-1_x-i2c-1"),
    ],
    ids=["pci-port", "platform-port", "colon-in-place", "serial", "junk-serial", "cleaned-serial", "comma"],
)
def test_stable_id_of_node_devices(device: NodeDevice, expected: str) -> None:
    """<subsystem>-<serial> when real, else <subsystem>-<compact port>-<kernel name>; never numeric, no comma."""
    dev_id = stable_id(device, [device])
    assert dev_id == expected
    assert "," not in dev_id and not dev_id[0].isdigit()


def test_node_serial_shared_within_a_subsystem_falls_back_to_the_place() -> None:
    """Two ttys reporting one serial get place IDs; a device of another subsystem with it does not count."""
    a, b = make_node("ttyS4", serial="SAME"), make_node("ttyS5", serial="SAME")
    video = make_node("video0", "video4linux", serial="SAME")
    assert stable_id(a, [a, b, video]) == "tty-pci-03_00.0-ttyS4"
    assert stable_id(b, [a, b, video]) == "tty-pci-03_00.0-ttyS5"
    assert stable_id(video, [a, b, video]) == "video4linux-SAME"
    usb = make_device(serial="SAME")
    assert stable_id(usb, [usb, a, b]) == "usb-18d1-4ee7-SAME"  # a USB device is no udev device's twin
    assert twin_key(a) == twin_key(b) != twin_key(usb)


def test_declared_device_id_is_the_operators() -> None:
    assert stable_id(DeclaredDevice(device_id="nebula10-a", rule_index=0)) == "nebula10-a"


def test_compact_node_port() -> None:
    assert compact_node_port("pci-0000:03:00.0") == "pci-03_00.0"
    assert compact_node_port("pci-0001:03:00.0") == "pci-0001_03_00.0"  # another PCI domain stays
    assert compact_node_port("platform-fe201000.serial") == "platform-fe201000.serial"


def test_table_twins_of_node_devices_and_ids_survive_a_restart_with_the_memory() -> None:
    """Twins (same subsystem and serial) keep serial ID and place ID across a restart, like USB twins."""
    memory = IdMemory()
    first, second = make_node("ttyS4", serial="SAME"), make_node("ttyS5", serial="SAME")
    running = DeviceTable(unplugged_grace=60.0, node_check=lambda path: None, memory=memory)
    running.update(second.sys_path, second, 0.0)  # seen first: the serial ID is its
    running.update(first.sys_path, first, 1.0)
    before = {d.sys_name: i for i, d in running.attached()}
    assert before == {"ttyS5": "tty-SAME", "ttyS4": "tty-pci-03_00.0-ttyS4"}
    restored, skipped = IdMemory.from_json(memory.to_json())
    assert skipped == 0
    assert {"kind": "udev", "subsystem": "tty", "serial": "SAME", "port": "pci-0000:03:00.0",
            "kernel": "ttyS5", "id": "tty-SAME"} in memory.to_json()["ids"]
    table = DeviceTable(unplugged_grace=60.0, node_check=lambda path: None, memory=restored)
    table.replace_all([first, second], 2.0)
    assert {d.sys_name: i for i, d in table.attached()} == before


def test_table_mixed_kinds_replug_and_same_unit() -> None:
    """A node device changed in place keeps its ID; a new node at its path is a new plug; USB is unaffected."""
    table = DeviceTable(unplugged_grace=60.0, node_check=lambda path: None)
    usb, tty = make_device(), make_node(serial="X1")
    table.replace_all([usb, tty], 0.0)
    assert sorted(i for i, _ in table.attached()) == ["tty-X1", "usb-18d1-4ee7-1A2B3C4D"]
    table.update(tty.sys_path, make_node(serial="X1"), 1.0)
    table.update(tty.sys_path, make_node(serial="X2"), 2.0)
    assert sorted(i for i, _ in table.attached()) == ["tty-X2", "usb-18d1-4ee7-1A2B3C4D"]
    snapshot = table.build(1)
    assert sorted(i for i, _ in snapshot.unmatched) == ["tty-X2", "usb-18d1-4ee7-1A2B3C4D"]


def test_discovery_asks_the_rules_which_node_subsystems_to_list() -> None:
    """The loop tells the source the rules' node subsystems at start and at a reload; a change lists devices again."""
    source = MemorySource([make_device(), make_node()])
    wanted: list[frozenset[str] | None] = [None]
    discovery = Discovery(source, RuleSet, debounce=0.0, node_subsystems=lambda rules: wanted[-1])
    try:
        discovery.start()
        assert source.node_subsystems_asked == [None]
        assert [i for i, _ in discovery.current().unmatched] == ["usb-18d1-4ee7-1A2B3C4D"]
        version = discovery.current().version
        wanted.append(frozenset({"tty"}))
        discovery.reload_rules()
        snapshot = discovery.wait_newer(version, timeout=10.0)
        assert source.node_subsystems_asked == [None, frozenset({"tty"})]
        assert sorted(i for i, _ in snapshot.unmatched) == ["tty-pci-03_00.0-ttyS4", "usb-18d1-4ee7-1A2B3C4D"]
    finally:
        discovery.stop()
