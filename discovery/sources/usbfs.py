"""Fallback device source through pyusb (libusb) when there is no udev: the only module importing usb.

It has no event stream: the watcher rescans on a timer. What it can know is less than udev's
view: no ID_* properties, no ID_PATH (``port_path`` is the kernel name such as ``1-2.3``), no
children (tty/hidraw nodes). Strings and drivers come from sysfs when it is mounted, which needs
no device I/O; otherwise strings are read from the device (a control transfer), and a device
that refuses (permissions) just has no strings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import usb.core
import usb.util

from discovery.model import Device, Interface, UsbDevice, frozen_mapping
from discovery.sources.base import SourceError

if TYPE_CHECKING:
    from discovery.sources.base import NodeSubsystems, SourceEvent

log = logging.getLogger(__name__)

SYSFS_USB_DEVICES = "/sys/bus/usb/devices"

# pyusb's speed codes (usb.util.SPEED_*) in Mbit/s, as the kernel's ``speed`` attribute says them.
_SPEED_MBPS = {1: 1.5, 2: 12.0, 3: 480.0, 4: 5000.0, 5: 10000.0}


class UsbfsUnavailableError(SourceError):
    """pyusb has no backend (libusb is not installed or cannot be loaded)."""


class UsbResetError(SourceError):
    """A USB reset could not be done: no such device (any more), or the kernel refused."""


def reset_device(busnum: int, devnum: int) -> None:
    """Reset the device at bus/devnum (USBDEVFS_RESET: it re-enumerates, same devnum, drivers rebind).

    Used before handing a board to a task, for devices stuck from the last job. Raises
    :class:`UsbResetError` when the device is gone or the reset fails (e.g. no permission).
    """
    try:
        dev = usb.core.find(bus=busnum, address=devnum)
    except usb.core.NoBackendError as exc:
        raise UsbResetError(f"cannot reset bus {busnum} device {devnum}: pyusb has no backend") from exc
    if dev is None:
        raise UsbResetError(f"cannot reset bus {busnum} device {devnum}: no such device")
    try:
        dev.reset()
    except usb.core.USBError as exc:
        raise UsbResetError(f"cannot reset bus {busnum} device {devnum}: {exc}") from exc


def _bcd_version(bcd: int) -> str:
    """0x0210 -> "2.10", as the kernel formats bcdUSB in the ``version`` attribute."""
    return f"{bcd >> 8:x}.{bcd & 0xFF:02x}"


class UsbfsSource:
    """USB devices as libusb sees them; ``sysfs`` is where to look for strings and drivers.

    Same shape as ``UdevSource`` for the watcher, but without events: ``fileno()`` is None
    (rescan on a timer) and ``drain()`` is always empty.
    """

    name = "usbfs"

    def __init__(self, sysfs: str = SYSFS_USB_DEVICES, read_strings: bool = True) -> None:
        self._sysfs = sysfs
        self._read_strings = read_strings

    def start(self) -> None:
        """Nothing to start: there is no monitor."""

    def fileno(self) -> None:
        """No event source: the watcher must rescan."""
        return None

    def drain(self) -> list[SourceEvent]:
        return []

    def close(self) -> None:
        """Nothing to release: libusb handles are opened per call."""

    def set_node_subsystems(self, wanted: NodeSubsystems) -> bool:
        """libusb sees USB devices only: nothing else is ever listed, whatever is asked."""
        return False

    def enumerate(self) -> list[Device]:
        """Every device libusb lists, sorted by sys_path; devices that vanish meanwhile are skipped."""
        try:
            found = list(usb.core.find(find_all=True))
        except usb.core.NoBackendError as exc:
            raise UsbfsUnavailableError(f"pyusb has no backend: {exc}") from exc
        result: list[Device] = []
        for dev in found:
            try:
                result.append(self._convert(dev))
            except usb.core.USBError as exc:
                log.debug("skipping unreadable device", extra={"bus": dev.bus, "address": dev.address,
                                                               "error": str(exc)})
        result.sort(key=lambda d: d.sys_path)
        return result

    def device_at(self, sys_path: str) -> Device | None:
        """The device with that sys_path, or None (a full rescan: there is no cheaper way here)."""
        return next((d for d in self.enumerate() if d.sys_path == sys_path), None)

    def devices_at(self, sys_paths: Sequence[str]) -> list[Device | None]:
        """The devices with those sys_paths (None where there is none), from one rescan."""
        found = {d.sys_path: d for d in self.enumerate()}
        return [found.get(path) for path in sys_paths]

    def _sysfs_text(self, sys_name: str, name: str) -> str | None:
        try:
            with open(os.path.join(self._sysfs, sys_name, name), encoding="utf-8", errors="replace") as f:
                return f.read().strip()
        except OSError:
            return None

    def _sysfs_driver(self, sys_name: str) -> str | None:
        try:
            return os.path.basename(os.readlink(os.path.join(self._sysfs, sys_name, "driver")))
        except OSError:
            return None

    def _string(self, dev: usb.core.Device, sys_name: str, attr: str, index: int) -> str | None:
        text = self._sysfs_text(sys_name, attr)
        if text is not None or not index or not self._read_strings:
            return text or None
        try:
            return usb.util.get_string(dev, index) or None
        except (usb.core.USBError, ValueError, NotImplementedError) as exc:
            # ValueError: "The device has no langid" is what a permission problem looks like
            log.debug("cannot read string descriptor", extra={"sys_name": sys_name, "error": str(exc)})
            return None

    def _convert(self, dev: usb.core.Device) -> UsbDevice:
        bus, address = int(dev.bus), int(dev.address)
        ports = tuple(dev.port_numbers or ())
        sys_name = f"{bus}-{'.'.join(str(p) for p in ports)}" if ports else f"usb{bus}"
        link = os.path.join(self._sysfs, sys_name)
        sys_path = os.path.realpath(link) if os.path.exists(link) else link

        interfaces = []
        config = next(iter(dev), None)  # cached descriptors; no device I/O
        if config is not None:
            for intf in config:
                if intf.bAlternateSetting != 0:
                    continue
                name = f"{sys_name}:{config.bConfigurationValue}.{intf.bInterfaceNumber}"
                interfaces.append(Interface(
                    number=intf.bInterfaceNumber,
                    interface_class=intf.bInterfaceClass,
                    interface_subclass=intf.bInterfaceSubClass,
                    interface_protocol=intf.bInterfaceProtocol,
                    driver=self._sysfs_driver(name),
                    sys_name=name,
                ))

        serial = self._string(dev, sys_name, "serial", dev.iSerialNumber)
        manufacturer = self._string(dev, sys_name, "manufacturer", dev.iManufacturer)
        product = self._string(dev, sys_name, "product", dev.iProduct)
        speed = _SPEED_MBPS.get(dev.speed) if dev.speed is not None else None
        version = _bcd_version(dev.bcdUSB)
        # the same names and formats as the sysfs attributes, so attribute rules match either source
        attrs = {
            "idVendor": f"{dev.idVendor:04x}", "idProduct": f"{dev.idProduct:04x}",
            "bcdDevice": f"{dev.bcdDevice:04x}", "bDeviceClass": f"{dev.bDeviceClass:02x}",
            "bDeviceSubClass": f"{dev.bDeviceSubClass:02x}", "bDeviceProtocol": f"{dev.bDeviceProtocol:02x}",
            "busnum": str(bus), "devnum": str(address), "version": version,
            "bNumInterfaces": str(len(interfaces)),
        }
        if speed is not None:
            attrs["speed"] = f"{speed:g}"
        for key, value in (("serial", serial), ("manufacturer", manufacturer), ("product", product)):
            if value is not None:
                attrs[key] = value
        return UsbDevice(
            sys_path=sys_path,
            sys_name=sys_name,
            vendor_id=dev.idVendor,
            product_id=dev.idProduct,
            busnum=bus,
            devnum=address,
            port_path=sys_name,
            serial=serial,
            manufacturer=manufacturer,
            product=product,
            device_class=dev.bDeviceClass,
            usb_version=version,
            speed_mbps=speed,
            device_node=f"/dev/bus/usb/{bus:03d}/{address:03d}",
            driver=self._sysfs_driver(sys_name),
            interfaces=tuple(sorted(interfaces, key=lambda i: i.number)),
            children=(),
            attributes=frozen_mapping(attrs),
        )
