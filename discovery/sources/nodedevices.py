"""Devices with a node outside USB (an on-board UART, a GPIO chip, a PCI serial card's ports), read from sysfs.

Pure file reading like ``udevdb``, no libudev: ``discovery.sources.udev`` lists and reads these
only when it was asked for non-USB subsystems, so USB enumeration costs nothing more.

Which devices count: every device directory that has a node (``/sys/dev/char`` and
``/sys/dev/block`` link to them all) and that is not below a USB root hub (``usbN``): nodes below
a USB device belong to that device as its children. Parents are the device directories above
(those with a ``subsystem`` link or a ``uevent`` file), nearest first, each with its subsystem,
driver and attributes read on first use. A device's port path is udev's ``ID_PATH`` where udev
made one (tty, video4linux, block, input, sound); otherwise its nearest stable bus parent
(``platform-fe200000.gpio``), and failing that its sysfs path below ``/sys/devices``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping

from discovery.model import NodeDevice, Parent, frozen_mapping
from discovery.sources.base import ALL_NODE_SUBSYSTEMS, NodeSubsystems
from discovery.sources.udevdb import device_properties, link_name, read_bytes, sys_name_of

SYS_DEVICES = "/sys/devices"
CHAR_INDEX = "/sys/dev/char"
BLOCK_INDEX = "/sys/dev/block"
USB_DEVICE_MAJOR = "189:"  # /dev/bus/usb/BBB/DDD: always a USB device, never read

ROOT_HUB = re.compile(r"^usb\d+$")
# Parents that name a physical place as udev's path_id does ("platform-fe201000.serial", "pci-0000:03:00.0").
PLACE_SUBSYSTEMS = ("pci", "platform", "amba", "acpi", "pnp")
# Platform devices the kernel numbers in probe order (PLATFORM_DEVID_AUTO): not a stable place.
_AUTO_NUMBERED = ".auto"


class NotANodeDeviceError(ValueError):
    """The device at a path has no node (or no subsystem): it is not one of these devices."""


def inside_usb(sys_path: str) -> bool:
    """Is ``sys_path`` a USB device or below one? Everything below a root hub (``usbN``) is."""
    return any(ROOT_HUB.match(part) for part in sys_path.split("/"))


def _read_text(path: str) -> str | None:
    raw = read_bytes(path)
    return None if raw is None else raw.decode("utf-8", errors="replace").strip()


def _safe_name(name: str) -> bool:
    """An attribute name that stays inside the device's directory (``power/control`` is fine, ``../x`` is not)."""
    return bool(name) and not name.startswith("/") and ".." not in name.split("/")


class LazyAttributes(Mapping[str, str]):
    """The sysfs attributes of one device (udev's ``ATTR{}``), each read on its first lookup and then kept.

    Any name may be asked for (rules name attributes this code cannot know); iterating lists the
    device directory's regular files once. Values are text with surrounding blanks removed, as
    udev compares them. Read-only from the outside, like the other records' mappings.
    """

    __slots__ = ("_sys_path", "_values", "_names")

    def __init__(self, sys_path: str) -> None:
        self._sys_path = sys_path
        self._values: dict[str, str | None] = {}
        self._names: tuple[str, ...] | None = None

    def __getitem__(self, name: str) -> str:
        if name not in self._values:
            self._values[name] = _read_text(f"{self._sys_path}/{name}") if _safe_name(name) else None
        value = self._values[name]
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        if self._names is None:
            try:
                with os.scandir(self._sys_path) as entries:
                    self._names = tuple(sorted(e.name for e in entries if e.is_file(follow_symlinks=False)))
            except OSError:
                self._names = ()
        return iter(self._names)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:  # what is known, without reading anything
        known = {k: v for k, v in self._values.items() if v is not None}
        return f"LazyAttributes({self._sys_path!r}, {known!r})"


def read_parents(sys_path: str) -> tuple[Parent, ...]:
    """The device directories above ``sys_path`` up to /sys/devices, nearest first.

    A directory is a device when it has a ``subsystem`` link, or else a ``uevent`` file (the PCI
    host bridge ``pci0000:00`` has no subsystem); class folders such as ``tty`` have neither.
    """
    parents: list[Parent] = []
    path = sys_path.rsplit("/", 1)[0]
    while path.startswith(SYS_DEVICES + "/"):
        subsystem = link_name(f"{path}/subsystem")
        if subsystem is not None or os.path.exists(f"{path}/uevent"):
            parents.append(Parent(sys_path=path, sys_name=sys_name_of(path), subsystem=subsystem,
                                  driver=link_name(f"{path}/driver"), attributes=LazyAttributes(path)))
        path = path.rsplit("/", 1)[0]
    return tuple(parents)


def node_port_path(properties: Mapping[str, str], parents: tuple[Parent, ...], sys_path: str) -> str:
    """Where the device sits: ID_PATH, else its nearest stable bus parent, else its path below /sys/devices."""
    id_path = properties.get("ID_PATH")
    if id_path:
        return id_path
    for parent in parents:
        if parent.subsystem in PLACE_SUBSYSTEMS and not parent.sys_name.endswith(_AUTO_NUMBERED):
            return f"{parent.subsystem}-{parent.sys_name}"
    return sys_path.removeprefix(SYS_DEVICES + "/")


def read_node_device(sys_path: str, subsystem: str | None = None) -> NodeDevice:
    """Read the device at ``sys_path`` into a :class:`NodeDevice`.

    ``subsystem`` saves reading the ``subsystem`` link when the caller knows it. Raises
    :class:`NotANodeDeviceError` when it has no node, ``UnreadableDeviceError`` (an OSError) when it
    is gone, ValueError when its udev data is not UTF-8.
    """
    props = device_properties(sys_path, subsystem)
    node = props.get("DEVNAME")
    own_subsystem = props.get("SUBSYSTEM")
    if node is None or own_subsystem is None:
        raise NotANodeDeviceError(f"{sys_path}: no device node")
    parents = read_parents(sys_path)
    driver = link_name(f"{sys_path}/driver") or next((p.driver for p in parents if p.driver), None)
    return NodeDevice(
        sys_path=sys_path,
        sys_name=sys_name_of(sys_path),
        subsystem=own_subsystem,
        port_path=node_port_path(props, parents, sys_path),
        device_node=node,
        devlinks=tuple(props.get("DEVLINKS", "").split()),
        serial=props.get("ID_SERIAL_SHORT") or None,
        driver=driver,
        parents=parents,
        properties=frozen_mapping(props),
        attributes=LazyAttributes(sys_path),
    )


def node_device_paths(wanted: NodeSubsystems) -> dict[str, str | None]:
    """sys_path -> subsystem (None: not known yet) of every device with a node outside USB that ``wanted`` takes.

    All of them: one pass over the node indexes. Some subsystems: their ``/sys/class`` and
    ``/sys/bus`` listings only, so a rule for ``tty`` never reads the block devices. Whether each
    really has a node is found when it is read.
    """
    found: dict[str, str | None] = {}
    if wanted is None:
        return found
    if wanted == ALL_NODE_SUBSYSTEMS:
        for directory in (CHAR_INDEX, BLOCK_INDEX):
            for name, path in _links(directory):
                if not name.startswith(USB_DEVICE_MAJOR) and not inside_usb(path):
                    found[path] = None
        return found
    for subsystem in sorted(wanted):
        for directory in (f"/sys/class/{subsystem}", f"/sys/bus/{subsystem}/devices"):
            for _, path in _links(directory):
                if not inside_usb(path):
                    found[path] = subsystem
    return found


def _links(directory: str) -> Iterator[tuple[str, str]]:
    """(entry name, resolved device path) of each symlink in an index directory; nothing if it is missing."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        try:
            target = os.readlink(f"{directory}/{name}")
        except OSError:
            continue  # gone since the listing, or not a link
        yield name, os.path.normpath(os.path.join(directory, target))
