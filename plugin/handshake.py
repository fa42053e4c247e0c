"""The go-plugin handshake, both ends: cookie, protocol, socket path, and the line written and parsed.

The server (plugin.server) checks the cookie, makes the socket directory and writes the handshake
line; the go-plugin host (plugin.host) sets the cookie and parses that line. Both use this one
module (the cookie itself is in ``plugin.cookie``, re-exported here), so the two ends cannot drift
apart. Nothing here imports grpc, and every rule can be unit tested without starting a server.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The cookie lives in its own module so the executable's first decision imports nothing; re-exported here.
from plugin.cookie import MAGIC_COOKIE_KEY as MAGIC_COOKIE_KEY
from plugin.cookie import MAGIC_COOKIE_VALUE as MAGIC_COOKIE_VALUE
from plugin.cookie import NOT_A_PROGRAM_MESSAGE as NOT_A_PROGRAM_MESSAGE
from plugin.cookie import check_cookie as check_cookie

log = logging.getLogger(__name__)

CORE_PROTOCOL_VERSION = 1
APP_PROTOCOL_VERSION = 2
PROTOCOL_VERSIONS_KEY = "PLUGIN_PROTOCOL_VERSIONS"
SOCKET_DIR_KEY = "PLUGIN_UNIX_SOCKET_DIR"
NETWORK = "unix"
PROTOCOL = "grpc"
SOCKET_NAME = "plugin.sock"
# sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107
SOCKET_DIR_PREFIX = "ndu-"
FALLBACK_SOCKET_BASE = "/tmp"
# tempfile.mkdtemp appends 8 random characters to the prefix.
_MKDTEMP_RANDOM_CHARS = 8


class HandshakeError(Exception):
    """The handshake cannot happen: the environment does not allow serving, or the line is wrong or missing."""


def negotiate_protocol(environ: Mapping[str, str]) -> int:
    """Return the app protocol version to speak, which can only be 2.

    The host lists the versions it speaks, comma separated. Like go-plugin, an
    absent or empty list means "whatever the server speaks" and entries that
    are not integers are skipped.
    """
    raw = environ.get(PROTOCOL_VERSIONS_KEY, "").strip()
    if not raw:
        return APP_PROTOCOL_VERSION
    offered: set[int] = set()
    for item in raw.split(","):
        try:
            offered.add(int(item.strip()))
        except ValueError:
            log.warning("ignoring invalid protocol version from host", extra={"value": item})
    if APP_PROTOCOL_VERSION not in offered:
        raise HandshakeError(
            f"host offers plugin protocol versions {raw!r}; "
            f"this plugin speaks only {APP_PROTOCOL_VERSION}"
        )
    return APP_PROTOCOL_VERSION


def socket_base_dir(environ: Mapping[str, str]) -> str:
    """Where to create the socket directory: go-plugin's variable, else the temp dir."""
    configured = environ.get(SOCKET_DIR_KEY, "")
    if configured:
        return configured
    tmpdir = environ.get("TMPDIR", "")
    if tmpdir and os.path.isdir(tmpdir):
        return tmpdir
    return tempfile.gettempdir()


def socket_path_bytes(base: str) -> int:
    """Length in bytes of the socket path that make_socket_dir would build in `base`."""
    name = f"{SOCKET_DIR_PREFIX}{'x' * _MKDTEMP_RANDOM_CHARS}/{SOCKET_NAME}"
    return len(os.fsencode(os.path.join(os.path.abspath(base), name)))


@dataclass(frozen=True)
class SocketDir:
    """A private directory holding the plugin's Unix socket."""

    directory: Path
    socket: Path

    def remove(self) -> None:
        """Delete the socket (if grpc left it) and the directory."""
        self.socket.unlink(missing_ok=True)
        try:
            self.directory.rmdir()
        except FileNotFoundError:
            return


def make_socket_dir(environ: Mapping[str, str]) -> SocketDir:
    """Create a fresh 0700 directory for the socket, keeping the path within sun_path.

    A private directory (rather than a bare name in a shared temp dir) means no
    other local user can connect to, or replace, the socket. When the preferred
    base makes the path too long, fall back to /tmp.
    """
    base = socket_base_dir(environ)
    if socket_path_bytes(base) > MAX_SOCKET_PATH_BYTES:
        log.warning(
            "socket directory path too long, using fallback",
            extra={"dir": base, "fallback": FALLBACK_SOCKET_BASE},
        )
        base = FALLBACK_SOCKET_BASE
        if socket_path_bytes(base) > MAX_SOCKET_PATH_BYTES:
            raise HandshakeError(f"no socket path of at most {MAX_SOCKET_PATH_BYTES} bytes")
    try:
        directory = Path(tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX, dir=os.path.abspath(base)))
    except OSError as exc:
        raise HandshakeError(f"cannot create socket directory in {base}: {exc}") from exc
    return SocketDir(directory=directory, socket=directory / SOCKET_NAME)


def handshake_line(socket: Path) -> str:
    """The single stdout line that tells the host where and how to connect."""
    return f"{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|{NETWORK}|{socket}|{PROTOCOL}\n"


@dataclass(frozen=True)
class Handshake:
    """The fields of a go-plugin handshake line, as the host reads what handshake_line() wrote."""

    core_version: int
    app_version: int
    network: str
    address: str
    protocol: str
    raw: str

    @classmethod
    def parse(cls, line: str) -> Handshake:
        """Validate a handshake line the way Nomad's go-plugin host needs it."""
        parts = line.strip().split("|")
        if len(parts) < 5:
            raise HandshakeError(f"too few fields in handshake line {line!r}")
        core, app, network, address, protocol = parts[:5]
        if core != str(CORE_PROTOCOL_VERSION):
            raise HandshakeError(f"core protocol version must be {CORE_PROTOCOL_VERSION}: {line!r}")
        if app != str(APP_PROTOCOL_VERSION):
            raise HandshakeError(f"app protocol version must be {APP_PROTOCOL_VERSION}: {line!r}")
        if network != NETWORK:
            raise HandshakeError(f"network must be {NETWORK}: {line!r}")
        if not address.startswith("/"):
            raise HandshakeError(f"socket address must be absolute: {line!r}")
        if protocol != PROTOCOL:
            raise HandshakeError(f"protocol must be {PROTOCOL}: {line!r}")
        if len(parts) > 6 or (len(parts) == 6 and parts[5]):
            raise HandshakeError(f"unexpected extra fields: {line!r}")
        return cls(int(core), int(app), network, address, protocol, line)
