"""Unit tier: cookie, protocol negotiation, socket directory and handshake line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from plugin import handshake
from plugin.handshake import (
    MAGIC_COOKIE_KEY,
    MAGIC_COOKIE_VALUE,
    MAX_SOCKET_PATH_BYTES,
    Handshake,
    HandshakeError,
    check_cookie,
    handshake_line,
    make_socket_dir,
    negotiate_protocol,
    socket_base_dir,
    socket_path_bytes,
)


def test_magic_cookie_is_nomads() -> None:
    """The cookie is Nomad's device-plugin value, written out here: a typo in the module fails this test."""
    assert (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE) == (
        "NOMAD_PLUGIN_MAGIC_COOKIE",
        "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255",
    )


@pytest.mark.parametrize(
    ("environ", "ok"),
    [({MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE}, True), ({}, False),
     ({MAGIC_COOKIE_KEY: ""}, False), ({MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE + " "}, False),
     ({MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE.upper()}, False)],
    ids=["exact", "missing", "empty", "trailing-space", "upper-case"],
)
def test_check_cookie_requires_exact_value(environ: dict[str, str], ok: bool) -> None:
    """Only the exact Nomad cookie value passes."""
    assert check_cookie(environ) is ok


@pytest.mark.parametrize("offered", ["2", "1,2", " 3 , 2 ", "x,2", "", None],
                         ids=["only-2", "list", "spaces", "junk-entry", "empty", "absent"])
def test_negotiate_protocol_picks_2(offered: str | None) -> None:
    """Version 2 is chosen when offered; an absent or empty list means the server's own."""
    environ = {} if offered is None else {"PLUGIN_PROTOCOL_VERSIONS": offered}
    assert negotiate_protocol(environ) == 2


@pytest.mark.parametrize("offered", ["1", "3,4", "x"])
def test_negotiate_protocol_refuses_without_2(offered: str) -> None:
    """A host that does not offer version 2 is refused."""
    with pytest.raises(HandshakeError, match="speaks only 2"):
        negotiate_protocol({"PLUGIN_PROTOCOL_VERSIONS": offered})


def test_socket_base_dir_prefers_go_plugin_variable(tmp_path: Path) -> None:
    """PLUGIN_UNIX_SOCKET_DIR wins over TMPDIR; TMPDIR wins over the system default."""
    other = tmp_path / "other"
    other.mkdir()
    env = {"PLUGIN_UNIX_SOCKET_DIR": str(tmp_path), "TMPDIR": str(other)}
    assert socket_base_dir(env) == str(tmp_path)
    assert socket_base_dir({"TMPDIR": str(other)}) == str(other)


def test_make_socket_dir_creates_private_directory(tmp_path: Path) -> None:
    """The socket directory is new, mode 0700, and holds the socket path; remove() deletes it."""
    sockets = make_socket_dir({"PLUGIN_UNIX_SOCKET_DIR": str(tmp_path)})
    assert sockets.directory.parent == tmp_path
    assert stat.S_IMODE(sockets.directory.stat().st_mode) == 0o700
    assert sockets.socket.parent == sockets.directory
    assert len(os.fsencode(str(sockets.socket))) == socket_path_bytes(str(tmp_path))
    sockets.socket.touch()
    sockets.remove()
    assert not sockets.directory.exists()


def test_make_socket_dir_is_fresh_each_time(tmp_path: Path) -> None:
    """Two plugins in the same base directory never share a socket path."""
    env = {"PLUGIN_UNIX_SOCKET_DIR": str(tmp_path)}
    assert make_socket_dir(env).socket != make_socket_dir(env).socket


def test_make_socket_dir_falls_back_when_path_too_long(tmp_path: Path) -> None:
    """A base that would push the path past 107 bytes is replaced by /tmp."""
    long_base = tmp_path / ("x" * (MAX_SOCKET_PATH_BYTES - len(str(tmp_path))))
    long_base.mkdir()
    assert socket_path_bytes(str(long_base)) > MAX_SOCKET_PATH_BYTES
    sockets = make_socket_dir({"PLUGIN_UNIX_SOCKET_DIR": str(long_base)})
    try:
        assert sockets.directory.parent == Path("/tmp")
        assert len(os.fsencode(str(sockets.socket))) <= MAX_SOCKET_PATH_BYTES
    finally:
        sockets.remove()


def test_make_socket_dir_reports_missing_base(tmp_path: Path) -> None:
    """A socket directory that does not exist is a HandshakeError, not a traceback."""
    with pytest.raises(HandshakeError, match="cannot create socket directory"):
        make_socket_dir({"PLUGIN_UNIX_SOCKET_DIR": str(tmp_path / "missing")})


def test_handshake_line_format() -> None:
    """The line is core 1, app 2, unix, the path, grpc, and a newline."""
    assert handshake_line(Path("/run/x/plugin.sock")) == "1|2|unix|/run/x/plugin.sock|grpc\n"


def test_handshake_line_parses_back() -> None:
    """What the server writes, the host's parser reads back field by field."""
    line = handshake_line(Path("/run/x/plugin.sock"))
    parsed = Handshake.parse(line)
    assert (parsed.core_version, parsed.app_version, parsed.network, parsed.address, parsed.protocol) == (
        1, 2, "unix", "/run/x/plugin.sock", "grpc"
    )


def test_make_socket_dir_refuses_when_fallback_too_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When even the fallback directory is too long, no socket directory is made."""
    long_base = str(tmp_path / ("y" * 120))
    monkeypatch.setattr(handshake, "FALLBACK_SOCKET_BASE", long_base)
    with pytest.raises(HandshakeError, match="at most 107 bytes"):
        make_socket_dir({"PLUGIN_UNIX_SOCKET_DIR": long_base})
    assert list(tmp_path.iterdir()) == []


def test_handshake_parse_rejects_bad_lines() -> None:
    """The test host's parser rejects lines Nomad would reject."""
    for line in ["1|2|tcp|127.0.0.1:1|grpc", "1|3|unix|/x|grpc", "1|2|unix|/x", "1|2|unix|/x|netrpc",
                 "2|2|unix|/x|grpc", "1|2|unix|/x|grpc|cert|mux"]:
        with pytest.raises(HandshakeError):
            Handshake.parse(line)
    assert Handshake.parse("1|2|unix|/x|grpc|\n").address == "/x"
