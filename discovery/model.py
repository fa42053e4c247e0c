"""Typed, immutable records of what is attached: the one device model every layer reads.

pyudev objects are converted into these at once (in ``discovery.sources.udev``); nothing outside that
module ever sees a pyudev object. USB ids are ints here; hex formatting happens at the edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

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
