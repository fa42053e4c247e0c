"""Typed, immutable records of what is attached: the one device model every layer reads.

Three kinds of device, one record class each, told apart by ``kind`` (the same word a rule's
``kind:`` uses): ``usb`` (:class:`UsbDevice`, a USB device with its interfaces and children),
``udev`` (:class:`NodeDevice`, any other udev device with a device node: an on-board UART, a GPIO
chip, an I2C adapter, a capture card) and ``declared`` (:class:`DeclaredDevice`, hardware udev
cannot see, declared in the rules). Layers that treat them alike use what all three have:
``kind``, ``sys_path`` (the table's key), ``sys_name``, ``port_path``, ``serial``, ``device_node``,
``driver``, ``children``, ``properties``, ``attributes`` and ``label``.

pyudev objects are converted into these at once (in ``discovery.sources.udev``); nothing outside that
module ever sees a pyudev object. USB ids are ints here; hex formatting happens at the edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Mapping, TypeAlias

EMPTY: Mapping[str, str] = MappingProxyType({})


def frozen_mapping(items: Mapping[str, str] | None) -> Mapping[str, str]:
    """A read-only copy, so a frozen record cannot be changed through its dict."""
    return MappingProxyType(dict(items or {}))


@dataclass(frozen=True)
class Interface:
    """One USB interface of a device (``1-2:1.0``)."""

    number: int
    interface_class: int
    interface_subclass: int = 0
    interface_protocol: int = 0
    driver: str | None = None
    sys_name: str = ""


@dataclass(frozen=True)
class Child:
    """A node that belongs to a USB device: a tty, hidraw, video4linux, sound, block, net, ... device."""

    subsystem: str
    sys_path: str
    sys_name: str
    device_node: str | None = None  # "/dev/ttyUSB0"; None for nodeless children such as net
    interface_number: int | None = None
    driver: str | None = None
    devlinks: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=lambda: EMPTY, compare=False, hash=False)


@dataclass(frozen=True)
class UsbDevice:
    """One USB device (udev subsystem ``usb``, DEVTYPE ``usb_device``) with its interfaces and children.

    ``port_path`` is the physical place of the device: udev's ``ID_PATH`` when it is known (it
    names the controller too), else the kernel name such as ``1-2.3``. ``bus`` and ``devnum`` change
    on every replug; nothing that must stay stable may be built from them.
    """

    kind: ClassVar[str] = "usb"

    sys_path: str
    sys_name: str
    vendor_id: int
    product_id: int
    busnum: int
    devnum: int
    port_path: str
    serial: str | None = None
    manufacturer: str | None = None
    product: str | None = None
    device_class: int = 0
    usb_version: str | None = None  # "2.00"
    speed_mbps: float | None = None  # 480.0
    device_node: str | None = None  # "/dev/bus/usb/001/005"
    driver: str | None = None
    interfaces: tuple[Interface, ...] = ()
    children: tuple[Child, ...] = ()
    properties: Mapping[str, str] = field(default_factory=lambda: EMPTY, compare=False, hash=False)
    attributes: Mapping[str, str] = field(default_factory=lambda: EMPTY, compare=False, hash=False)

    @property
    def vid_pid(self) -> str:
        """``18d1:4ee7``: how people and lsusb write the pair."""
        return f"{self.vendor_id:04x}:{self.product_id:04x}"

    @property
    def label(self) -> str:
        """How a person recognises the device in a table or a log line: ``18d1:4ee7`` for USB."""
        return self.vid_pid


@dataclass(frozen=True)
class Parent:
    """One ancestor of a :class:`NodeDevice` in sysfs (nearest first), as udev's ``ATTRS{}``/``DRIVERS`` see it."""

    sys_path: str
    sys_name: str  # "0000:03:00.0", "fe201000.serial"
    subsystem: str | None  # "pci", "platform", "amba", "i2c", ...
    driver: str | None = None
    attributes: Mapping[str, str] = field(default_factory=lambda: EMPTY, compare=False, hash=False)


@dataclass(frozen=True)
class NodeDevice:
    """A udev device with a device node that is not part of a USB device (``/dev/ttyAMA0``, ``/dev/gpiochip0``).

    ``port_path`` is its physical place: udev's ``ID_PATH`` when known, else its sysfs path below
    ``/sys/devices``. Several nodes can share one ID_PATH (the ports of one PCI serial card), so an
    ID built from it also takes the kernel name. ``parents`` lists its sysfs ancestors, nearest first.
    """

    kind: ClassVar[str] = "udev"

    sys_path: str
    sys_name: str  # kernel name: "ttyAMA0"
    subsystem: str  # the device's own subsystem: "tty", "gpio", "i2c-dev", "spidev", "video4linux"
    port_path: str
    device_node: str | None = None
    devlinks: tuple[str, ...] = ()
    serial: str | None = None  # udev's ID_SERIAL_SHORT where one exists
    driver: str | None = None  # of the nearest device (itself or a parent) that has one, as udev's DRIVERS
    parents: tuple[Parent, ...] = ()
    children: tuple[Child, ...] = ()  # always empty: the node is the device; kept so every kind has it
    properties: Mapping[str, str] = field(default_factory=lambda: EMPTY, compare=False, hash=False)
    attributes: Mapping[str, str] = field(default_factory=lambda: EMPTY, compare=False, hash=False)

    @property
    def label(self) -> str:
        """``tty ttyAMA0``: subsystem and kernel name."""
        return f"{self.subsystem} {self.sys_name}"


@dataclass(frozen=True)
class DeclaredDevice:
    """A device udev cannot see (a car, a networked phone), declared in the rules with an ID the operator chose.

    ``sys_path`` is ``declared:<id>`` so it can key the device table beside real sysfs paths and
    never collides with one. ``values`` are the operator's per-device values (``address``), which
    the rule's templates read as placeholders; ``nodes`` are device nodes handed over with it.
    """

    kind: ClassVar[str] = "declared"

    device_id: str
    rule_index: int
    values: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    nodes: tuple[str, ...] = ()
    serial: str | None = None
    device_node: str | None = None  # the first of ``nodes``, when there are any
    driver: str | None = None
    children: tuple[Child, ...] = ()
    properties: Mapping[str, str] = field(default_factory=lambda: EMPTY, compare=False, hash=False)
    attributes: Mapping[str, str] = field(default_factory=lambda: EMPTY, compare=False, hash=False)

    @property
    def sys_path(self) -> str:
        return f"declared:{self.device_id}"

    @property
    def sys_name(self) -> str:
        return self.device_id

    @property
    def port_path(self) -> str:
        return f"declared:{self.device_id}"

    @property
    def label(self) -> str:
        return "declared"


# Any device the table holds. Code that needs one kind checks ``device.kind`` (or isinstance).
Device: TypeAlias = UsbDevice | NodeDevice | DeclaredDevice
