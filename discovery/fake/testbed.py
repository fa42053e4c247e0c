"""A fake udev world for tests, the demo and benchmarks: sysfs files, /dev nodes and uevents.

Pure Python on top of umockdev's preload library (``libumockdev-preload.so.0``); no pyudev, no
PyGObject. A process that runs with that library in ``LD_PRELOAD`` and ``UMOCKDEV_DIR`` set to
:attr:`Testbed.root` sees ``$UMOCKDEV_DIR/sys`` as /sys and ``$UMOCKDEV_DIR/dev/...`` as /dev, and
every udev monitor it opens becomes an AF_UNIX datagram socket ``$UMOCKDEV_DIR/event<fd>``.
This module writes that tree and sends uevents to those sockets, the way a kernel plus udevd
would: parents first on add, children first on remove.

Why not umockdev's own testbed API: Debian 12's version aborts the process when a monitor has 10
unread events, sends no ``remove`` event and cannot re-add a device (docs/testing.md has the
details). Here a send that would block is queued and finished by a background thread instead, so
bursts and single-threaded tests both work and nothing is dropped.

Typical use::

    with Testbed() as tb:
        os.environ.update(tb.env())          # or monkeypatch.setenv; before any pyudev.Monitor
        handle = tb.plug(make_ftdi())        # writes sysfs + /dev, sends add events
        tb.unplug(handle)                    # sends remove events, deletes the files
"""

from __future__ import annotations

import bisect
import errno
import logging
import os
import select
import shutil
import socket
import struct
import sysconfig
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from discovery.fake.usb_devices import (  # re-exported: one import for tests and benchmarks
    FAKE_MINOR_OFFSET,
    FakeChild,
    FakeInterface,
    FakeUsbDevice,
    FakeVia,
    acm_tty,
    hidraw,
    make_arduino_uno,
    make_ch340,
    make_cp210x,
    make_fleet,
    make_ftdi,
    make_hub,
    make_keyboard,
    make_pixel7,
    make_root_hub,
    make_stlink,
    make_yubikey,
    net_interface,
    usb_serial_tty,
)
from discovery.fake.node_devices import (  # re-exported, as the USB factories
    FakeBoard,
    FakeBusDevice,
    FakeNode,
    make_cros_fp,
    make_pcie_serial_card,
    make_raspberry_pi_hat,
    make_v4l2_capture_card,
)
from discovery.fake.recording import DeviceRecord, format_recording, parse_recording

__all__ = [
    "FAKE_MINOR_OFFSET", "FIXTURES_DIR", "PRELOAD_SONAME", "DeviceRecord", "FakeBoard", "FakeBusDevice",
    "FakeChild", "FakeInterface", "FakeNode", "make_cros_fp", "make_pcie_serial_card", "make_raspberry_pi_hat",
    "make_v4l2_capture_card",
    "FakeUsbDevice", "FakeVia", "Plugged", "Testbed", "TestbedError", "acm_tty", "format_recording",
    "hidraw", "list_fixtures", "load_fixture", "load_recording", "make_arduino_uno", "make_ch340",
    "make_cp210x", "make_fleet", "make_ftdi", "make_hub", "make_keyboard", "make_pixel7",
    "make_root_hub", "make_stlink", "make_yubikey", "net_interface", "preload_library",
    "preload_loaded", "renumber", "usb_serial_tty",
]

log = logging.getLogger(__name__)

PRELOAD_SONAME = "libumockdev-preload.so.0"
FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures"

# Subsystems that live under /sys/bus (the rest are classes under /sys/class). libudev finds a
# device by subsystem in either place, so this only decides where the link goes.
_BUS_SUBSYSTEMS = frozenset({
    "usb", "usb-serial", "hid", "pci", "scsi", "platform", "amba", "serio", "i2c", "spi", "mmc", "sdio",
    "acpi", "pnp", "virtio", "serial", "serial-base", "usb_typec", "gpio", "mdio_bus", "ac97",
})
# Properties that belong to the event or to sysfs itself, never to the uevent file.
_EVENT_ONLY = frozenset({"ACTION", "DEVPATH", "SUBSYSTEM", "SEQNUM", "USEC_INITIALIZED"})

# libudev monitor header: "libudev\0", magic, header size, properties offset and length,
# subsystem hash, devtype hash, tag bloom hi/lo. Magic and filter words in network byte order
# (the socket filter reads them), the three sizes in host order.
_MONITOR_MAGIC = 0xFEEDCAFE
_HEADER = struct.Struct("=8sI3I4I")


class TestbedError(RuntimeError):
    """The fake world cannot do what was asked (device exists already, monitor stopped reading...)."""

    __test__ = False  # not a pytest test class despite the name


def murmur_hash2(data: bytes, seed: int = 0) -> int:
    """MurmurHash2 (32 bit), as libudev's socket filter uses it for subsystem and devtype."""
    m = 0x5BD1E995
    h = (seed ^ len(data)) & 0xFFFFFFFF
    full = len(data) - len(data) % 4
    for (k,) in struct.iter_unpack("<I", data[:full]):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[full:]
    if tail:
        for shift, byte in reversed(list(enumerate(tail))):
            h ^= byte << (8 * shift)
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def tag_bloom(tags: Iterable[str]) -> int:
    """The 64-bit bloom filter of udev tags that monitors with tag filters match on."""
    bits = 0
    for tag in tags:
        h = murmur_hash2(tag.encode())
        for shift in (0, 6, 12, 18):
            bits |= 1 << ((h >> shift) & 63)
    return bits


def build_uevent(action: str, record: DeviceRecord, seqnum: int) -> bytes:
    """One datagram as udevd sends it to libudev monitors: header, then ``KEY=value\\0`` pairs."""
    props = {"ACTION": action, "DEVPATH": record.devpath, "SUBSYSTEM": record.subsystem}
    if record.devtype:
        props["DEVTYPE"] = record.devtype
    props["SEQNUM"] = str(seqnum)
    for key, value in record.properties.items():
        if key not in props and key not in _EVENT_ONLY:
            props[key] = value
    if "DEVNAME" in props and not props["DEVNAME"].startswith("/"):
        props["DEVNAME"] = "/dev/" + props["DEVNAME"]
    props["USEC_INITIALIZED"] = str(time.monotonic_ns() // 1000)
    body = b"".join(f"{k}={v}".encode() + b"\0" for k, v in props.items())
    tags = [t for t in props.get("TAGS", "").split(":") if t]
    bloom = tag_bloom(tags)
    header = _HEADER.pack(
        b"libudev\0", socket.htonl(_MONITOR_MAGIC), _HEADER.size, _HEADER.size, len(body),
        socket.htonl(murmur_hash2(record.subsystem.encode())),
        socket.htonl(murmur_hash2(record.devtype.encode())) if record.devtype else 0,
        socket.htonl(bloom >> 32), socket.htonl(bloom & 0xFFFFFFFF),
    )
    return header + body


# ---- delivery ---------------------------------------------------------------------------------

class _Channel:
    """Ordered, lossless delivery to one monitor socket.

    A send is tried at once (non-blocking); if the monitor's queue is full (the kernel allows
    ``net.unix.max_dgram_qlen`` = 10 unread datagrams), it and everything after it are queued and
    a thread finishes them with blocking sends. A monitor that reads nothing for ``stall_timeout``
    seconds is declared stuck: its queue is dropped and the error is raised by the testbed's next
    call, so a forgotten monitor fails a test instead of hanging it.
    """

    def __init__(self, path: str, inode: int, stall_timeout: float) -> None:
        self.path = path
        self.inode = inode
        self.stall_timeout = stall_timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self.pending: deque[bytes] = deque()
        self.cond = threading.Condition()
        self.worker: threading.Thread | None = None
        self.gone = False
        self.error: str | None = None

    def send(self, datagram: bytes) -> None:
        with self.cond:
            if self.gone:
                return
            if not self.pending:
                try:
                    self.sock.send(datagram)
                    return
                except BlockingIOError:
                    pass
                except (ConnectionRefusedError, BrokenPipeError, FileNotFoundError):
                    self._receiver_gone()
                    return
            self.pending.append(datagram)
            if self.worker is None:
                self.worker = threading.Thread(target=self._drain, name=f"uevent->{self.path}", daemon=True)
                self.worker.start()

    def _receiver_gone(self) -> None:
        """The monitor closed: like the kernel, forget what it did not read. Caller holds the lock."""
        self.gone = True
        self.pending.clear()
        self.cond.notify_all()

    def _drain(self) -> None:
        poller = select.poll()
        poller.register(self.sock, select.POLLOUT)
        waited = 0.0
        while True:
            with self.cond:
                if self.gone or not self.pending:
                    self.worker = None
                    self.cond.notify_all()
                    return
                datagram = self.pending[0]
            try:
                self.sock.send(datagram)
            except BlockingIOError:
                if waited >= self.stall_timeout:
                    with self.cond:
                        self.error = (f"uevent socket {self.path} read nothing for {self.stall_timeout:.0f} s "
                                      f"({len(self.pending)} events undelivered): a started Monitor nobody reads?")
                        log.error(self.error)
                        self._receiver_gone()
                        self.worker = None
                    return
                # poll() wakes when the receiver dequeues; the short period guards a lost wake-up.
                started = time.monotonic()
                poller.poll(200)
                waited += time.monotonic() - started
                continue
            except OSError as exc:
                with self.cond:
                    if exc.errno not in (errno.ECONNREFUSED, errno.EPIPE, errno.ENOENT):
                        self.error = f"uevent socket {self.path}: {exc}"
                    self._receiver_gone()
                    self.worker = None
                return
            waited = 0.0
            with self.cond:
                if self.pending:
                    self.pending.popleft()

    def wait_idle(self, deadline: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.gone or not self.pending, max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        with self.cond:
            self._receiver_gone()
        worker = self.worker
        if worker is not None:
            worker.join(timeout=1.0)
        self.sock.close()


class _EventSender:
    """Finds the monitors (``event<N>`` sockets in the testbed root) and feeds each its channel."""

    def __init__(self, directory: str, stall_timeout: float) -> None:
        self.directory = directory
        self.stall_timeout = stall_timeout
        self.channels: dict[str, _Channel] = {}
        self.dead: set[tuple[str, int]] = set()  # sockets nobody listens on (closed monitors)

    def targets(self) -> list[_Channel]:
        """Monitors bound right now; called once per testbed operation, so later monitors miss it."""
        found = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                name = entry.name
                if not (name.startswith("event") and name[5:].isdigit()):
                    continue
                inode = entry.inode()
                channel = self.channels.get(name)
                if channel is not None and channel.inode == inode and not channel.gone:
                    found.append(channel)
                    continue
                if (name, inode) in self.dead:
                    continue
                if channel is not None:
                    self._retire(name, channel)
                try:
                    channel = _Channel(entry.path, inode, self.stall_timeout)
                except OSError:
                    # a socket file left by a closed monitor (the preload unlinks it on the next bind)
                    self.dead.add((name, inode))
                    continue
                self.channels[name] = channel
                found.append(channel)
        return found

    def _retire(self, name: str, channel: _Channel) -> None:
        self.check(channel)
        channel.close()
        del self.channels[name]

    @staticmethod
    def check(channel: _Channel) -> None:
        if channel.error:
            message, channel.error = channel.error, None
            raise TestbedError(message)

    def check_all(self) -> None:
        for channel in list(self.channels.values()):
            self.check(channel)

    def flush(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for channel in list(self.channels.values()):
            if not channel.wait_idle(deadline):
                raise TestbedError(f"uevents to {channel.path} not delivered within {timeout} s "
                                   f"({len(channel.pending)} left): is anyone reading that monitor?")
        self.check_all()

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
        self.channels.clear()


# ---- the world --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plugged:
    """What one :meth:`Testbed.plug` call added: pass it back to unplug, change, bind, unbind."""

    devpaths: tuple[str, ...]  # in the order added (parents first)
    sys_path: str  # the first usb_device added, as /sys/... (for a hub fixture: the hub)
    usb_sys_paths: tuple[str, ...]  # every usb_device added


def preload_library() -> str:
    """Full path of umockdev's preload library, or its soname for ld.so to search."""
    dirs = [sysconfig.get_config_var("LIBDIR") or "", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
            "/usr/lib64", "/usr/lib", "/usr/local/lib"]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        dirs.insert(1, f"/usr/lib/{multiarch}")
    for directory in dirs:
        candidate = os.path.join(directory, PRELOAD_SONAME)
        if directory and os.path.exists(candidate):
            return candidate
    return PRELOAD_SONAME


def preload_loaded() -> bool:
    """Is umockdev's preload library mapped into this process (LD_PRELOAD at exec time)?"""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any("libumockdev-preload" in line for line in maps)
    except OSError:
        return False


def _default_root() -> str:
    # tmpfs: the same work is several times slower on ext4
    shm = "/dev/shm"
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    return tempfile.mkdtemp(prefix="umockdev.", dir=base)


def _alias_outside_dev(real: str) -> str:
    """A /tmp symlink to ``real``, so that no path we or the preload use starts with /dev/.

    umockdev's preload hooks every open() of a path beginning with /dev/ for ioctl emulation, and
    (0.17 to at least 0.18) leaks one socket per such open when no ioctl server exists. Writing a
    testbed under /dev/shm by that name would leak a descriptor per file; through the alias it
    is the same tmpfs without the hook.
    """
    for attempt in range(100):
        alias = os.path.join(tempfile.gettempdir(), f"{os.path.basename(real)}.{os.getpid()}.{attempt}")
        try:
            os.symlink(real, alias)
            return alias
        except FileExistsError:
            continue
    raise TestbedError(f"cannot make a /tmp alias for {real}")


class Testbed:
    """A fake sysfs + /dev + uevent source in one directory (see the module docstring).

    ``root`` defaults to a fresh directory on /dev/shm; :attr:`root` is its canonical path, the
    value for ``UMOCKDEV_DIR``. The testbed itself writes through a /tmp symlink to it (see
    :func:`_alias_outside_dev`).

    Not thread-safe: drive one testbed from one thread (monitors may read from any thread or
    process). ``stall_timeout``: seconds a monitor may leave events unread before the testbed
    gives up on it and raises :class:`TestbedError` from its next call.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, root: Path | str | None = None, *, stall_timeout: float = 30.0) -> None:
        real = str(root) if root is not None else _default_root()
        os.makedirs(real, exist_ok=True)
        self._real_root = os.path.realpath(real)
        # UMOCKDEV_DIR must be the canonical path: the preload maps realpath() results back to
        # /sys/... by stripping that exact prefix. Our own file work goes through the alias.
        self.root = Path(self._real_root)
        self._alias = _alias_outside_dev(self._real_root) if self._real_root.startswith("/dev/") else None
        self._root = self._alias or self._real_root
        self._sys = self._root + "/sys"
        self._dev = self._root + "/dev"
        for path in (self._sys + "/devices", self._sys + "/bus", self._sys + "/class", self._dev + "/.node"):
            os.makedirs(path, exist_ok=True)
        self._dirs: set[str] = set()  # directories outside /sys/devices known to exist
        self._plugged: dict[str, DeviceRecord] = {}  # devpath -> current record, in plug order
        self._rank: dict[str, int] = {}  # devpath -> when it was plugged
        self._sorted: list[str] = []  # plugged devpaths, sorted: a subtree is one slice
        self._claimed: dict[str, str] = {}  # /sys/bus|class entry or /dev node -> devpath owning it
        self._devlinks: dict[str, list[DeviceRecord]] = {}  # /dev symlink -> devices asking for it
        self._unbound: dict[str, list[DeviceRecord]] = {}  # interface devpath -> children taken by unbind
        self._first_driver: dict[str, str] = {}  # devpath -> driver when first plugged, for bind()
        self._seqnum = 0  # uevent SEQNUM
        self._seq = 0  # plug order
        self._sender = _EventSender(self._root, stall_timeout)
        self._closed = False

    # -- environment ------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Variables a process needs to live in this world (merge into os.environ or a child's env)."""
        preload = preload_library()
        current = os.environ.get("LD_PRELOAD", "")
        if PRELOAD_SONAME not in current:
            current = f"{preload}:{current}" if current else preload
        return {"UMOCKDEV_DIR": self._real_root, "LD_PRELOAD": current}

    def is_active(self) -> bool:
        """Does this process see this testbed as /sys right now (preload loaded, UMOCKDEV_DIR set)?"""
        try:
            seen, ours = os.stat("/sys"), os.stat(self._sys)
        except OSError:
            return False
        return (seen.st_dev, seen.st_ino) == (ours.st_dev, ours.st_ino)

    @property
    def records(self) -> list[DeviceRecord]:
        """Every device in the world now, in the order added."""
        return list(self._plugged.values())

    # -- hotplug ----------------------------------------------------------------------------

    def plug(self, device: FakeUsbDevice | FakeBoard | Iterable[DeviceRecord]) -> Plugged:
        """Add a device (or a board outside USB, or any records, e.g. a recording) and send ``add`` events, parents first.

        For records without a usb_device the handle's ``sys_path`` is the first record's (the topmost parent).
        """
        self._check_open()
        records = device.records() if isinstance(device, (FakeUsbDevice, FakeBoard)) else list(device)
        if not records:
            raise TestbedError("nothing to plug")
        records = _parents_first(records)
        seen: dict[str, str] = {}
        for rec in records:
            if rec.devpath in self._plugged or rec.devpath in seen:
                raise TestbedError(f"{rec.devpath} is already plugged")
            seen[rec.devpath] = rec.devpath
            for name in _claims(rec):
                owner = self._claimed.get(name) or seen.get(name)
                if owner is not None:
                    # the kernel never has two devices with one name; overwriting would corrupt both
                    raise TestbedError(f"{rec.devpath}: {name} already belongs to {owner}")
                seen[name] = rec.devpath
        targets = self._sender.targets()
        for rec in records:
            self._add(rec)
            self._emit(targets, "add", rec)
        usb = tuple("/sys" + r.devpath for r in records if r.devtype == "usb_device")
        return Plugged(tuple(r.devpath for r in records), usb[0] if usb else "/sys" + records[0].devpath, usb)

    def unplug(self, handle: Plugged) -> None:
        """Remove what ``handle`` added and anything plugged below it: ``remove`` events, children first."""
        self._check_open()
        tops = [p for p in handle.devpaths if p in self._plugged]
        if not tops:
            raise TestbedError(f"{handle.sys_path} is not plugged")
        doomed: set[str] = set()
        for top in tops:
            doomed.add(top)
            doomed.update(self._below(top))
        self._remove(doomed)
        for path in list(self._unbound):
            if any(path == t or path.startswith(t + "/") for t in tops):
                del self._unbound[path]

    def change(self, handle: Plugged, properties: Mapping[str, str | None] | None = None, *,
               attributes: Mapping[str, str | bytes | None] | None = None, devpath: str | None = None) -> None:
        """Update properties/attributes (``None`` deletes) of the handle's device and send ``change``.

        ``devpath`` picks another plugged record (an interface, a tty) instead of ``handle.sys_path``.
        """
        self._check_open()
        path = devpath or handle.sys_path.removeprefix("/sys")
        rec = self._current(path)
        new = rec.with_changes(properties, attributes)
        self._plugged[path] = new
        self._write_uevent(new)
        for name, value in (attributes or {}).items():
            file = f"{self._sys}{path}/{name}"
            if value is None:
                _unlink(file)
            else:
                self._write_file(file, value.encode() if isinstance(value, str) else value)
        self._emit(self._sender.targets(), "change", new)

    def unbind(self, handle: Plugged, interface: int) -> None:
        """Detach the interface's driver: its class devices go (``remove``), then ``unbind``."""
        self._check_open()
        path = self._interface_path(handle, interface)
        rec = self._current(path)
        children = self._below(path)
        self._unbound[path] = [self._plugged[p] for p in sorted(children, key=self._rank.__getitem__)]
        self._remove(children)
        new = replace(rec.with_changes({"DRIVER": None}), links={k: v for k, v in rec.links.items() if k != "driver"})
        self._plugged[path] = new
        _unlink(f"{self._sys}{path}/driver")
        self._write_uevent(new)
        self._emit(self._sender.targets(), "unbind", new)

    def bind(self, handle: Plugged, interface: int, driver: str | None = None) -> None:
        """Attach a driver (default: the one unbind took away): ``bind``, then its class devices come back."""
        self._check_open()
        path = self._interface_path(handle, interface)
        rec = self._current(path)
        children = self._unbound.pop(path, [])
        driver = driver or rec.driver or self._first_driver.get(path)
        if not driver:
            raise TestbedError(f"no driver to bind to {path}")
        new = rec.with_changes({"DRIVER": driver})
        new = replace(new, links={**new.links, "driver": _dots(path) + f"bus/{rec.subsystem}/drivers/{driver}"})
        self._plugged[path] = new
        self._write_driver_link(new)
        self._write_uevent(new)
        targets = self._sender.targets()
        self._emit(targets, "bind", new)
        for child in children:
            self._add(child)
            self._emit(targets, "add", child)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every queued event reached its monitor (only useful while someone reads)."""
        self._check_open()
        self._sender.flush(timeout)

    def close(self) -> None:
        """Stop delivery and delete the whole tree. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._sender.check_all()
        finally:
            self._sender.close()
            shutil.rmtree(self._real_root, ignore_errors=True)
            if self._alias:
                _unlink(self._alias)

    def __enter__(self) -> Testbed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TestbedError("testbed is closed")
        self._sender.check_all()

    def _current(self, devpath: str) -> DeviceRecord:
        try:
            return self._plugged[devpath]
        except KeyError:
            raise TestbedError(f"{devpath} is not plugged") from None

    def _below(self, devpath: str) -> list[str]:
        """Plugged devpaths strictly below ``devpath`` ('/' sorts just before '0')."""
        lo = bisect.bisect_left(self._sorted, devpath + "/")
        hi = bisect.bisect_left(self._sorted, devpath + "0")
        return self._sorted[lo:hi]

    def _add(self, rec: DeviceRecord) -> None:
        self._write(rec)
        for name in _claims(rec):
            self._claimed[name] = rec.devpath
        self._plugged[rec.devpath] = rec
        self._seq += 1
        self._rank[rec.devpath] = self._seq
        bisect.insort(self._sorted, rec.devpath)

    def _interface_path(self, handle: Plugged, interface: int) -> str:
        base = handle.sys_path.removeprefix("/sys")
        for path in self._below(base):
            rec = self._plugged[path]
            if (rec.devtype == "usb_interface" and path.rsplit("/", 1)[0] == base
                    and int(rec.attributes.get("bInterfaceNumber", b"-1").strip() or b"-1", 16) == interface):
                return path
        raise TestbedError(f"{handle.sys_path} has no interface {interface}")

    def _emit(self, targets: Sequence[_Channel], action: str, rec: DeviceRecord) -> None:
        self._seqnum += 1
        if not targets:
            return
        datagram = build_uevent(action, rec, self._seqnum)
        for channel in targets:
            channel.send(datagram)

    def _remove(self, devpaths: Iterable[str]) -> None:
        targets = self._sender.targets()
        for path in _children_first(list(devpaths), self._rank):
            rec = self._plugged.pop(path)
            for name in _claims(rec):
                self._claimed.pop(name, None)
            del self._rank[path]
            del self._sorted[bisect.bisect_left(self._sorted, path)]
            self._first_driver.pop(path, None)
            self._emit(targets, "remove", rec)
            self._erase(rec)

    def _mkdir(self, path: str) -> None:
        if path not in self._dirs:
            os.makedirs(path, exist_ok=True)
            self._dirs.add(path)

    @staticmethod
    def _write_file(path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def _write_uevent(self, rec: DeviceRecord) -> None:
        lines = []
        for key, value in rec.properties.items():
            if key in _EVENT_ONLY:
                continue
            if key == "DEVNAME":
                value = value.removeprefix("/dev/")  # the kernel writes it without the prefix
            lines.append(f"{key}={value}\n")
        self._write_file(f"{self._sys}{rec.devpath}/uevent", "".join(lines).encode())

    def _write_driver_link(self, rec: DeviceRecord) -> None:
        target = rec.links.get("driver")
        if target is None and rec.driver and rec.subsystem in _BUS_SUBSYSTEMS:
            target = _dots(rec.devpath) + f"bus/{rec.subsystem}/drivers/{rec.driver}"
        if target is None:
            return
        link = f"{self._sys}{rec.devpath}/driver"
        _unlink(link)
        os.symlink(target, link)
        # the driver's directory, so the link resolves as in real sysfs
        resolved = os.path.normpath(os.path.join(self._sys + rec.devpath, target))
        if resolved.startswith(self._sys + "/"):
            self._mkdir(resolved)

    def _write(self, rec: DeviceRecord) -> None:
        """Create one device: directory, subsystem link and its /sys/bus or /sys/class entry, files, node."""
        devdir = self._sys + rec.devpath
        subsystem = rec.subsystem
        if not subsystem:
            raise TestbedError(f"{rec.devpath} has no SUBSYSTEM property")
        os.makedirs(devdir, exist_ok=True)
        kind = "bus" if subsystem in _BUS_SUBSYSTEMS else "class"
        if kind == "bus":
            index_dir = f"{self._sys}/bus/{subsystem}/devices"
            index_target = "../../.." + rec.devpath
        else:
            index_dir = f"{self._sys}/class/{subsystem}"
            index_target = "../.." + rec.devpath
        self._mkdir(index_dir)
        _replace_symlink(f"{kind}/{subsystem}", devdir + "/subsystem", prefix=_dots(rec.devpath))
        _replace_symlink(index_target, f"{index_dir}/{rec.sys_name}")
        self._write_uevent(rec)
        for name, value in rec.attributes.items():
            if name in ("uevent", "subsystem"):
                continue
            if "/" in name:
                os.makedirs(os.path.dirname(f"{devdir}/{name}"), exist_ok=True)
            self._write_file(f"{devdir}/{name}", value)
        self._write_driver_link(rec)
        for name, target in rec.links.items():
            if name in ("driver", "subsystem"):
                continue
            if "/" in name:
                os.makedirs(os.path.dirname(f"{devdir}/{name}"), exist_ok=True)
            _replace_symlink(target, f"{devdir}/{name}")
        majmin = rec.majmin
        if majmin is not None:
            if "dev" not in rec.attributes:
                self._write_file(devdir + "/dev", f"{majmin[0]}:{majmin[1]}\n".encode())
            block = subsystem == "block"
            char_dir = f"{self._sys}/dev/{'block' if block else 'char'}"
            self._mkdir(char_dir)
            _replace_symlink("../.." + rec.devpath, f"{char_dir}/{majmin[0]}:{majmin[1]}")
        node = _node_name(rec)
        if node and majmin is not None:
            self._write_node(rec, node, majmin)
        if rec.driver:
            self._first_driver.setdefault(rec.devpath, rec.driver)

    def _write_node(self, rec: DeviceRecord, node: str, majmin: tuple[int, int]) -> None:
        """A plain file (never a pty, so it can be re-added) plus the dev/.node/ link the preload reads."""
        path = f"{self._dev}/{node}"
        self._mkdir(os.path.dirname(path))
        self._write_file(path, rec.node_contents)
        if rec.subsystem == "block":
            os.chmod(path, 0o1644)  # the sticky bit makes the preload report a block device
        _replace_symlink(f"{majmin[0]}:{majmin[1]}", f"{self._dev}/.node/{node.replace('/', '_')}")
        for link in rec.symlinks:
            claimants = self._devlinks.setdefault(link, [])
            claimants.append(rec)
            self._point_devlink(link, rec)

    def _point_devlink(self, link: str, rec: DeviceRecord) -> None:
        """Make /dev/<link> lead to ``rec``'s node. Two serial-less twins ask for the same by-id
        link; like udev, the newest claimant gets it and a survivor inherits it on removal."""
        node = _node_name(rec)
        majmin = rec.majmin
        if node is None or majmin is None:
            return
        link_path = f"{self._dev}/{link}"
        self._mkdir(os.path.dirname(link_path))
        _replace_symlink(os.path.relpath(f"{self._dev}/{node}", os.path.dirname(link_path)), link_path)
        # the preload takes rdev from .node/<name as asked for>, so links need their own entry
        _replace_symlink(f"{majmin[0]}:{majmin[1]}", f"{self._dev}/.node/{link.replace('/', '_')}")

    def _erase(self, rec: DeviceRecord) -> None:
        """Undo :meth:`_write` for one device (its children are gone already)."""
        subsystem = rec.subsystem
        if subsystem in _BUS_SUBSYSTEMS:
            _unlink(f"{self._sys}/bus/{subsystem}/devices/{rec.sys_name}")
        else:
            _unlink(f"{self._sys}/class/{subsystem}/{rec.sys_name}")
        majmin = rec.majmin
        if majmin is not None:
            kind = "block" if subsystem == "block" else "char"
            _unlink(f"{self._sys}/dev/{kind}/{majmin[0]}:{majmin[1]}")
        node = _node_name(rec)
        if node and majmin is not None:
            _unlink(f"{self._dev}/{node}")
            _unlink(f"{self._dev}/.node/{node.replace('/', '_')}")
            for link in rec.symlinks:
                claimants = [c for c in self._devlinks.get(link, []) if c.devpath != rec.devpath]
                if claimants:
                    self._devlinks[link] = claimants
                    self._point_devlink(link, claimants[-1])
                else:
                    self._devlinks.pop(link, None)
                    _unlink(f"{self._dev}/{link}")
                    _unlink(f"{self._dev}/.node/{link.replace('/', '_')}")
        shutil.rmtree(self._sys + rec.devpath, ignore_errors=True)


def _node_name(rec: DeviceRecord) -> str | None:
    if rec.node is not None:
        return rec.node
    devname = rec.properties.get("DEVNAME")
    return devname.removeprefix("/dev/") if devname else None


def _claims(rec: DeviceRecord) -> list[str]:
    """Names a device takes that no other device may have: its index entry and its node."""
    if rec.subsystem in _BUS_SUBSYSTEMS:
        names = [f"/sys/bus/{rec.subsystem}/devices/{rec.sys_name}"]
    else:
        names = [f"/sys/class/{rec.subsystem}/{rec.sys_name}"]
    node = _node_name(rec)
    if node and rec.majmin is not None:
        names.append("/dev/" + node)
    return names


def _dots(devpath: str) -> str:
    """``../`` enough times to climb from a device directory to /sys."""
    return "../" * (devpath.strip("/").count("/") + 1)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return


def _replace_symlink(target: str, path: str, prefix: str = "") -> None:
    try:
        os.symlink(prefix + target, path)
    except FileExistsError:
        os.unlink(path)
        os.symlink(prefix + target, path)


def _children_first(doomed: list[str], rank: Mapping[str, int]) -> list[str]:
    """Removal order as the kernel tears a subtree down: each device after everything below it,
    later-added siblings first."""
    members = set(doomed)
    below: dict[str | None, list[str]] = {}
    for path in doomed:
        parent = path.rsplit("/", 1)[0]
        while parent and parent not in members:
            parent = parent.rsplit("/", 1)[0]
        below.setdefault(parent or None, []).append(path)
    out: list[str] = []

    def visit(path: str) -> None:
        for child in sorted(below.get(path, ()), key=rank.__getitem__, reverse=True):
            visit(child)
        out.append(path)

    for root in sorted(below.get(None, ()), key=rank.__getitem__, reverse=True):
        visit(root)
    return out


def _parents_first(records: list[DeviceRecord]) -> list[DeviceRecord]:
    """Kernel order: by depth, keeping the given order among equals."""
    return sorted(records, key=lambda r: r.devpath.count("/"))


# ---- recordings and fixtures --------------------------------------------------------------------

def _shift_minor(rec: DeviceRecord, offset: int) -> DeviceRecord:
    majmin = rec.majmin
    if majmin is None or offset == 0:
        return rec
    major, minor = majmin
    props: dict[str, str | None] = {}
    if "MINOR" in rec.properties:
        props["MINOR"] = str(minor + offset)
    attrs: dict[str, bytes | str | None] = {}
    if "dev" in rec.attributes:
        attrs["dev"] = f"{major}:{minor + offset}\n"
    return rec.with_changes(props, attrs)


def load_recording(path: Path | str, *, minor_offset: int = FAKE_MINOR_OFFSET) -> list[DeviceRecord]:
    """Read a ``.umockdev`` file as records for :meth:`Testbed.plug`, parents first.

    Recordings list a device before its parents; plug needs the kernel's order. Node minors are
    moved by ``minor_offset`` (see FAKE_MINOR_OFFSET) so a recording of a real device cannot pick
    up that device's udev database entry on a machine where it is plugged in.
    """
    path = Path(path)
    records = parse_recording(path.read_text(encoding="utf-8"), source=str(path))
    records.reverse()  # umockdev-record writes each device before its parents
    return [_shift_minor(r, minor_offset) for r in _parents_first(records)]


def list_fixtures(directory: Path = FIXTURES_DIR) -> list[str]:
    """Names of the recordings in ``fixtures/`` (without ``.umockdev``)."""
    return sorted(p.stem for p in Path(directory).glob("*.umockdev"))


def load_fixture(name: str, directory: Path = FIXTURES_DIR) -> list[DeviceRecord]:
    """Load ``fixtures/<name>.umockdev`` (see fixtures/README.md for what each one is)."""
    file = Path(directory) / (name if name.endswith(".umockdev") else name + ".umockdev")
    if not file.exists():
        raise TestbedError(f"no fixture {name!r} in {directory} (have: {', '.join(list_fixtures(directory))})")
    return load_recording(file)


def renumber(records: Sequence[DeviceRecord], devnum: int, sys_name: str | None = None) -> list[DeviceRecord]:
    """The same records with one usb_device's devnum changed: that device plugged in again.

    Rewrites ``devnum``, ``dev``, DEVNUM, DEVNAME, MINOR and the /dev/bus/usb node of the
    usb_device named ``sys_name`` (default: the first usb_device).
    """
    out = list(records)
    for i, rec in enumerate(out):
        if rec.devtype != "usb_device" or (sys_name is not None and rec.sys_name != sys_name):
            continue
        old = int(rec.attributes.get("devnum", b"0").strip() or rec.properties.get("DEVNUM", "0"))
        bus = int(rec.attributes.get("busnum", b"0").strip() or rec.properties.get("BUSNUM", "0"))
        majmin = rec.majmin
        props: dict[str, str | None] = {"DEVNUM": f"{devnum:03d}"}
        attrs: dict[str, bytes | str | None] = {"devnum": f"{devnum}\n"}
        node = f"bus/usb/{bus:03d}/{devnum:03d}"
        if "DEVNAME" in rec.properties:
            props["DEVNAME"] = "/dev/" + node
        if majmin is not None:
            minor = majmin[1] + devnum - old
            if "MINOR" in rec.properties:
                props["MINOR"] = str(minor)
            attrs["dev"] = f"{majmin[0]}:{minor}\n"
        new = rec.with_changes(props, attrs)
        out[i] = replace(new, node=node if rec.node is not None or "DEVNAME" in rec.properties else None)
        return out
    raise TestbedError(f"no usb_device {sys_name or ''} in these records".replace("  ", " "))
