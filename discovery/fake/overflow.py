"""A real udev monitor overflow for tests: a netlink socket the kernel overflowed, put in place of the monitor's.

Under umockdev a monitor is an AF_UNIX socket, which never overflows (the sender blocks instead). On
a real machine a udev storm fills the monitor's netlink queue, the kernel drops what does not fit
and marks the socket with ENOBUFS: poll() then reports POLLERR, and the next read fails. To get
exactly that, :func:`overflowed_in_place_of` makes a real ``NETLINK_USERSOCK`` socket (the netlink
family meant for user programs, open to non-root), fills its smallest possible queue from a second
socket until the kernel drops messages, and ``dup2``s it over the monitor's descriptor, so libudev,
pyudev and our source read a genuinely overflowed socket through their real code. The monitor's own
socket is put back when the block ends. The messages left in the queue are not udev's, so libudev
drops them, as it drops anything it does not trust.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

NETLINK_USERSOCK = 2
_GROUP = 1 << 30  # a multicast group nobody else listens on
_FLOOD = 64  # messages sent at a queue that holds one or two


def overflowed_socket() -> socket.socket:
    """A netlink socket with ENOBUFS pending: the kernel dropped messages its queue had no room for."""
    receiver = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                             NETLINK_USERSOCK)
    sender = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_USERSOCK)
    try:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the kernel rounds up to its minimum
        receiver.bind((0, _GROUP))
        sender.bind((0, 0))
        for _ in range(_FLOOD):
            try:
                sender.sendto(b"not a udev message".ljust(256, b"."), (0, _GROUP))
            except ConnectionRefusedError:
                continue  # the multicast went out; only the unicast copy to "port 0" had nobody to take it
    except BaseException:
        receiver.close()
        raise
    finally:
        sender.close()
    return receiver


@contextmanager
def overflowed_in_place_of(fd: int) -> Iterator[None]:
    """Within the block, ``fd`` is an overflowed netlink socket; afterwards its own socket again."""
    saved = os.dup(fd)
    try:
        with overflowed_socket() as overflowed:
            os.dup2(overflowed.fileno(), fd, inheritable=False)  # fd now holds the socket; ours may close
        yield
    finally:
        os.dup2(saved, fd, inheritable=False)
        os.close(saved)


def has_pending_overflow(sock: socket.socket) -> bool:
    """True when ``sock`` has ENOBUFS pending (reading it clears it: for tests of this module)."""
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ENOBUFS
