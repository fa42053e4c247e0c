"""Plain NodeDevice records for rules tests (``kind: udev``): ``node_device(**overrides)`` and a few real-world ones.

The defaults are a Raspberry Pi 4's on-board UART (``/dev/ttyAMA0`` under the PL011 at
``fe201000.serial``); ``pcie_serial_port`` is a port of an Oxford OXPCIe952-style PCIe serial
card (``/dev/ttyS4``, vendor 0x1415 device 0xc158, driver ``serial`` from 8250_pci).
"""

from __future__ import annotations

from typing import Any

from discovery.model import NodeDevice, Parent, frozen_mapping


def make_parent(sys_path: str, subsystem: str | None, driver: str | None = None, **attributes: str) -> Parent:
    """One ancestor in sysfs; its kernel name is the last part of ``sys_path``."""
    return Parent(sys_path, sys_path.rsplit("/", 1)[-1], subsystem, driver, frozen_mapping(attributes))


PI_UART_PARENTS = (
    make_parent("/sys/devices/platform/soc/fe201000.serial", "amba", "uart-pl011",
                id="00241011", irq0="36", driver_override="(null)"),
    make_parent("/sys/devices/platform/soc", "platform"),
)  # fmt: skip


def node_device(**overrides: Any) -> NodeDevice:
    """A Raspberry Pi 4's ttyAMA0; any NodeDevice field can be overridden (``properties``/``attributes`` as dicts)."""
    fields: dict[str, Any] = {
        "sys_path": "/sys/devices/platform/soc/fe201000.serial/tty/ttyAMA0",
        "sys_name": "ttyAMA0",
        "subsystem": "tty",
        "port_path": "platform-fe201000.serial",
        "device_node": "/dev/ttyAMA0",
        "devlinks": ("/dev/serial0",),
        "serial": None,
        "driver": "uart-pl011",
        "parents": PI_UART_PARENTS,
        "properties": {
            "DEVNAME": "/dev/ttyAMA0", "SUBSYSTEM": "tty", "MAJOR": "204", "MINOR": "64",
            "ID_PATH": "platform-fe201000.serial", "ID_PATH_TAG": "platform-fe201000_serial",
            "DEVLINKS": "/dev/serial0",
        },
        "attributes": {
            "dev": "204:64", "line": "0", "type": "32", "uartclk": "48000000", "io_type": "2",
            "iomem_base": "0xFE201000", "xmit_fifo_size": "16",
        },
    }  # fmt: skip
    fields.update(overrides)
    fields["properties"] = frozen_mapping(fields["properties"])
    fields["attributes"] = frozen_mapping(fields["attributes"])
    return NodeDevice(**fields)


def pi_uart(**overrides: Any) -> NodeDevice:
    return node_device(**overrides)


def pi_platform_node(subsystem: str, kernel: str, platform: str, driver: str, **overrides: Any) -> NodeDevice:
    """Another on-board node of a Pi: ``gpiochip0`` under fe200000.gpio, ``i2c-1`` under fe804000.i2c, ..."""
    parent = make_parent(f"/sys/devices/platform/soc/{platform}", "platform", driver)
    soc = make_parent("/sys/devices/platform/soc", "platform")
    fields: dict[str, Any] = {
        "sys_path": f"/sys/devices/platform/soc/{platform}/{subsystem}/{kernel}",
        "sys_name": kernel,
        "subsystem": subsystem,
        "port_path": f"platform-{platform}",
        "device_node": f"/dev/{kernel}",
        "devlinks": (),
        "driver": driver,
        "parents": (parent, soc),
        "properties": {"DEVNAME": f"/dev/{kernel}", "SUBSYSTEM": subsystem, "ID_PATH": f"platform-{platform}"},
        "attributes": {},
    }
    fields.update(overrides)
    return node_device(**fields)


def pi_gpiochip(**overrides: Any) -> NodeDevice:
    return pi_platform_node("gpio", "gpiochip0", "fe200000.gpio", "pinctrl-bcm2835", **overrides)


def pi_i2c(**overrides: Any) -> NodeDevice:
    return pi_platform_node("i2c-dev", "i2c-1", "fe804000.i2c", "i2c-bcm2835", **overrides)


def pi_spidev(**overrides: Any) -> NodeDevice:
    return pi_platform_node("spidev", "spidev0.0", "fe204000.spi", "spi-bcm2835", **overrides)


PCIE_CARD = make_parent(
    "/sys/devices/pci0000:00/0000:00:1c.0/0000:03:00.0", "pci", "serial",
    vendor="0x1415", device="0xc158", subsystem_vendor="0x1415", subsystem_device="0x0000", **{"class": "0x070002"},
)  # fmt: skip
PCIE_BRIDGE = make_parent(
    "/sys/devices/pci0000:00/0000:00:1c.0", "pci", "pcieport",
    vendor="0x8086", device="0xa33c", **{"class": "0x060400"},
)  # fmt: skip
PCI_ROOT = make_parent("/sys/devices/pci0000:00", None)


def pcie_serial_port(port: int = 4, **overrides: Any) -> NodeDevice:
    """Port ``ttyS<port>`` of the PCIe serial card in slot 0000:03:00.0 (its ports share the card's ID_PATH)."""
    kernel = f"ttyS{port}"
    fields: dict[str, Any] = {
        "sys_path": f"/sys/devices/pci0000:00/0000:00:1c.0/0000:03:00.0/tty/{kernel}",
        "sys_name": kernel,
        "subsystem": "tty",
        "port_path": "pci-0000:03:00.0",
        "device_node": f"/dev/{kernel}",
        "devlinks": (),
        "serial": None,
        "driver": "serial",
        "parents": (PCIE_CARD, PCIE_BRIDGE, PCI_ROOT),
        "properties": {
            "DEVNAME": f"/dev/{kernel}", "SUBSYSTEM": "tty", "MAJOR": "4", "MINOR": str(64 + port),
            "ID_PATH": "pci-0000:03:00.0", "ID_PATH_TAG": "pci-0000_03_00_0",
            "ID_VENDOR_FROM_DATABASE": "Oxford Semiconductor Ltd",
            "ID_MODEL_FROM_DATABASE": "OXPCIe952 Dual Native 950 UART",
        },
        "attributes": {"dev": f"4:{64 + port}", "line": str(port), "type": "4", "uartclk": "62500000"},
    }  # fmt: skip
    fields.update(overrides)
    return node_device(**fields)
