"""Guest side: bring up the loopback interface with the kernel's own ioctls (the image has no iproute2).

The guest has no network, and ``lo`` stays down after boot; anything that listens on 127.0.0.1 (a
Nomad agent) needs it up. Setting IFF_UP is what ``ip link set lo up`` does; the kernel then gives
``lo`` 127.0.0.1/8 and ::1 by itself.
"""

from __future__ import annotations

import fcntl
import socket
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ = "16sH22x"  # struct ifreq on x86_64: the name, then ifr_flags in a 24-byte union


def interface_flags(name: str = "lo") -> int:
    """The interface's flags (IFF_*)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        answer = fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack(IFREQ, name.encode(), 0))
    return int(struct.unpack(IFREQ, answer)[1])


def bring_up(name: str = "lo") -> bool:
    """Set IFF_UP on ``name``; True when it was down before."""
    flags = interface_flags(name)
    if flags & IFF_UP:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack(IFREQ, name.encode(), flags | IFF_UP))
    return True
