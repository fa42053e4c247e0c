"""Process tier: the real executable against a go-plugin host stand-in.

Each test starts `python -m plugin.main` with the environment a Nomad agent
gives it, and checks the lifecycle contract: handshake line, socket, health,
the go-plugin internal services, Shutdown, signals and stderr format.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from plugin.handshake import MAGIC_COOKIE_KEY
from plugin.host import EXIT_DEADLINE_S, PluginProcess, check_hclog_entry

from proto import (
    grpc_broker_pb2,
    grpc_broker_pb2_grpc,
    grpc_controller_pb2,
    grpc_controller_pb2_grpc,
    grpc_stdio_pb2_grpc,
)


HANDSHAKE_RE = r"^1\|2\|unix\|/[^|\n]+\|grpc\n$"


@pytest.fixture
def socket_base(tmp_path: Path) -> Path:
    """A short private directory for the plugin's socket directory."""
    base = tmp_path / "s"
    base.mkdir()
    return base


@pytest.fixture
def plugin(socket_base: Path) -> Iterator[PluginProcess]:
    """A started plugin whose socket lives under socket_base."""
    with PluginProcess.start(env_extra={"PLUGIN_UNIX_SOCKET_DIR": str(socket_base)}) as proc:
        yield proc


def _sigint_ignored(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    raise AssertionError("no SigIgn line")


def _health(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=EXIT_DEADLINE_S)
    return int(response.status)


def test_handshake_line_is_the_only_stdout_output(plugin: PluginProcess) -> None:
    """stdout carries exactly one line, 1|2|unix|<abs path>|grpc, and nothing after shutdown."""
    assert plugin.shutdown() == 0
    out = plugin.stdout_bytes().decode()
    assert re.match(HANDSHAKE_RE, out), out
    assert out.count("\n") == 1
    print(f"spawn->handshake {plugin.handshake_seconds:.3f} s")


def test_socket_dir_is_private_and_path_fits(plugin: PluginProcess, socket_base: Path) -> None:
    """The socket sits in a fresh 0700 directory under PLUGIN_UNIX_SOCKET_DIR, path <= 107 bytes."""
    sock = plugin.socket_path
    assert sock.parent.parent == socket_base
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert len(os.fsencode(str(sock))) <= 107


def test_socket_dir_falls_back_to_tmp_when_too_long(tmp_path: Path) -> None:
    """A socket dir that would make the path exceed sun_path is replaced by /tmp."""
    long_dir = tmp_path / ("d" * 100)
    long_dir.mkdir()
    with PluginProcess.start(env_extra={"PLUGIN_UNIX_SOCKET_DIR": str(long_dir)}) as plugin:
        assert plugin.socket_path.parent.parent == Path("/tmp")
        assert plugin.shutdown() == 0
        assert not plugin.socket_path.parent.exists()


def test_socket_dir_uses_tmpdir_without_go_plugin_variable(tmp_path: Path) -> None:
    """Without PLUGIN_UNIX_SOCKET_DIR the socket goes under TMPDIR, like Go plugins."""
    env = {"PLUGIN_UNIX_SOCKET_DIR": None, "TMPDIR": str(tmp_path)}
    with PluginProcess.start(env_extra=env) as plugin:
        assert plugin.socket_path.parent.parent == tmp_path
        assert plugin.shutdown() == 0


@pytest.mark.parametrize("service", ["plugin", ""], ids=["plugin", "overall"])
def test_health_reports_serving(plugin: PluginProcess, service: str) -> None:
    """grpc.health.v1 reports service `plugin` and the server overall as SERVING."""
    assert _health(plugin.channel, service) == health_pb2.HealthCheckResponse.SERVING


def test_stream_stdio_stays_open_until_cancelled(plugin: PluginProcess) -> None:
    """StreamStdio sends nothing and stays open; the client's cancel ends it."""
    stub = grpc_stdio_pb2_grpc.GRPCStdioStub(plugin.channel)
    call = stub.StreamStdio(empty_pb2.Empty())
    # A full round trip on the same connection after the stream opened.
    assert _health(plugin.channel, "plugin") == health_pb2.HealthCheckResponse.SERVING
    assert not call.done()
    call.cancel()
    with pytest.raises(grpc.RpcError) as err:
        next(call)
    assert err.value.code() == grpc.StatusCode.CANCELLED


def test_shutdown_ends_open_streams_and_exits(plugin: PluginProcess) -> None:
    """Shutdown answers, ends the open stdio and broker streams, exits 0 and removes the socket dir."""
    stdio = grpc_stdio_pb2_grpc.GRPCStdioStub(plugin.channel).StreamStdio(empty_pb2.Empty())
    host_done = threading.Event()

    def host_side() -> Iterator[grpc_broker_pb2.ConnInfo]:
        yield grpc_broker_pb2.ConnInfo(service_id=1)
        host_done.wait(EXIT_DEADLINE_S)  # keep the host's half open, as Nomad does

    broker = grpc_broker_pb2_grpc.GRPCBrokerStub(plugin.channel).StartStream(host_side())
    assert _health(plugin.channel, "plugin") == health_pb2.HealthCheckResponse.SERVING
    sock_dir = plugin.socket_path.parent
    controller = grpc_controller_pb2_grpc.GRPCControllerStub(plugin.channel)
    controller.Shutdown(grpc_controller_pb2.Empty(), timeout=EXIT_DEADLINE_S)
    # Both end with OK from the server's side, not by a cancel after the grace time.
    assert list(stdio) == []
    assert list(broker) == []
    host_done.set()
    assert plugin.wait() == 0
    assert not sock_dir.exists()
    plugin.wait_for_entry(lambda e: e["@message"] == "plugin stopped" and e.get("reason") == "shutdown rpc")


def test_broker_stream_drains_without_answering(plugin: PluginProcess) -> None:
    """StartStream reads the host's messages, sends none, and ends when the host closes its side."""
    stub = grpc_broker_pb2_grpc.GRPCBrokerStub(plugin.channel)
    replies = stub.StartStream(iter([grpc_broker_pb2.ConnInfo(service_id=n) for n in range(3)]))
    assert list(replies) == []


@pytest.mark.parametrize("cookie", [None, "wrong"], ids=["missing", "wrong"])
def test_without_cookie_explains_and_exits_1(cookie: str | None) -> None:
    """Run by hand: exit 1, a human message on stderr naming plugin_dir and --help, empty stdout."""
    plugin = PluginProcess.spawn(env_extra={MAGIC_COOKIE_KEY: cookie})
    with plugin:
        assert plugin.wait() == 1
        assert plugin.stdout_bytes() == b""
        message = plugin.stderr_text()
        assert "Nomad" in message and "plugin_dir" in message
        assert "nomad-device-usb --help" in message


def test_protocol_without_version_2_exits_1() -> None:
    """A host that does not offer protocol 2 gets no handshake and exit 1."""
    with PluginProcess.spawn(env_extra={"PLUGIN_PROTOCOL_VERSIONS": "1,3"}) as plugin:
        assert plugin.wait() == 1
        assert plugin.stdout_bytes() == b""
        plugin.wait_for_entry(lambda e: e["@level"] == "error")


def test_sigint_is_ignored(plugin: PluginProcess) -> None:
    """SIGINT is ignored at the kernel level and the plugin keeps serving after one."""
    assert _sigint_ignored(plugin.proc.pid)
    plugin.send_signal(signal.SIGINT)
    assert _health(plugin.channel, "plugin") == health_pb2.HealthCheckResponse.SERVING
    assert plugin.proc.poll() is None
    assert plugin.shutdown() == 0


def test_sigterm_stops_cleanly(plugin: PluginProcess) -> None:
    """SIGTERM stops the server, removes the socket directory and exits 0."""
    stdio = grpc_stdio_pb2_grpc.GRPCStdioStub(plugin.channel).StreamStdio(empty_pb2.Empty())
    assert _health(plugin.channel, "plugin") == health_pb2.HealthCheckResponse.SERVING
    sock_dir = plugin.socket_path.parent
    plugin.send_signal(signal.SIGTERM)
    assert plugin.wait() == 0
    assert list(stdio) == []
    assert not sock_dir.exists()
    plugin.wait_for_entry(lambda e: e["@message"] == "plugin stopped" and e.get("reason") == "sigterm")


def test_every_stderr_line_is_hclog_json(plugin: PluginProcess) -> None:
    """Every stderr line of a whole run is a JSON object with string @level/@message/@timestamp."""
    assert _health(plugin.channel, "plugin") == health_pb2.HealthCheckResponse.SERVING
    assert plugin.shutdown() == 0
    lines = plugin.stderr_lines()
    assert lines, "expected some log lines"
    for line in lines:
        check_hclog_entry(json.loads(line))
    assert plugin.bad_stderr_lines == []
