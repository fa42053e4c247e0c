"""The pyudev adapter: the only module that imports pyudev.

Everything pyudev hands us is converted at once into the frozen records of ``discovery.model``;
no pyudev object leaves this module. :class:`UdevSource` enumerates USB devices and owns the
udev Monitor whose events the watcher treats as doorbells (re-read, diff, publish). Asked to
(``node_subsystems``), it also lists devices with a node outside USB (``discovery.sources.nodedevices``);
by default it lists USB devices only, at exactly the cost it always had.

Devices are read the way libudev reads them, but with each file read once: their properties from
the uevent file and udev's database (``udevdb``), ids and configuration from the binary
``descriptors``, children from sysfs's node and network indexes in one pass for all devices
(``enumerate``) or from the device's own subtree (``device_at``, what one event costs). The
Monitor is pyudev's (socket, kernel filter, bind); its messages are read by
:func:`read_monitor_messages`, a few lines instead of a pyudev Device per event.

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
import socket
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import pyudev

from discovery.model import Child, Device, Interface, UsbDevice, frozen_mapping
from discovery.sources.base import (
    ALL_NODE_SUBSYSTEMS,
    EventsLostError,
    NodeSubsystems,
    SourceError,
    to_node_subsystems,
    wants_subsystem,
)
from discovery.sources.descriptors import ConfigDescriptor, parse_descriptors, sysfs_text
from discovery.sources.nodedevices import ROOT_HUB, inside_usb, node_device_paths, read_node_device
from discovery.sources.udevdb import UnreadableDeviceError, device_properties, link_name, read_bytes, sys_name_of

log = logging.getLogger(__name__)

# Subsystems whose events the monitor passes: USB devices and interfaces, plus the class devices
# that drivers create below interfaces (a tty showing up is when a serial adapter becomes usable).
DEFAULT_SUBSYSTEMS: tuple[str, ...] = (
    "usb", "tty", "hidraw", "net", "sound", "video4linux", "block", "input", "usbmisc", "scsi_generic",
)

# sysfs attributes UsbDevice.attributes offers (rules' templates read them). A fixed list, the text
# attributes of a usb_device; most come from one read of the binary `descriptors` and the uevent,
# the rest are read only when asked for (SysfsAttributes). Keep it a superset of
# discovery.rules.warnings.SYSFS_ATTRIBUTES (a test checks).
DEVICE_ATTRIBUTES: tuple[str, ...] = (
    "idVendor", "idProduct", "bcdDevice", "manufacturer", "product", "serial", "busnum", "devnum",
    "devpath", "speed", "version", "bDeviceClass", "bDeviceSubClass", "bDeviceProtocol",
    "bNumInterfaces", "bConfigurationValue", "bNumConfigurations", "bMaxPower", "bMaxPacketSize0",
    "bmAttributes", "maxchild", "removable", "authorized", "avoid_reset_quirk", "configuration",
    "ltm_capable", "quirks", "rx_lanes", "tx_lanes", "urbnum",
)
_ATTRIBUTE_NAMES = frozenset(DEVICE_ATTRIBUTES)

# Kernel names of USB devices: "usb3" (root hub) or "3-1.4.2"; interfaces have a ":" in them.
_USB_DEVICE_NAME = re.compile(r"^(usb\d+|\d+-\d+(\.\d+)*)$")
# Interfaces: "<bus>-<ports>:<bConfigurationValue>.<bInterfaceNumber>", decimal ("1-0:1.0" on a root hub).
_INTERFACE_NAME = re.compile(r"^(\d+)-(\d+(?:\.\d+)*):(\d+)\.(\d+)$")

# Where the kernel lists things (read directly: one directory listing instead of a libudev device per entry).
BUS_DEVICES = "/sys/bus/usb/devices"
CHAR_INDEX = "/sys/dev/char"
BLOCK_INDEX = "/sys/dev/block"
NET_INDEX = "/sys/class/net"
BATCH_MIN = 4  # devices_at(): fewer paths than this are always walked one by one


# The monitor socket's receive buffer: the kernel's default (about 200 KiB) holds a few hundred
# events, and a hub of phones re-enumerating sends more. udevadm monitor asks for 128 MiB; this is
# plenty for a device plugin, and it is only memory the kernel uses while events wait.
RECEIVE_BUFFER_BYTES = 16 * 1024 * 1024

# What udevd sends a monitor (libudev's format): "libudev\0", magic, header size, properties offset
# and length, then filter hashes; the magic in network byte order, the rest in host order.
_MONITOR_HEADER = struct.Struct("=8sI3I4I")
_MONITOR_PREFIX = b"libudev\0"
_MONITOR_MAGIC = socket.htonl(0xFEEDCAFE)
_MAX_MESSAGE_BYTES = 8192  # libudev reads no more than this
_CREDENTIALS = struct.Struct("iII")  # struct ucred: pid, uid, gid
_CREDENTIALS_SPACE = socket.CMSG_SPACE(_CREDENTIALS.size)


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
    ``node_sys_path`` is the event's own device when it is a non-USB device with a node of a
    subsystem the source lists (see ``UdevSource.set_node_subsystems``).
    """

    action: str
    sys_path: str
    subsystem: str
    devtype: str | None
    seqnum: int
    usb_sys_path: str | None = None
    device_node: str | None = None
    node_sys_path: str | None = None

    @property
    def device_sys_path(self) -> str | None:
        """The listed device this event is about: its usb_device, or the non-USB node device itself."""
        return self.usb_sys_path or self.node_sys_path


def udev_available() -> bool:
    """Is there a udev to talk to? True when udevd runs (/run/udev exists) or in a umockdev world.

    umockdev does not redirect /run, so a test world (``UMOCKDEV_DIR`` set) has no /run/udev of
    its own; it still has everything pyudev needs (sysfs, monitor sockets), so it counts.
    """
    return bool(os.environ.get("UMOCKDEV_DIR")) or os.path.isdir("/run/udev")


def usb_device_path_of(sys_path: str) -> str | None:
    """The sys_path of the USB device that ``sys_path`` is (or is below), from the path alone.

    Only below a root hub (``usbN``): an I2C client such as ``1-0050`` has a USB-like name too.
    """
    parts = sys_path.rstrip("/").split("/")
    root = next((i for i, part in enumerate(parts) if ROOT_HUB.match(part)), None)
    if root is None:
        return None
    for end in range(len(parts), root, -1):
        if _USB_DEVICE_NAME.match(parts[end - 1]):
            return "/".join(parts[:end])
    return None


def _read_text(path: str) -> str | None:
    """A sysfs text attribute without surrounding blanks (the kernel pads some: `` 2.00``), or None."""
    raw = read_bytes(path)
    return None if raw is None else raw.decode("utf-8", errors="replace").strip()


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


class SysfsAttributes(Mapping[str, str]):
    """The DEVICE_ATTRIBUTES of one usb_device: the values already known, and the rest read on first use.

    What the descriptors and the uevent give is filled in when the device is read; an attribute
    only a rule's template asks for (``{urbnum}``, ``{removable}``) is read from sysfs when it is
    first looked up, then kept. Absent attributes are absent, as with the files; names outside
    DEVICE_ATTRIBUTES are never read. Read-only from the outside, like the other records' mappings.
    """

    __slots__ = ("_sys_path", "_values")

    def __init__(self, sys_path: str, known: Mapping[str, str | None]) -> None:
        self._sys_path = sys_path
        self._values: dict[str, str | None] = dict(known)

    def __getitem__(self, name: str) -> str:
        try:
            value = self._values[name]
        except KeyError:
            if name not in _ATTRIBUTE_NAMES:
                raise
            value = self._values[name] = _read_text(f"{self._sys_path}/{name}")
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (name for name in DEVICE_ATTRIBUTES if name in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:  # what is known, without reading anything
        known = {k: v for k, v in self._values.items() if v is not None}
        return f"SysfsAttributes({self._sys_path!r}, {known!r})"


@dataclass(frozen=True)
class Below:
    """What sits below one usb_device, found by its caller: its interfaces' kernel names and candidate children.

    ``children`` are the sys_paths of the devices below it with a device node, and of its network
    interfaces (nothing below another USB device behind a hub); each is read only if it still is one.
    """

    interfaces: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    without_driver: frozenset[str] = frozenset()  # directories seen to have no driver link: no need to ask


def interface_owner(name: str) -> str | None:
    """The kernel name of the usb_device an interface belongs to: ``1-2.3:1.0`` -> ``1-2.3``, ``1-0:1.0`` -> ``usb1``."""
    match = _INTERFACE_NAME.match(name)
    if match is None:
        return None
    bus, ports = match.group(1), match.group(2)
    return f"usb{bus}" if ports == "0" else f"{bus}-{ports}"


def below_by_walking(sys_path: str) -> Below:
    """Interfaces and children of one usb_device, from its own sysfs subtree (what one hotplug event reads).

    A directory with a ``dev`` file is a device with a node; one in a ``net`` directory is a
    network interface. Symlinks are not followed, and the other USB devices a hub has (its
    subdirectories named like ``1-5.1``) are not entered.
    """
    interfaces: list[str] = []
    children: list[str] = []
    without_driver: set[str] = set()
    stack = [sys_path]
    while stack:
        path = stack.pop()
        try:
            with os.scandir(path) as listing:
                entries = list(listing)
        except OSError:
            continue  # gone while we looked
        names = {entry.name for entry in entries}
        if "driver" not in names:
            without_driver.add(path)
        if path != sys_path and ("dev" in names or path.rsplit("/", 2)[-2] == "net"):
            children.append(path)
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if path == sys_path:
                if _USB_DEVICE_NAME.match(entry.name):
                    continue  # a device behind this hub: its subtree is its own
                if _INTERFACE_NAME.match(entry.name):
                    interfaces.append(entry.name)
            stack.append(entry.path)
    return Below(tuple(sorted(interfaces)), tuple(sorted(children)), frozenset(without_driver))


def below_by_index(usb_sys_paths: Iterable[str]) -> dict[str, list[str]]:
    """Candidate children of many usb_devices at once: one pass over sysfs's indexes of nodes and network interfaces.

    ``/sys/dev/char``, ``/sys/dev/block`` and ``/sys/class/net`` link to every device with a
    node and every network interface; each one goes to its nearest usb_device above it, by path.
    Major 189 is the usb_device nodes themselves (USB_DEVICE_MAJOR), so those links are not read.
    """
    owners = set(usb_sys_paths)
    grouped: dict[str, list[str]] = {}
    for directory, skip in ((CHAR_INDEX, "189:"), (BLOCK_INDEX, None), (NET_INDEX, None)):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if skip is not None and name.startswith(skip):
                continue
            try:
                target = os.readlink(f"{directory}/{name}")
            except OSError:
                continue
            path = os.path.normpath(os.path.join(directory, target))
            owner = path
            while len(owner) > len("/sys/devices"):
                owner = owner.rsplit("/", 1)[0]
                if owner in owners:
                    grouped.setdefault(owner, []).append(path)
                    break
    return grouped


def read_usb_device(sys_path: str, below: Below | None = None, subsystem: str | None = None) -> UsbDevice:
    """Read the usb_device at ``sys_path`` into a :class:`UsbDevice` with interfaces and children.

    ``below`` (interface names and candidate children) may be passed in by a caller that found them
    for many devices at once; otherwise the device's own subtree is walked. Its properties come from
    one read of its uevent file and one of udev's database (``udevdb``), the ids, class, version and
    configuration from one read of the binary ``descriptors`` file where it is complete, and from the
    attribute files otherwise. Children are the devices below with a device node, plus network
    interfaces. Raises :class:`UdevReadError` when there is no readable usb_device at ``sys_path``.
    """
    try:
        props = device_properties(sys_path, subsystem)
    except UnreadableDeviceError as exc:
        raise UdevReadError(str(exc)) from exc
    if props.get("DEVTYPE") != "usb_device" or props.get("SUBSYSTEM") != "usb":
        raise UdevReadError(f"{sys_path}: not a usb_device (DEVTYPE {props.get('DEVTYPE')!r})")
    sys_name = sys_name_of(sys_path)
    below = below if below is not None else below_by_walking(sys_path)
    parsed = parse_descriptors(read_bytes(f"{sys_path}/descriptors"))
    known: dict[str, str | None] = {}
    config_value = next((_config_of_interface(n) for n in below.interfaces), None)
    config = parsed.config(config_value) if parsed is not None and config_value is not None else None
    if parsed is not None:
        speed_text = known["speed"] = _read_text(f"{sys_path}/speed")
        known.update(sysfs_text(parsed, config, _speed(speed_text)))
        # the kernel shows a string attribute only for a string the device has (index 0: none)
        for name, index in (("manufacturer", parsed.manufacturer_index), ("product", parsed.product_index),
                            ("serial", parsed.serial_index)):
            known[name] = _read_text(f"{sys_path}/{name}") if index else None
    for name, prop in (("busnum", "BUSNUM"), ("devnum", "DEVNUM")):
        number = _int(props.get(prop), 10)
        if number is not None:
            known[name] = str(number)
    attrs = SysfsAttributes(sys_path, known)

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

    interfaces: list[Interface] = []
    drivers: dict[str, str | None] = dict.fromkeys(below.without_driver)  # sys_path -> driver, as far as known
    iface_paths: list[tuple[str, int]] = []
    for name in below.interfaces:
        interface = _interface(f"{sys_path}/{name}", name, config, drivers)
        if interface is None:
            continue  # vanished while we read it
        drivers[f"{sys_path}/{name}"] = interface.driver
        interfaces.append(interface)
        iface_paths.append((f"{sys_path}/{name}", interface.number))

    children: list[Child] = []
    for path in sorted(below.children):
        child = _child(path, sys_path, drivers, iface_paths)
        if child is not None:
            children.append(child)

    version = attrs.get("version")
    return UsbDevice(
        sys_path=sys_path,
        sys_name=sys_name,
        vendor_id=vendor_id,
        product_id=product_id,
        busnum=busnum,
        devnum=devnum,
        port_path=props.get("ID_PATH") or sys_name,
        serial=attrs.get("serial") or props.get("ID_SERIAL_SHORT") or None,
        manufacturer=attrs.get("manufacturer") or None,
        product=attrs.get("product") or None,
        device_class=_int(attrs.get("bDeviceClass"), 16) or 0,
        usb_version=version or None,
        speed_mbps=_speed(attrs.get("speed")),
        device_node=props.get("DEVNAME"),
        driver=drivers[sys_path] if sys_path in drivers else _driver_of(sys_path),
        interfaces=tuple(sorted(interfaces, key=lambda i: i.number)),
        children=tuple(sorted(children, key=lambda c: c.sys_path)),
        properties=frozen_mapping(props),
        attributes=attrs,
    )


def _config_of_interface(name: str) -> int | None:
    """The active configuration's bConfigurationValue, as the kernel puts it into interface names (``1-2:1.0``)."""
    match = _INTERFACE_NAME.match(name)
    return int(match.group(3)) if match else None


def _interface(path: str, name: str, config: ConfigDescriptor | None, drivers: dict[str, str | None]) -> Interface | None:
    """One interface: its number from its name, its class from the descriptors (else its attribute files)."""
    match = _INTERFACE_NAME.match(name)
    number = int(match.group(4)) if match else _int(_read_text(f"{path}/bInterfaceNumber"), 16)
    if number is None:
        return None
    setting = config.interface(number) if config is not None else None
    if setting is not None:
        classes = [setting.interface_class, setting.interface_subclass, setting.interface_protocol]
    else:
        classes = [_int(_read_text(f"{path}/{attr}"), 16) or 0
                   for attr in ("bInterfaceClass", "bInterfaceSubClass", "bInterfaceProtocol")]
    driver = drivers[path] if path in drivers else _driver_of(path)
    return Interface(number=number, interface_class=classes[0], interface_subclass=classes[1],
                     interface_protocol=classes[2], driver=driver, sys_name=name)


def _driver_of(path: str) -> str | None:
    """The driver bound to the device at ``path`` (the name its ``driver`` link points to), or None."""
    return link_name(f"{path}/driver")


def _child(path: str, top: str, drivers: dict[str, str | None], iface_paths: list[tuple[str, int]]) -> Child | None:
    """The child at ``path`` if it is one (a node, or a network interface, not a USB device), else None."""
    try:
        child_props = device_properties(path)
    except UnreadableDeviceError:
        return None  # gone while we read
    except ValueError:  # a property that is not UTF-8 (an operator's ENV{} rule, say): skip the child
        log.warning("skipping a child with undecodable udev properties", extra={"sys_path": path})
        return None
    subsystem = child_props.get("SUBSYSTEM")
    if subsystem is None or subsystem == "usb":
        return None
    node = child_props.get("DEVNAME")
    if node is None and subsystem != "net":
        return None
    return Child(
        subsystem=subsystem,
        sys_path=path,
        sys_name=sys_name_of(path),
        device_node=node,
        interface_number=next((n for p, n in iface_paths if _is_under(path, p)), None),
        driver=_nearest_driver(path, top, drivers),
        devlinks=tuple(child_props.get("DEVLINKS", "").split()),
        properties=frozen_mapping(child_props),
    )


def read_monitor_messages(fd: int) -> list[dict[str, str]]:
    """The properties of every udevd message waiting on the monitor socket ``fd``, read without blocking.

    Read and checked as libudev reads a monitor (through it, each would cost a pyudev Device, a libudev
    device and a dozen ctypes calls; a storm brings hundreds): a message counts only when root sent it
    (its credentials), to the udev multicast group on a netlink socket (a unicast one is anybody's),
    whole, with udevd's header, an ACTION and a DEVPATH. One with bytes that are not UTF-8 is dropped
    with a warning (its device is read again on its next event). ENOBUFS (the queue overflowed;
    reading clears it) raises EventsLostError, any other socket error MonitorError.
    """
    trusted_uids = {0, os.geteuid()}  # root, as libudev demands, or the user a fake world runs as
    sock = socket.socket(fileno=fd)  # borrowed: detached again below, the monitor keeps the descriptor
    messages: list[dict[str, str]] = []
    try:
        while True:
            try:
                data, ancillary, flags, address = sock.recvmsg(_MAX_MESSAGE_BYTES, _CREDENTIALS_SPACE,
                                                               socket.MSG_DONTWAIT)
            except BlockingIOError:
                return messages
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    raise EventsLostError("udev monitor overflowed (ENOBUFS): the kernel dropped events") from exc
                raise MonitorError(f"udev monitor socket error: {exc.strerror or exc}") from exc
            sender_uid = next((_CREDENTIALS.unpack(cdata[:_CREDENTIALS.size])[1] for level, kind, cdata in ancillary
                               if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
                               and len(cdata) >= _CREDENTIALS.size), None)
            unicast = isinstance(address, tuple) and address[1] == 0  # netlink: (pid, groups)
            if sender_uid not in trusted_uids or unicast or flags & socket.MSG_TRUNC:
                continue
            try:
                properties = properties_of_message(data)
            except UnicodeDecodeError:
                log.warning("dropped a udev event with undecodable data")
                continue
            if properties is not None:
                messages.append(properties)
    finally:
        sock.detach()


def properties_of_message(data: bytes) -> dict[str, str] | None:
    """The properties in one udevd message (header, then NUL-separated KEY=value), or None if it is not one."""
    if len(data) < _MONITOR_HEADER.size or not data.startswith(_MONITOR_PREFIX):
        return None
    _, magic, _, offset, *_ = _MONITOR_HEADER.unpack_from(data)
    if magic != _MONITOR_MAGIC or offset < _MONITOR_HEADER.size or offset > len(data):
        return None
    properties = {}
    for item in data[offset:].split(b"\0"):  # to the end of the message, as libudev reads it
        key, sep, value = item.partition(b"=")
        if sep:
            properties[key.decode()] = value.decode()
    return properties if properties.get("DEVPATH") and "ACTION" in properties else None


def _nearest_driver(path: str, top: str, drivers: dict[str, str | None]) -> str | None:
    """The child's own driver, else the closest one above it (ttyUSB0 -> ftdi_sio, ttyACM0 -> cdc_acm).

    ``drivers`` holds what is known already (the interfaces'); other directories on the way up
    are asked once and remembered there.
    """
    while path != top and len(path) > len(top):
        if path not in drivers:
            drivers[path] = _driver_of(path)
        driver = drivers[path]
        if driver:
            return driver
        path = path.rsplit("/", 1)[0]
    return None


class UdevSource:
    """USB devices from udev, and on request other devices with a node: enumerate, read one, receive events.

    ``subsystems``: which events the monitor passes for USB devices (filtered in the kernel;
    ``None`` passes all). ``node_subsystems``: which non-USB devices with a node to list too
    (None: none, a collection of subsystem names, or ``"all"``); :meth:`set_node_subsystems`
    changes it later, and the monitor then passes those subsystems' events as well.
    """

    name = "udev"

    def __init__(self, subsystems: Iterable[str] | None = DEFAULT_SUBSYSTEMS,
                 node_subsystems: Iterable[str] | str | None = None) -> None:
        self._subsystems = tuple(subsystems) if subsystems is not None else None
        self._node_subsystems: NodeSubsystems = to_node_subsystems(node_subsystems)
        self._context: pyudev.Context | None = None
        self._monitor: pyudev.Monitor | None = None
        self._fd: int | None = None  # the monitor's, asked once: pyudev asks libudev through ctypes each time

    @property
    def node_subsystems(self) -> NodeSubsystems:
        return self._node_subsystems

    def set_node_subsystems(self, wanted: NodeSubsystems) -> bool:
        """List non-USB devices of these subsystems from now on (None: none; ``"all"``: every one).

        Returns True when that changed: the caller should enumerate again. A started monitor's
        filter changes at once, so events of the new subsystems are received from here on.
        """
        wanted = to_node_subsystems(wanted)
        if wanted == self._node_subsystems:
            return False
        self._node_subsystems = wanted
        if self._monitor is not None:
            self._monitor.remove_filter()
            self._install_filter(self._monitor)
        return True

    def _filter_subsystems(self) -> tuple[str, ...] | None:
        """What the monitor passes: the USB subsystems plus the listed node subsystems (None: everything)."""
        nodes = self._node_subsystems
        if self._subsystems is None or nodes == ALL_NODE_SUBSYSTEMS:
            return None
        extra = sorted(nodes - set(self._subsystems)) if nodes is not None else []
        return self._subsystems + tuple(extra)

    def _install_filter(self, monitor: pyudev.Monitor) -> None:
        for subsystem in self._filter_subsystems() or ():
            monitor.filter_by(subsystem)

    def start(self) -> None:
        """Create the udev context and monitor and bind it; events from here on are kept."""
        if self._monitor is not None:
            return
        self._context = pyudev.Context()
        monitor = pyudev.Monitor.from_netlink(self._context, source="udev")
        self._install_filter(monitor)
        try:
            monitor.set_receive_buffer_size(RECEIVE_BUFFER_BYTES)  # needs CAP_NET_ADMIN (root)
        except OSError as exc:
            log.debug("udev monitor keeps the default receive buffer", extra={"error": exc.strerror or str(exc)})
        monitor.start()  # binds now: events sent before this would be lost
        self._monitor = monitor
        self._fd = monitor.fileno()

    def enumerate(self) -> list[Device]:
        """Every USB device now attached, then the listed non-USB node devices, each part sorted by sys_path.

        Devices vanishing meanwhile are skipped. USB in one pass: the bus's device list gives the
        devices and their interfaces by name, and the node and network indexes give every device's
        children, so nothing is walked per device.
        """
        result: list[Device] = list(self._enumerate_usb())
        if self._node_subsystems is not None:
            result.extend(self._enumerate_nodes())
        return result

    def _enumerate_nodes(self) -> list[Device]:
        result: list[Device] = []
        for sys_path, subsystem in sorted(node_device_paths(self._node_subsystems).items()):
            device = self._node_device_at(sys_path, subsystem)
            if device is not None:
                result.append(device)
        return result

    def _node_device_at(self, sys_path: str, subsystem: str | None = None) -> Device | None:
        """The non-USB node device at ``sys_path`` if it is one of the listed subsystems, else None."""
        try:
            device = read_node_device(sys_path, subsystem)
        except ValueError as exc:  # no node (NotANodeDeviceError), or undecodable udev data
            log.debug("not a readable node device", extra={"sys_path": sys_path, "error": str(exc)})
            return None
        except OSError as exc:
            log.debug("skipping device that went away while read", extra={"sys_path": sys_path, "error": str(exc)})
            return None
        return device if wants_subsystem(self._node_subsystems, device.subsystem) else None

    def _enumerate_usb(self) -> list[UsbDevice]:
        try:
            names = sorted(os.listdir(BUS_DEVICES))
        except FileNotFoundError:
            return []  # no USB core in this kernel: nothing attached
        interfaces: dict[str, list[str]] = {}
        devices: dict[str, str] = {}  # sys_path -> kernel name
        for name in names:
            owner = interface_owner(name)
            if owner is not None:
                interfaces.setdefault(owner, []).append(name)
            elif _USB_DEVICE_NAME.match(name):
                try:  # the bus lists links to the devices' own directories
                    devices[os.path.normpath(os.path.join(BUS_DEVICES, os.readlink(f"{BUS_DEVICES}/{name}")))] = name
                except OSError:
                    continue  # gone since the listing
        children = below_by_index(devices)
        result = []
        for sys_path, name in devices.items():
            below = Below(tuple(interfaces.get(name, ())), tuple(children.get(sys_path, ())))
            try:
                result.append(read_usb_device(sys_path, below, subsystem="usb"))
            except ValueError as exc:  # undecodable (non-UTF-8) udev data: this device, not the world, is lost
                log.warning("skipping a device with unreadable udev data", extra={"sys_path": sys_path,
                                                                                   "error": str(exc)})
            except (UdevReadError, OSError) as exc:
                log.debug("skipping device that went away during enumeration", extra={"sys_path": sys_path,
                                                                                       "error": str(exc)})
        result.sort(key=lambda d: d.sys_path)
        return result

    def device_at(self, sys_path: str) -> Device | None:
        """The usb_device at ``sys_path`` (a device's own path, as events name it), or None if it is not
        there (any more) or not a usb_device. Reads that one device and its own subtree, nothing else.
        A path outside USB, when non-USB devices are listed, is read as a node device of a listed subsystem.
        """
        if self._node_subsystems is not None and not inside_usb(sys_path):
            return self._node_device_at(sys_path)
        return self._usb_device_at(sys_path)

    def devices_at(self, sys_paths: Sequence[str]) -> list[Device | None]:
        """``device_at`` for each path; a burst that is a good part of the bus is read in one pass.

        One walk per device costs a directory listing per level of its subtree; one pass over the
        node indexes costs a link per node in the world, so it pays once the burst is a quarter of
        the bus (a hub full of adapters, a storm), and is what enumerate() does. Non-USB node
        devices are read one by one (an event names the device itself; there is no subtree).
        """
        if self._node_subsystems is not None and not all(inside_usb(p) for p in sys_paths):
            usb_paths = [p for p in sys_paths if inside_usb(p)]
            read = dict(zip(usb_paths, self._usb_devices_at(usb_paths), strict=True))
            return [read[p] if p in read else self._node_device_at(p) for p in sys_paths]
        return self._usb_devices_at(sys_paths)

    def _usb_devices_at(self, sys_paths: Sequence[str]) -> list[Device | None]:
        try:
            names = os.listdir(BUS_DEVICES) if len(sys_paths) >= BATCH_MIN else []
        except FileNotFoundError:
            names = []
        if len(sys_paths) * 4 < sum(1 for n in names if _USB_DEVICE_NAME.match(n)) or not names:
            return [self._usb_device_at(path) for path in sys_paths]
        interfaces: dict[str, list[str]] = {}
        for name in names:
            owner = interface_owner(name)
            if owner is not None:
                interfaces.setdefault(owner, []).append(name)
        children = below_by_index(sys_paths)
        result: list[Device | None] = []
        for path in sys_paths:
            below = Below(tuple(sorted(interfaces.get(sys_name_of(path), ()))), tuple(children.get(path, ())))
            try:
                result.append(read_usb_device(path, below))
            except (UdevReadError, OSError, ValueError):  # as device_at: gone, not a usb_device, undecodable
                result.append(None)
        return result

    @staticmethod
    def _usb_device_at(sys_path: str) -> UsbDevice | None:
        try:  # not a usb_device (an interface, a tty): its DEVTYPE says so, and it reads as None
            return read_usb_device(sys_path)
        except (UdevReadError, OSError, ValueError):
            # ValueError: undecodable (non-UTF-8) udev data; the device is left out, not the world
            return None

    def fileno(self) -> int:
        """The monitor's file descriptor, readable when events are pending (for select/poll/asyncio)."""
        if self._fd is None:
            raise RuntimeError("UdevSource.start() first")
        return self._fd

    def drain(self) -> list[UdevEvent]:
        """Every event pending now, without blocking (empty list if none).

        Raises :class:`EventsLostError` when the kernel dropped events because the monitor's queue
        was full (ENOBUFS): the caller must list every device again. The error is cleared first, so
        the next call reads the events that came after it.
        """
        if self._fd is None:
            raise RuntimeError("UdevSource.start() first")
        return list(self._pending(self._fd))

    def _pending(self, fd: int) -> Iterator[UdevEvent]:
        wanted = self._filter_subsystems()
        for properties in read_monitor_messages(fd):
            subsystem = properties.get("SUBSYSTEM", "")
            if wanted is not None and subsystem not in wanted:
                continue  # the kernel filter compares hashes: a collision lets another subsystem through
            sys_path = "/sys" + properties["DEVPATH"]
            node = properties.get("DEVNAME") or None
            if node is not None and not node.startswith("/"):
                node = f"/dev/{node}"
            seqnum = properties.get("SEQNUM", "")
            usb_sys_path = usb_device_path_of(sys_path)
            listed = usb_sys_path is None and node is not None and wants_subsystem(self._node_subsystems, subsystem)
            yield UdevEvent(
                action=properties["ACTION"],
                sys_path=sys_path,
                subsystem=subsystem,
                devtype=properties.get("DEVTYPE") or None,
                seqnum=int(seqnum) if seqnum.isdigit() else 0,
                usb_sys_path=usb_sys_path,
                device_node=node,
                node_sys_path=sys_path if listed else None,
            )

    def close(self) -> None:
        """Drop the monitor (its socket closes with the last reference) and the context."""
        self._monitor = None
        self._fd = None
        self._context = None

    def __enter__(self) -> UdevSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
