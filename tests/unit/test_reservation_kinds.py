"""Reservations beyond USB: kind-neutral DEVICE_* env for every kind, no USB_* names without USB, a rule's ``nodes:``.

As in test_reservation, device paths are mapped onto nodes every Linux machine has through the
injected realpath, so the plan's node checks pass without a udev world.
"""

from __future__ import annotations

import pytest
from node_factories import pcie_serial_port, pi_uart
from rules_factories import ft232r
from snapshot_factories import make_match, make_snapshot, make_state

from discovery.reservation import DevicePlan, DeviceUnavailableError, Reservation, plan_reservation
from discovery.rules.loader import parse_rules
from discovery.state.snapshot import DeviceState
from discovery.state.table import DeviceTable

REAL = {
    "/dev/ttyS4": "/dev/null",
    "/dev/ttyS5": "/dev/zero",
    "/dev/ttyAMA0": "/dev/full",
    "/dev/serial0": "/dev/full",
    "/dev/gpiochip0": "/dev/zero",
    "/dev/ttyUSB0": "/dev/zero",
    "/dev/bus/usb/001/005": "/dev/null",
    "/dev/card-escape": "/sys/kernel/notes",
}


def realpath(path: str) -> str:
    return REAL.get(path, path)


def port(device_id: str, number: int, **match: object) -> DeviceState:
    return make_state(device_id, device=pcie_serial_port(number),
                      match=make_match(("oxford", "serial", "oxpcie952"), **match))


def plan(ids: list[str], *states: DeviceState) -> Reservation:
    return plan_reservation(ids, make_snapshot(*states), realpath=realpath)


def test_udev_reservation_env_is_kind_neutral_and_claims_no_usb() -> None:
    """Two ports of a PCIe card: DEVICE_* per port in ID order, and not a single USB_ name."""
    envs = plan(["tty-pci-03_00.0-ttyS5", "tty-pci-03_00.0-ttyS4"],
                port("tty-pci-03_00.0-ttyS4", 4), port("tty-pci-03_00.0-ttyS5", 5)).envs
    assert envs == {
        "DEVICE_IDS": "tty-pci-03_00.0-ttyS4,tty-pci-03_00.0-ttyS5",
        "DEVICE_0_ID": "tty-pci-03_00.0-ttyS4", "DEVICE_0_SERIAL": "", "DEVICE_0_NODE": "/dev/null",
        "DEVICE_1_ID": "tty-pci-03_00.0-ttyS5", "DEVICE_1_SERIAL": "", "DEVICE_1_NODE": "/dev/zero",
    }  # fmt: skip


def test_usb_reservation_keeps_usb_names_beside_the_neutral_ones() -> None:
    """A USB device gets USB_DEVICE_* exactly as before, and DEVICE_* with the same main node."""
    state = make_state("usb-0403-6001-A50285BI", device=ft232r(device_node="/dev/bus/usb/001/005"),
                       match=make_match(("ftdi", "serial", "ft232r")))
    envs = plan(["usb-0403-6001-A50285BI"], state).envs
    assert envs["USB_DEVICE_0_NODE"] == envs["DEVICE_0_NODE"] == "/dev/zero"  # the tty, not the USB node
    assert envs["USB_DEVICE_0_BUS_NODE"] == "/dev/null"
    assert envs["USB_DEVICE_IDS"] == envs["DEVICE_IDS"] == "usb-0403-6001-A50285BI"


def test_udev_reservation_hands_over_the_node_and_the_rules_nodes_with_its_permissions() -> None:
    """The device's own node, then each of the rule's nodes, resolved, each once, with the rule's permissions."""
    state = make_state("tty-platform-fe201000.serial-ttyAMA0", device=pi_uart(),
                       match=make_match(("pi", "hat", "uart"), permissions="r",
                                        nodes=("/dev/serial0", "/dev/gpiochip0")))
    reservation = plan(["tty-platform-fe201000.serial-ttyAMA0"], state)
    assert reservation.devices == (DevicePlan("/dev/full", "/dev/full", "r"), DevicePlan("/dev/zero", "/dev/zero", "r"))
    assert reservation.envs["DEVICE_0_NODE"] == "/dev/full"


def test_a_rules_node_that_resolves_outside_dev_is_refused() -> None:
    """``nodes:`` must stay under /dev after following links (a /sys target is not a device node)."""
    with pytest.raises(DeviceUnavailableError, match="node /dev/card-escape resolves to /sys/kernel/notes, outside /dev"):
        plan(["p4"], port("p4", 4, nodes=("/dev/card-escape",)))


def test_a_missing_rules_node_makes_the_device_unhealthy() -> None:
    """The table checks the rule's nodes like the device's own: a missing one is 'node ... missing'."""
    rules = parse_rules(
        "rules:\n  - match: {vendor_id: '0403'}\n    group: {vendor: ftdi, type: serial, name: ft232r}\n"
        "    nodes: [/dev/gpiochip9]\n"
    )
    present = {"/dev/bus/usb/001/005", "/dev/ttyUSB0"}
    table = DeviceTable(unplugged_grace=60.0, node_check=lambda path: None if path in present else f"node {path} missing")
    table.set_rules(rules)
    device = ft232r(device_node="/dev/bus/usb/001/005")
    table.update(device.sys_path, device, 1.0)
    (state,) = table.build(1).devices.values()
    assert (state.healthy, state.reason) == (False, "node /dev/gpiochip9 missing")
    assert state.match.nodes == ("/dev/gpiochip9",)
