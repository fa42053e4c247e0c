"""A device's udev properties as libudev gives them, from one read of its uevent file and one of udev's database.

libudev (systemd's sd-device, v252 here) builds a device's properties from ``DEVPATH``, the lines of
its sysfs ``uevent`` file, its ``SUBSYSTEM`` link and its entry in udev's database,
``/run/udev/data/<id>``: ``E:`` lines are properties, ``S:`` lines device links (``DEVLINKS``), ``G:``
and ``Q:`` lines tags (``TAGS``, ``CURRENT_TAGS``), ``I:`` the time udev initialized it
(``USEC_INITIALIZED``). libudev looks for the database file again on every property it hands out
while there is none (a device udevd has not processed, every device of a umockdev world), which made
reading a device's properties cost two dozen failed opens; here each file is read once.

Pure file reading, no libudev: ``discovery.sources.udev`` (the pyudev adapter) uses it for every
device it reads; tests compare it with pyudev's properties in fake worlds and on the VM's real udev.
"""

from __future__ import annotations

import os

SYS = "/sys"
UDEV_DATA = "/run/udev/data"
DEVICE_MAJOR_LIMIT = 1 << 12  # libudev's DEVICE_MAJOR_VALID and DEVICE_MINOR_VALID
DEVICE_MINOR_LIMIT = 1 << 20


class UnreadableDeviceError(OSError):
    """The device's uevent file cannot be read: it is gone, or it never was a device."""


def read_bytes(path: str) -> bytes | None:
    """A whole (small) file, or None when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def link_name(path: str) -> str | None:
    """The last part of where a symlink points (``subsystem`` -> ``usb``, ``driver`` -> ``ftdi_sio``), or None."""
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def sys_name_of(sys_path: str) -> str:
    """The kernel name of a device as libudev gives it (``!`` in a sysfs name stands for ``/``)."""
    return sys_path.rsplit("/", 1)[-1].replace("!", "/")


def _lines(text: str) -> list[str]:
    return text.replace("\r", "\n").split("\n")


def device_properties(sys_path: str, subsystem: str | None = None, data_dir: str = UDEV_DATA) -> dict[str, str]:
    """The udev properties of the device at ``sys_path``, as ``udev_device_get_properties_list_entry`` lists them.

    ``subsystem`` saves reading the ``subsystem`` link when the caller knows it (a device listed
    under /sys/bus/usb). Raises :class:`UnreadableDeviceError` when there is no uevent file to read,
    ValueError (as pyudev does) when a value is not UTF-8.
    """
    raw = read_bytes(f"{sys_path}/uevent")
    if raw is None:
        raise UnreadableDeviceError(f"{sys_path}: no readable uevent file")
    props = {"DEVPATH": sys_path[len(SYS):] if sys_path.startswith(SYS + "/") else sys_path}
    major = minor = None
    for line in _lines(raw.decode("utf-8")):
        key, sep, value = line.partition("=")
        if not sep or not key:
            continue  # libudev ignores lines without '='
        if key == "MAJOR":
            major = value
        elif key == "MINOR":
            minor = value
        elif key == "DEVNAME":
            props[key] = value if value.startswith("/") else f"/dev/{value}"
        elif key in _CHECKED:
            if _CHECKED[key](value):
                props[key] = value  # libudev drops a value it cannot parse
        else:
            props[key] = value
    devnum = _devnum(major, minor)
    if devnum is not None:
        props["MAJOR"] = major  # type: ignore[assignment]  # not None when devnum is known
        if minor is not None:
            props["MINOR"] = minor
    if subsystem is None:
        subsystem = link_name(f"{sys_path}/subsystem")
    if subsystem is not None:
        props["SUBSYSTEM"] = subsystem
        entry = _database_id(sys_path, subsystem, devnum, props.get("IFINDEX"))
        if entry is not None:
            db = read_bytes(f"{data_dir}/{entry}")
            if db is not None:
                _merge_database(props, db.decode("utf-8"))
    return props


def _unsigned(text: str) -> int | None:
    """A number as systemd's safe_atou reads it: decimal, 0x hexadecimal or 0 octal."""
    try:
        if text[:2].lower() == "0x":
            return int(text[2:], 16)
        return int(text, 8) if text.startswith("0") and len(text) > 1 else int(text, 10)
    except ValueError:
        return None


def _mode_ok(text: str) -> bool:
    mode = _unsigned(text)
    return mode is not None and mode <= 0o7777


def _positive(text: str) -> bool:
    return text.isdigit() and int(text) > 0


_CHECKED = {"DEVMODE": _mode_ok, "IFINDEX": _positive, "DISKSEQ": str.isdigit}


def _devnum(major: str | None, minor: str | None) -> tuple[int, int] | None:
    """The device number libudev accepts from MAJOR/MINOR (major 0 means none)."""
    number = _unsigned(major) if major is not None else None
    if number is None or not 0 < number < DEVICE_MAJOR_LIMIT:
        return None
    low = _unsigned(minor) if minor is not None else 0
    if low is None or low >= DEVICE_MINOR_LIMIT:
        return None
    return number, low


def _database_id(sys_path: str, subsystem: str, devnum: tuple[int, int] | None, ifindex: str | None) -> str | None:
    """The name of the device's file in udev's database: ``c189:5``, ``b8:0``, ``n3`` or ``+usb:1-2:1.0``."""
    if devnum is not None:
        return f"{'b' if subsystem == 'block' else 'c'}{devnum[0]}:{devnum[1]}"
    if ifindex is not None and ifindex.isdigit() and int(ifindex) > 0:
        return f"n{int(ifindex)}"
    if subsystem == "drivers":
        return None  # driver directories are never our devices
    return f"+{subsystem}:{sys_name_of(sys_path)}"


def _merge_database(props: dict[str, str], text: str) -> None:
    """Add a database entry's properties, links and tags, as libudev's device_read_db does."""
    links: list[str] = []
    tags: list[str] = []
    current: list[str] = []
    for line in _lines(text):
        if len(line) < 2 or line[1] != ":":
            continue
        key, value = line[0], line[2:]
        if key == "E":
            name, sep, setting = value.partition("=")
            if not sep:
                continue
            if setting:
                props[name] = setting
            else:
                props.pop(name, None)  # an empty value removes the property
        elif key == "S":
            _add_once(links, f"/dev/{value}")
        elif key in "GQ":
            _add_once(tags, value)
            if key == "Q":
                _add_once(current, value)
        elif key == "I" and value.isdigit():
            props["USEC_INITIALIZED"] = str(int(value))
    if links:
        props["DEVLINKS"] = " ".join(links)  # libudev's order is its hash set's; this is the file's
    if tags:
        props["TAGS"] = ":" + ":".join(tags) + ":"
    if current:
        props["CURRENT_TAGS"] = ":" + ":".join(current) + ":"


def _add_once(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)
