"""Process tier: a plugin left behind by its agent exits unless it is the long-lived instance serving devices."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import grpc

from discovery.fake.testbed import Testbed
from plugin.config import encode_config
from plugin.handshake import Handshake
from plugin.host import PLUGIN_ARGV, plugin_env
from proto import base_pb2, base_pb2_grpc, device_pb2, device_pb2_grpc, grpc_controller_pb2, grpc_controller_pb2_grpc

# A stand-in agent: starts the plugin, passes on its handshake line and PID, exits when told to.
PARENT = """
import subprocess, sys
plugin = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
sys.stdout.write(plugin.stdout.readline().decode() + f"{plugin.pid}\\n"); sys.stdout.flush()
sys.stdin.readline()
"""


def process_gone(pid: int) -> bool:
    """Exited (or a zombie waiting for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def exits_within(pid: int, timeout: float) -> bool:
    """Wait for a process that is not our child to end: its pidfd turns readable when it does."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(int(timeout * 1000)))
    finally:
        os.close(fd)


def start_under_parent(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], grpc.Channel, int]:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, *PLUGIN_ARGV],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    assert parent.stdout is not None
    handshake = Handshake.parse(parent.stdout.readline().decode())
    pid = int(parent.stdout.readline())
    return parent, grpc.insecure_channel(f"unix:{handshake.address}"), pid


def test_orphaned_plugin_exits_only_if_it_never_served(testbed: Testbed) -> None:
    """After the agent dies, an instance that never served devices exits; the serving one stays for reattach."""
    env = plugin_env(testbed.env())
    idle_parent, idle_channel, idle_pid = start_under_parent(env)
    serving_parent, channel, serving_pid = start_under_parent(env)
    try:
        base_pb2_grpc.BasePluginStub(channel).SetConfig(
            base_pb2.SetConfigRequest(msgpack_config=encode_config({})), timeout=10
        )
        stream = device_pb2_grpc.DevicePluginStub(channel).Fingerprint(device_pb2.FingerprintRequest())
        next(stream)
        for parent in (idle_parent, serving_parent):
            parent.communicate(b"exit\n", timeout=10)  # the "agent" dies; both plugins are orphans now
        assert exits_within(idle_pid, 15.0), "the never-served plugin stayed behind"
        assert not process_gone(serving_pid)
        info = base_pb2_grpc.BasePluginStub(channel).PluginInfo(base_pb2.PluginInfoRequest(), timeout=10)
        assert info.name == "nomad-device-usb"
        stream.cancel()
        grpc_controller_pb2_grpc.GRPCControllerStub(channel).Shutdown(grpc_controller_pb2.Empty(), timeout=10)
        assert exits_within(serving_pid, 5.0)
    finally:
        for pid in (idle_pid, serving_pid):
            if not process_gone(pid):
                os.kill(pid, signal.SIGKILL)
        idle_channel.close()
        channel.close()
