"""examples/rules.yaml's kind: udev rules: the Pi HAT's nodes and the PCIe card's ports land in the groups it claims."""

from __future__ import annotations

from pathlib import Path

import pytest
from node_factories import pcie_serial_port, pi_gpiochip, pi_i2c, pi_platform_node, pi_spidev, pi_uart
from rules_factories import arduino_uno, ft232r

from discovery.model import NodeDevice
from discovery.rules.loader import load_rules
from discovery.rules.ruleset import RuleSet

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rules.yaml"

CLAIMS: list[tuple[str, NodeDevice, str | None]] = [
    ("pi-gpiochip0", pi_gpiochip(), "raspberrypi/gpio/bcm2711"),
    ("pi-i2c-1", pi_i2c(), "raspberrypi/i2c/i2c-1"),
    ("pi-spidev0.0", pi_spidev(), "raspberrypi/spi/spi0"),
    ("pi-spidev0.1", pi_spidev(sys_name="spidev0.1", device_node="/dev/spidev0.1"), "raspberrypi/spi/spi0"),
    ("pi-ttyAMA0", pi_uart(), "raspberrypi/serial/pl011"),
    ("pcie-ttyS4", pcie_serial_port(4), "oxford/serial/oxpcie952"),
    ("pcie-ttyS5", pcie_serial_port(5), "oxford/serial/oxpcie952"),
    ("pi-i2c-20", pi_platform_node("i2c-dev", "i2c-20", "fe205000.i2c", "i2c-bcm2835"), None),
    ("onboard-ttyS0", pcie_serial_port(0, parents=()), None),  # a legacy port, no PCI card
]  # fmt: skip


@pytest.fixture(scope="module")
def example() -> RuleSet:
    return load_rules(EXAMPLE)


@pytest.mark.parametrize(("device", "group"), [c[1:] for c in CLAIMS], ids=[c[0] for c in CLAIMS])
def test_example_sorts_udev_devices_into_claimed_groups(example: RuleSet, device: NodeDevice, group: str | None) -> None:
    """Each non-USB device lands in the group the example's comments promise (or is left out)."""
    match = example.match(device, "dev-test")
    assert (str(match.group) if match else None) == group
    if match is not None:
        assert match.notes == ()


def test_example_hat_uart_hands_over_the_gpio_chip_and_the_card_names_its_port(example: RuleSet) -> None:
    """The UART rule adds the GPIO chip to its nodes; the card's env names each port and its slot."""
    uart, port5 = example.match(pi_uart()), example.match(pcie_serial_port(5))
    assert uart is not None and port5 is not None
    assert uart.nodes == ("/dev/gpiochip0",) and uart.env == {"HAT_UART": "/dev/ttyAMA0"}
    assert port5.env == {"SERIAL_PORT": "/dev/ttyS5", "CARD_SLOT": "0000:03:00.0"}


def test_example_has_no_warnings_with_usb_and_udev_devices(example: RuleSet) -> None:
    """With the HAT, the card and a few USB devices attached, no udev rule is dead or unmatched."""
    devices = [device for _, device, _ in CLAIMS] + [arduino_uno(), ft232r()]
    udev_fields = tuple(rule.field for rule in example.rules if rule.kind == "udev")
    assert len(udev_fields) == 5
    warnings = [str(w) for w in example.warnings_for(devices) if w.field.startswith(udev_fields)]
    assert warnings == []
