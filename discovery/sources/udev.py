"""The pyudev adapter: the only module that imports pyudev.

Everything pyudev hands us is converted at once into the frozen records of ``discovery.model``;
no pyudev object leaves this module. :class:`UdevSource` enumerates USB devices and owns the
udev Monitor whose events the watcher treats as doorbells (re-read, diff, publish).

Lifecycle rules that matter on real hardware as much as under umockdev: nothing is created at
import; :meth:`UdevSource.start` creates the Monitor and binds it (``Monitor.start()``) before it
returns, so no event sent after ``start()`` is lost; children (tty, hidraw, net ...) may appear
after their usb_device's ``add``, so the monitor passes their subsystems too and the watcher
re-reads the parent when they come.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import select
import socket
from dataclasses import dataclass
from typing import Iterable, Iterator

import pyudev

from discovery.model import Child, Interface, UsbDevice, frozen_mapping
from discovery.sources.base import EventsLostError, SourceError

log = logging.getLogger(__name__)

# Subsystems whose events the monitor passes: USB devices and interfaces, plus the class devices
# that drivers create below interfaces (a tty showing up is when a serial adapter becomes usable).
DEFAULT_SUBSYSTEMS: tuple[str, ...] = (
    "usb", "tty", "hidraw", "net", "sound", "video4linux", "block", "input", "usbmisc", "scsi_generic",
)

# sysfs attributes copied into UsbDevice.attributes (rules and templates read them). A fixed
# list, the text attributes of a usb_device: reading every file is slow and some are binary
# (descriptors). Keep it a superset of discovery.rules.warnings.SYSFS_ATTRIBUTES (a test checks).
DEVICE_ATTRIBUTES: tuple[str, ...] = (
    "idVendor", "idProduct", "bcdDevice", "manufacturer", "product", "serial", "busnum", "devnum",
    "devpath", "speed", "version", "bDeviceClass", "bDeviceSubClass", "bDeviceProtocol",
    "bNumInterfaces", "bConfigurationValue", "bNumConfigurations", "bMaxPower", "bMaxPacketSize0",
    "bmAttributes", "maxchild", "removable", "authorized", "avoid_reset_quirk", "configuration",
    "ltm_capable", "quirks", "rx_lanes", "tx_lanes", "urbnum",
)

# Kernel names of USB devices: "usb3" (root hub) or "3-1.4.2"; interfaces have a ":" in them.
_USB_DEVICE_NAME = re.compile(r"^(usb\d+|\d+-\d+(\.\d+)*)$")


# The monitor socket's receive buffer: the kernel's default (about 200 KiB) holds a few hundred
# events, and a hub of phones re-enumerating sends more. udevadm monitor asks for 128 MiB; this is
# plenty for a device plugin, and it is only memory the kernel uses while events wait.
RECEIVE_BUFFER_BYTES = 16 * 1024 * 1024


class UdevReadError(SourceError):
    """A device could not be read (usually: it went away while we read it)."""


class MonitorError(SourceError):
    """The udev monitor's socket reported an error other than an overflow."""


@dataclass(frozen=True)
class UdevEvent:
    """One udev event, reduced to what the watcher needs to decide what to re-read.

    ``usb_sys_path`` is the usb_device the event belongs to (the device itself, or the device
    above an interface/tty/hidraw), found from the path alone so it works for ``remove`` too.
    ``device_node`` comes from the event itself, so a ``remove`` still names the node that went.
    """

    action: str
    sys_path: str
    subsystem: str
    devtype: str | None
    seqnum: int
    usb_sys_path: str | None = None
    device_node: str | None = None


def udev_available() -> bool:
    """Is there a udev to talk to? True when udevd runs (/run/udev exists) or in a umockdev world.

    umockdev does not redirect /run, so a test world (``UMOCKDEV_DIR`` set) has no /run/udev of
    its own; it still has everything pyudev needs (sysfs, monitor sockets), so it counts.
    """
    return bool(os.environ.get("UMOCKDEV_DIR")) or os.path.isdir("/run/udev")


def usb_device_path_of(sys_path: str) -> str | None:
    """The sys_path of the USB device that ``sys_path`` is (or is below), from the path alone."""
    parts = sys_path.rstrip("/").split("/")
    for end in range(len(parts), 0, -1):
        if _USB_DEVICE_NAME.match(parts[end - 1]):
            return "/".join(parts[:end])
    return None


def _attr(device: pyudev.Device, name: str) -> str | None:
    """A sysfs attribute as text without the trailing newline, or None when absent."""
    raw = device.attributes.get(name)
    if raw is None:
        return None
    return raw.decode("utf-8", errors="replace").strip()


def _int(text: str | None, base: int) -> int | None:
    if text is None or text == "":
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def _speed(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _is_under(path: str, top: str) -> bool:
    return path.startswith(top + "/")


def usb_device_from_udev(device: pyudev.Device,
                         descendants: Iterable[pyudev.Device] | None = None) -> UsbDevice:
    """Convert a udev ``usb``/``usb_device`` into a :class:`UsbDevice` with interfaces and children.

    ``descendants`` (everything below the device, as ``list_devices().match_parent()`` gives it)
    may be passed in by a caller that has them; otherwise they are enumerated here. Children are
    the descendants with a device node, plus network interfaces; anything below another USB
    device (behind a hub) belongs to that device and is left out. Raises :class:`UdevReadError`
    when the device is not a readable usb_device.
    """
    sys_path = device.sys_path
    props = dict(device.properties)
    attrs = {}
    for name in DEVICE_ATTRIBUTES:
        value = _attr(device, name)
        if value is not None:
            attrs[name] = value

    product = props.get("PRODUCT", "").split("/")  # kernel's "vid/pid/bcd" in hex, no padding
    vendor_id = _int(attrs.get("idVendor"), 16) or _int(props.get("ID_VENDOR_ID"), 16)
    product_id = _int(attrs.get("idProduct"), 16) or _int(props.get("ID_MODEL_ID"), 16)
    if vendor_id is None and len(product) == 3:
        vendor_id = _int(product[0], 16)
    if product_id is None and len(product) == 3:
        product_id = _int(product[1], 16)
    busnum = _int(attrs.get("busnum"), 10) or _int(props.get("BUSNUM"), 10)
    devnum = _int(attrs.get("devnum"), 10) or _int(props.get("DEVNUM"), 10)
    if vendor_id is None or product_id is None or busnum is None or devnum is None:
        raise UdevReadError(f"{sys_path}: not a readable usb_device (gone, or no idVendor/busnum)")

    if descendants is None:
        descendants = device.context.list_devices().match_parent(device)
    below = [d for d in descendants if d.sys_path != sys_path]
    # Devices behind a hub port are separate UsbDevices; their subtrees are not ours.
    other_usb = [d.sys_path for d in below if d.subsystem == "usb" and d.device_type == "usb_device"]

    def ours(path: str) -> bool:
        return not any(path == top or _is_under(path, top) for top in other_usb)

    interfaces: list[Interface] = []
    iface_paths: list[tuple[str, int]] = []
    drivers: dict[str, str] = {}
    for d in below:
        path = d.sys_path
        if not ours(path):
            continue
        driver = d.driver
        if driver:
            drivers[path] = driver
        if d.subsystem == "usb" and d.device_type == "usb_interface":
            number = _int(_attr(d, "bInterfaceNumber"), 16)
            if number is None:
                continue  # vanished while we read it
            interfaces.append(Interface(
                number=number,
                interface_class=_int(_attr(d, "bInterfaceClass"), 16) or 0,
                interface_subclass=_int(_attr(d, "bInterfaceSubClass"), 16) or 0,
                interface_protocol=_int(_attr(d, "bInterfaceProtocol"), 16) or 0,
                driver=driver,
                sys_name=d.sys_name,
            ))
            iface_paths.append((path, number))

    children: list[Child] = []
    for d in below:
        path = d.sys_path
        if not ours(path) or d.subsystem == "usb":
            continue
        node = d.device_node
        if node is None and d.subsystem != "net":
            continue
        try:
            child_props = dict(d.properties)
        except ValueError:  # a property that is not UTF-8 (an operator's ENV{} rule, say): skip the child
            log.warning("skipping a child with undecodable udev properties", extra={"sys_path": path})
            continue
        children.append(Child(
            subsystem=d.subsystem,
            sys_path=path,
            sys_name=d.sys_name,
            device_node=node,
            interface_number=next((n for p, n in iface_paths if _is_under(path, p)), None),
            driver=_nearest_driver(path, sys_path, drivers),
            devlinks=tuple(child_props.get("DEVLINKS", "").split()),
            properties=frozen_mapping(child_props),
        ))

    version = attrs.get("version")
    return UsbDevice(
        sys_path=sys_path,
        sys_name=device.sys_name,
        vendor_id=vendor_id,
        product_id=product_id,
        busnum=busnum,
        devnum=devnum,
        port_path=props.get("ID_PATH") or device.sys_name,
        serial=attrs.get("serial") or props.get("ID_SERIAL_SHORT") or None,
        manufacturer=attrs.get("manufacturer") or None,
        product=attrs.get("product") or None,
        device_class=_int(attrs.get("bDeviceClass"), 16) or 0,
        usb_version=version or None,
        speed_mbps=_speed(attrs.get("speed")),
        device_node=device.device_node,
        driver=device.driver,
        interfaces=tuple(sorted(interfaces, key=lambda i: i.number)),
        children=tuple(sorted(children, key=lambda c: c.sys_path)),
        properties=frozen_mapping(props),
        attributes=frozen_mapping(attrs),
    )


def _raise_socket_error(fd: int) -> None:
    """Read (and so clear) the monitor socket's pending error; raise it as what it means.

    ENOBUFS: the kernel dropped events because the queue was full (EventsLostError). Any other
    error: MonitorError. Nothing pending: return (the caller decides).
    """
    sock = socket.socket(fileno=os.dup(fd))
    try:
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    finally:
        sock.close()
    if code == errno.ENOBUFS:
        raise EventsLostError("udev monitor overflowed (ENOBUFS): the kernel dropped events")
    if code:
        raise MonitorError(f"udev monitor socket error: {os.strerror(code)}")


def _nearest_driver(path: str, top: str, drivers: dict[str, str]) -> str | None:
    """The child's own driver, else the closest one above it (ttyUSB0 -> ftdi_sio, ttyACM0 -> cdc_acm)."""
    while path != top and len(path) > len(top):
        if path in drivers:
            return drivers[path]
        path = path.rsplit("/", 1)[0]
    return None


class UdevSource:
    """USB devices from udev: enumerate them, read one, and receive udev events.

    ``subsystems``: which events the monitor passes (filtered in the kernel; ``None`` passes all).
    """

    name = "udev"

    def __init__(self, subsystems: Iterable[str] | None = DEFAULT_SUBSYSTEMS) -> None:
        self._subsystems = tuple(subsystems) if subsystems is not None else None
        self._context: pyudev.Context | None = None
        self._monitor: pyudev.Monitor | None = None

    def start(self) -> None:
        """Create the udev context and monitor and bind it; events from here on are kept."""
        if self._monitor is not None:
            return
        self._context = pyudev.Context()
        monitor = pyudev.Monitor.from_netlink(self._context, source="udev")
        for subsystem in self._subsystems or ():
            monitor.filter_by(subsystem)
        try:
            monitor.set_receive_buffer_size(RECEIVE_BUFFER_BYTES)  # needs CAP_NET_ADMIN (root)
        except OSError as exc:
            log.debug("udev monitor keeps the default receive buffer", extra={"error": exc.strerror or str(exc)})
        monitor.start()  # binds now: events sent before this would be lost
        self._monitor = monitor

    @property
    def _ctx(self) -> pyudev.Context:
        if self._context is None:
            # enumerate() without start(): a context alone is harmless (no socket)
            self._context = pyudev.Context()
        return self._context

    def enumerate(self) -> list[UsbDevice]:
        """Every USB device now attached, sorted by sys_path; devices vanishing meanwhile are skipped."""
        ctx = self._ctx
        result = []
        for device in ctx.list_devices(subsystem="usb", DEVTYPE="usb_device"):
            try:
                result.append(usb_device_from_udev(device))
            except ValueError as exc:  # undecodable (non-UTF-8) udev data: this device, not the world, is lost
                log.warning("skipping a device with unreadable udev data", extra={"sys_path": device.sys_path,
                                                                                   "error": str(exc)})
            except (UdevReadError, pyudev.DeviceNotFoundError, OSError) as exc:
                log.debug("skipping device that went away during enumeration", extra={"sys_path": device.sys_path,
                                                                                       "error": str(exc)})
        result.sort(key=lambda d: d.sys_path)
        return result

    def device_at(self, sys_path: str) -> UsbDevice | None:
        """The usb_device at ``sys_path``, or None if it is not there (any more) or not a usb_device."""
        try:
            device = pyudev.Devices.from_sys_path(self._ctx, sys_path)
        except pyudev.DeviceNotFoundError:
            return None
        if device.subsystem != "usb" or device.device_type != "usb_device":
            return None
        try:
            return usb_device_from_udev(device)
        except (UdevReadError, pyudev.DeviceNotFoundError, OSError, ValueError):
            # ValueError: undecodable (non-UTF-8) udev data; the device is left out, not the world
            return None

    def fileno(self) -> int:
        """The monitor's file descriptor, readable when events are pending (for select/poll/asyncio)."""
        if self._monitor is None:
            raise RuntimeError("UdevSource.start() first")
        return self._monitor.fileno()

    def drain(self) -> list[UdevEvent]:
        """Every event pending now, without blocking (empty list if none).

        Raises :class:`EventsLostError` when the kernel dropped events because the monitor's queue
        was full (ENOBUFS): the caller must list every device again. The error is cleared first, so
        the next call reads the events that came after it.
        """
        monitor = self._monitor
        if monitor is None:
            raise RuntimeError("UdevSource.start() first")
        return list(self._pending(monitor))

    @staticmethod
    def _pending(monitor: pyudev.Monitor) -> Iterator[UdevEvent]:
        poller = select.poll()
        poller.register(monitor.fileno(), select.POLLIN)
        # poll(0) returns None both for "nothing" and for a message libudev dropped (filter,
        # bad sender), so keep reading while the socket still has data.
        while True:
            revents = 0
            for _, flags in poller.poll(0):
                revents |= flags
            if revents & select.POLLERR:
                # An overflow is a pending socket error: poll says POLLERR (pyudev then raises a bare
                # OSError on every poll, for ever) until the error is read and so cleared.
                _raise_socket_error(monitor.fileno())
                raise MonitorError("udev monitor socket reports an error, but none is pending")
            if not revents & select.POLLIN:
                return
            try:
                device = monitor.poll(timeout=0)
                if device is None:
                    continue
                sys_path = device.sys_path
                node = device.device_node
            except ValueError:  # non-UTF-8 in the event: drop it (the device is re-read on its next event)
                log.warning("dropped a udev event with undecodable data")
                continue
            except OSError:  # the overflow came between our poll and libudev's read
                _raise_socket_error(monitor.fileno())
                raise
            yield UdevEvent(
                action=device.action or "",
                sys_path=sys_path,
                subsystem=device.subsystem or "",
                devtype=device.device_type,
                seqnum=device.sequence_number,
                usb_sys_path=usb_device_path_of(sys_path),
                device_node=node,
            )

    def close(self) -> None:
        """Drop the monitor (its socket closes with the last reference) and the context."""
        self._monitor = None
        self._context = None

    def __enter__(self) -> UdevSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
