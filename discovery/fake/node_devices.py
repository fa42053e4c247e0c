"""Fake devices outside USB as plain data: bus parents (platform, amba, pci, spi, ...) and class devices with nodes.

A :class:`FakeBoard` is what a kernel plus udev would show for some on-board or PCI hardware: its
parents (``FakeBusDevice``, with driver, properties such as ``OF_COMPATIBLE_0`` or ``PCI_ID``, and
attributes such as ``vendor``) and the class devices with a node below them (``FakeNode``: ttyAMA0,
gpiochip0, video0 ...), with udev's properties (``ID_PATH`` where udev's rules make one) and /dev
links. :meth:`FakeBoard.records` turns it into :class:`DeviceRecord` lists, parents first, for
``discovery.fake.testbed``; the ``make_*`` factories are the boards of ``fixtures/`` (which were
written from them). Nothing here touches the file system.

Node minors are the kernel's; ``records()`` adds ``FAKE_MINOR_OFFSET`` (as ``load_recording`` does)
so a fake node never picks up a real device's entry in the host's /run/udev.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from discovery.fake.recording import DeviceRecord
from discovery.fake.usb_devices import FAKE_MINOR_OFFSET

TTY_AMA_MAJOR = 204
TTY_S_MAJOR = 4
MISC_MAJOR = 10
I2C_DEV_MAJOR = 89
SPIDEV_MAJOR = 153
VIDEO_MAJOR = 81
GPIOCHIP_MAJOR = 254  # dynamic on real systems; what a Raspberry Pi usually gets


def _dots(devpath: str) -> str:
    return "../" * (devpath.strip("/").count("/") + 1)


@dataclass(frozen=True)
class FakeBusDevice:
    """A parent without a node: a platform or amba device, a PCI function, an SPI or serdev device."""

    devpath: str  # "/devices/platform/soc/fe201000.serial"
    subsystem: str
    driver: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, str] = field(default_factory=dict)

    def record(self) -> DeviceRecord:
        props = {"SUBSYSTEM": self.subsystem, **({"DRIVER": self.driver} if self.driver else {}), **self.properties}
        links = {"driver": f"{_dots(self.devpath)}bus/{self.subsystem}/drivers/{self.driver}"} if self.driver else {}
        attrs = {k: (v if v.endswith("\n") else v + "\n").encode() for k, v in self.attributes.items()}
        return DeviceRecord(self.devpath, props, attrs, links)


@dataclass(frozen=True)
class FakeNode:
    """A class device with a /dev node (``devname`` relative to /dev) below a parent."""

    devpath: str  # "/devices/platform/soc/fe201000.serial/tty/ttyAMA0"
    subsystem: str
    major: int
    minor: int  # as the kernel numbers it
    devname: str  # "ttyAMA0", "v4l/..." is a link, not a name
    links: tuple[str, ...] = ()  # /dev symlinks udev makes (relative to /dev)
    properties: Mapping[str, str] = field(default_factory=dict)  # ID_PATH, ID_SERIAL_SHORT, ...
    attributes: Mapping[str, str] = field(default_factory=dict)

    def record(self, minor_offset: int) -> DeviceRecord:
        minor = self.minor + minor_offset
        props = {"DEVNAME": f"/dev/{self.devname}", "MAJOR": str(self.major), "MINOR": str(minor),
                 "SUBSYSTEM": self.subsystem, **self.properties}
        if self.links:
            props["DEVLINKS"] = " ".join(f"/dev/{link}" for link in self.links)
        attrs = {k: (v if v.endswith("\n") else v + "\n").encode() for k, v in self.attributes.items()}
        attrs["dev"] = f"{self.major}:{minor}\n".encode()
        return DeviceRecord(self.devpath, props, attrs, {}, node=self.devname, symlinks=self.links)


@dataclass(frozen=True)
class FakeBoard:
    """Parents and node devices that come and go together (a HAT, a PCI card)."""

    parents: tuple[FakeBusDevice, ...]
    nodes: tuple[FakeNode, ...]

    def records(self, minor_offset: int = FAKE_MINOR_OFFSET) -> list[DeviceRecord]:
        """Everything as records, parents first (the kernel's order)."""
        records = [p.record() for p in self.parents] + [n.record(minor_offset) for n in self.nodes]
        return sorted(records, key=lambda r: r.devpath.count("/"))


def id_path_properties(id_path: str) -> dict[str, str]:
    """udev's path_id builtin: ID_PATH and its tag form."""
    tag = "".join(ch if ch.isalnum() or ch == "-" else "_" for ch in id_path)
    return {"ID_PATH": id_path, "ID_PATH_TAG": tag}


def _of(name: str, full: str, *compatible: str) -> dict[str, str]:
    """The device-tree properties the kernel puts into a platform or amba device's uevent."""
    props = {"OF_NAME": name, "OF_FULLNAME": full, "OF_COMPATIBLE_N": str(len(compatible))}
    props.update({f"OF_COMPATIBLE_{i}": c for i, c in enumerate(compatible)})
    return props


def make_raspberry_pi_hat() -> FakeBoard:
    """A Raspberry Pi 4's on-board buses a HAT uses: PL011 UART, GPIO, I2C-1 (i2c-dev), SPI0 (spidev)."""
    soc = "/devices/platform/soc"
    uart, gpio, i2c, spi = f"{soc}/fe201000.serial", f"{soc}/fe200000.gpio", f"{soc}/fe804000.i2c", f"{soc}/fe204000.spi"
    parents = (
        FakeBusDevice(soc, "platform", None, _of("soc", "/soc", "brcm,bcm2711", "simple-bus")),
        FakeBusDevice(uart, "amba", "uart-pl011", {**_of("serial", "/soc/serial@7e201000", "arm,pl011",
                                                          "arm,primecell"), "MODALIAS": "amba:d00241011"},
                      {"id": "00241011", "irq0": "36"}),
        FakeBusDevice(gpio, "platform", "pinctrl-bcm2835", {**_of("gpio", "/soc/gpio@7e200000", "brcm,bcm2711-gpio"),
                                                            "MODALIAS": "of:NgpioT(null)Cbrcm,bcm2711-gpio"}),
        FakeBusDevice(i2c, "platform", "i2c-bcm2835", {**_of("i2c", "/soc/i2c@7e804000", "brcm,bcm2711-i2c",
                                                             "brcm,bcm2835-i2c"),
                                                       "MODALIAS": "of:Ni2cT(null)Cbrcm,bcm2711-i2cCbrcm,bcm2835-i2c"}),
        FakeBusDevice(f"{i2c}/i2c-1", "i2c", None, {}, {"name": "bcm2835 (i2c@7e804000)"}),
        FakeBusDevice(spi, "platform", "spi-bcm2835", {**_of("spi", "/soc/spi@7e204000", "brcm,bcm2835-spi"),
                                                       "MODALIAS": "of:NspiT(null)Cbrcm,bcm2835-spi"}),
        FakeBusDevice(f"{spi}/spi_master/spi0", "spi_master"),
        FakeBusDevice(f"{spi}/spi_master/spi0/spi0.0", "spi", "spidev", {"MODALIAS": "spi:spidev"},
                      {"modalias": "spi:spidev"}),
    )
    nodes = (
        FakeNode(f"{uart}/tty/ttyAMA0", "tty", TTY_AMA_MAJOR, 64, "ttyAMA0",
                 ("serial1", "serial/by-path/platform-fe201000.serial"),
                 id_path_properties("platform-fe201000.serial"), {"type": "0", "line": "0", "port": "0x0"}),
        FakeNode(f"{gpio}/gpiochip0", "gpio", GPIOCHIP_MAJOR, 0, "gpiochip0",
                 attributes={"label": "pinctrl-bcm2711", "base": "512", "ngpio": "58"}),
        FakeNode(f"{i2c}/i2c-1/i2c-dev/i2c-1", "i2c-dev", I2C_DEV_MAJOR, 1, "i2c-1",
                 attributes={"name": "bcm2835 (i2c@7e804000)"}),
        FakeNode(f"{spi}/spi_master/spi0/spi0.0/spidev/spidev0.0", "spidev", SPIDEV_MAJOR, 0, "spidev0.0"),
    )
    return FakeBoard(parents, nodes)


def _pcie_port(slot: str) -> FakeBusDevice:
    return FakeBusDevice(f"/devices/pci0000:00/{slot}", "pci", "pcieport",
                         {"PCI_CLASS": "60400", "PCI_ID": "8086:A110", "PCI_SLOT_NAME": slot},
                         {"vendor": "0x8086", "device": "0xa110", "class": "0x060400"})


def _pci_function(path: str, slot: str, driver: str, vendor: int, device: int, sub_vendor: int, sub_device: int,
                  pci_class: int, vendor_name: str, model_name: str) -> FakeBusDevice:
    """A PCI function as the kernel's uevent and attributes and udev's hwdb show it."""
    modalias = (f"pci:v{vendor:08X}d{device:08X}sv{sub_vendor:08X}sd{sub_device:08X}"
                f"bc{pci_class >> 16:02X}sc{(pci_class >> 8) & 0xFF:02X}i{pci_class & 0xFF:02X}")
    return FakeBusDevice(path, "pci", driver, {
        "PCI_CLASS": f"{pci_class:X}", "PCI_ID": f"{vendor:04X}:{device:04X}",
        "PCI_SUBSYS_ID": f"{sub_vendor:04X}:{sub_device:04X}", "PCI_SLOT_NAME": slot, "MODALIAS": modalias,
        "ID_PCI_CLASS_FROM_DATABASE": "Communication controller" if pci_class >> 16 == 7 else "Multimedia controller",
        "ID_VENDOR_FROM_DATABASE": vendor_name, "ID_MODEL_FROM_DATABASE": model_name,
    }, {
        "vendor": f"0x{vendor:04x}", "device": f"0x{device:04x}", "subsystem_vendor": f"0x{sub_vendor:04x}",
        "subsystem_device": f"0x{sub_device:04x}", "class": f"0x{pci_class:06x}", "modalias": modalias,
    })


def make_pcie_serial_card(bus: int = 3, first_line: int = 4, port: str = "0000:00:1c.0") -> FakeBoard:
    """An Oxford OXPCIe952-style dual UART card at 0000:03:00.0 (8250_pci's ``serial`` driver): ttyS4 and ttyS5.

    ``bus`` and ``first_line`` place another card (0000:<bus>:00.0, ttyS<first_line> and the next).
    """
    slot = f"0000:{bus:02x}:00.0"
    card = f"/devices/pci0000:00/{port}/{slot}"
    parents = (
        _pcie_port(port),
        _pci_function(card, slot, "serial", 0x1415, 0xC158, 0x1415, 0xC158, 0x070002,
                      "Oxford Semiconductor Ltd", "OXPCIe952 Dual Native 950 UART"),
    )
    nodes = tuple(
        FakeNode(f"{card}/tty/ttyS{n}", "tty", TTY_S_MAJOR, 64 + n, f"ttyS{n}", (),
                 id_path_properties(f"pci-{slot}"), {"type": "4", "line": str(n), "port": f"0x{0xe000 + 8 * n:x}"})
        for n in (first_line, first_line + 1)
    )
    return FakeBoard(parents, nodes)


def make_serial_card_fleet(count: int) -> list[FakeBoard]:
    """``count`` dual-UART cards behind one PCIe switch port (the first keeps its root port): 2 ttys each."""
    first = make_pcie_serial_card(bus=0x10, first_line=4, port="0000:00:1d.0")
    rest = [make_pcie_serial_card(bus=0x10 + i, first_line=4 + 2 * i, port="0000:00:1d.0") for i in range(1, count)]
    return [first] + [FakeBoard(card.parents[1:], card.nodes) for card in rest]


def make_v4l2_capture_card() -> FakeBoard:
    """A Hauppauge WinTV-HVR1250-style capture card (Conexant CX23885) at 0000:04:00.0: video0 and video1."""
    slot = "0000:04:00.0"
    card = f"/devices/pci0000:00/0000:00:1c.4/{slot}"
    parents = (
        _pcie_port("0000:00:1c.4"),
        _pci_function(card, slot, "cx23885", 0x14F1, 0x8852, 0x0070, 0x7911, 0x040000,
                      "Conexant Systems, Inc.", "CX23885 PCI Video and Audio Decoder"),
    )
    nodes = tuple(
        FakeNode(f"{card}/video4linux/video{n}", "video4linux", VIDEO_MAJOR, n, f"video{n}",
                 (f"v4l/by-path/pci-{slot}-video-index{n}",),
                 {**id_path_properties(f"pci-{slot}"), "ID_V4L_VERSION": "2",
                  "ID_V4L_PRODUCT": f"cx23885[0] {name}", "ID_V4L_CAPABILITIES": ":capture:"},
                 {"name": f"cx23885[0] {name}", "index": "0", "dev_debug": "0"})
        for n, name in ((0, "video"), (1, "vbi"))
    )
    return FakeBoard(parents, nodes)


def make_cros_fp() -> FakeBoard:
    """A Chromebook's fingerprint MCU: misc device ``cros_fp`` of cros-ec-chardev, on a UART's serdev bus (ACPI GOOG0003)."""
    uart = "/devices/platform/AMDI0020:01"
    port = f"{uart}/serial1/serial1-0"
    ec = f"{port}/cros-ec-dev.1.auto"
    chardev = f"{ec}/cros-ec-chardev.3.auto"
    parents = (
        FakeBusDevice(uart, "platform", "dw-apb-uart", {"MODALIAS": "acpi:AMDI0020:"}, {"modalias": "acpi:AMDI0020:"}),
        FakeBusDevice(f"{uart}/serial1", "serial"),
        FakeBusDevice(port, "serial", "cros-ec-uart", {"MODALIAS": "acpi:GOOG0003:"}, {"modalias": "acpi:GOOG0003:"}),
        FakeBusDevice(ec, "platform", "cros-ec-dev", {"MODALIAS": "platform:cros-ec-dev"}),
        FakeBusDevice(chardev, "platform", "cros-ec-chardev", {"MODALIAS": "platform:cros-ec-chardev"}),
    )
    nodes = (FakeNode(f"{chardev}/misc/cros_fp", "misc", MISC_MAJOR, 122, "cros_fp"),)
    return FakeBoard(parents, nodes)
