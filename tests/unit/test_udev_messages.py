"""Reading udevd's monitor messages ourselves: what one holds, and which ones the reader drops as libudev does."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

import pytest

from discovery.fake.recording import DeviceRecord
from discovery.fake.testbed import build_uevent
from discovery.sources.base import EventsLostError
from discovery.sources.udev import properties_of_message, read_monitor_messages

DEVICE = DeviceRecord(
    devpath="/devices/pci0000:00/0000:00:14.0/usb1/1-2",
    properties={"SUBSYSTEM": "usb", "DEVTYPE": "usb_device", "DEVNAME": "/dev/bus/usb/001/005", "PRODUCT": "403/6001/600"},
)
TTY = DeviceRecord(
    devpath="/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/ttyUSB0/tty/ttyUSB0",
    properties={"SUBSYSTEM": "tty", "DEVNAME": "ttyUSB0"},
)
BLOCK = DeviceRecord(devpath="/devices/virtual/block/loop0", properties={"SUBSYSTEM": "block", "DEVNAME": "/dev/loop0"})


def test_udev_message_of_a_usb_device() -> None:
    properties = properties_of_message(build_uevent("add", DEVICE, 42))
    assert properties is not None
    assert {k: properties[k] for k in ("ACTION", "DEVPATH", "SUBSYSTEM", "DEVTYPE", "SEQNUM", "DEVNAME", "PRODUCT")} == {
        "ACTION": "add", "DEVPATH": DEVICE.devpath, "SUBSYSTEM": "usb", "DEVTYPE": "usb_device", "SEQNUM": "42",
        "DEVNAME": "/dev/bus/usb/001/005", "PRODUCT": "403/6001/600",
    }


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(b"add@/devices/pci0000:00/0000:00:14.0/usb1/1-2\0ACTION=add\0", id="kernel-format"),
        pytest.param(build_uevent("add", DEVICE, 1).replace(b"\xfe\xed\xca\xfe", b"\0\0\0\0", 1), id="wrong-magic"),
        pytest.param(build_uevent("add", DEVICE, 1)[:20], id="short-header"),
        pytest.param(build_uevent("add", DEVICE, 1).replace(b"DEVPATH=", b"DEVPATX=", 1), id="no-devpath"),
    ],
)
def test_udev_message_that_is_not_udevds_is_none(message: bytes) -> None:
    assert properties_of_message(message) is None


def test_udev_message_not_utf8_raises() -> None:
    message = build_uevent("add", DeviceRecord(devpath=DEVICE.devpath, properties={**DEVICE.properties,
                                                                                   "ID_SERIAL": "x"}), 1)
    with pytest.raises(UnicodeDecodeError):
        properties_of_message(message.replace(b"ID_SERIAL=x", b"ID_SERIAL=\xff"))


@pytest.fixture
def monitor_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A datagram socket pair that passes credentials, as a umockdev world's monitor socket does."""
    sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    yield sender, receiver
    sender.close()
    receiver.close()


def test_read_monitor_messages_reads_all_waiting_and_borrows_the_descriptor(
    monitor_pair: tuple[socket.socket, socket.socket],
) -> None:
    sender, receiver = monitor_pair
    for seqnum, record in enumerate((DEVICE, BLOCK, TTY), start=1):
        sender.send(build_uevent("add", record, seqnum))
    messages = read_monitor_messages(receiver.fileno())
    assert [(m["SUBSYSTEM"], m["SEQNUM"]) for m in messages] == [("usb", "1"), ("block", "2"), ("tty", "3")]
    assert read_monitor_messages(receiver.fileno()) == []
    sender.send(build_uevent("add", DEVICE, 4))  # the descriptor is still open and still ours
    assert [m["SEQNUM"] for m in read_monitor_messages(receiver.fileno())] == ["4"]


def test_read_monitor_messages_drops_undecodable_ones(monitor_pair: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = monitor_pair
    bad = DeviceRecord(devpath=DEVICE.devpath, properties={**DEVICE.properties, "ID_SERIAL": "x"})
    sender.send(build_uevent("add", bad, 1).replace(b"ID_SERIAL=x", b"ID_SERIAL=\xff"))
    sender.send(build_uevent("add", DEVICE, 2))
    assert [m["SEQNUM"] for m in read_monitor_messages(receiver.fileno())] == ["2"]


def test_read_monitor_messages_drops_what_root_or_this_user_did_not_send(
    monitor_pair: tuple[socket.socket, socket.socket],
) -> None:
    """Credentials say who sent it: a message without any (a sender lying about nothing) is dropped."""
    sender, receiver = monitor_pair
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 0)
    sender.send(build_uevent("add", DEVICE, 1))
    assert read_monitor_messages(receiver.fileno()) == []


def test_read_monitor_messages_drops_a_truncated_message(monitor_pair: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = monitor_pair
    big = DeviceRecord(devpath=DEVICE.devpath, properties={**DEVICE.properties, "ID_MODEL": "x" * 9000})
    sender.send(build_uevent("add", big, 1))
    sender.send(build_uevent("add", DEVICE, 2))
    assert [m["SEQNUM"] for m in read_monitor_messages(receiver.fileno())] == ["2"]


def test_read_monitor_messages_says_events_were_lost_on_enobufs() -> None:
    """An overflowed netlink socket (discovery.fake.overflow) reads as EventsLostError, once."""
    from discovery.fake.overflow import overflowed_socket

    sock = overflowed_socket()
    try:
        with pytest.raises(EventsLostError):
            read_monitor_messages(sock.fileno())
        assert read_monitor_messages(sock.fileno()) == []  # the error is cleared; what is queued is not udevd's
    finally:
        sock.close()


def test_credentials_struct_is_pid_uid_gid() -> None:
    """SCM_CREDENTIALS carries struct ucred (pid, uid, gid), the uid in the middle."""
    sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sender.send(b"x")
        _, ancillary, _, _ = receiver.recvmsg(16, socket.CMSG_SPACE(12))
        pid, uid, _ = struct.unpack("iII", ancillary[0][2][:12])
        assert (pid, uid) == (os.getpid(), os.geteuid())
    finally:
        sender.close()
        receiver.close()
