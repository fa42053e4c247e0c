"""A small go-plugin host: start the real plugin executable and talk to it as a Nomad client does.

The demo, the benchmarks, the VM tier and the process-tier tests all drive the plugin through it,
so they exercise the same handshake and wire as a real agent. It does what a Nomad agent does at
launch: set go-plugin's environment, read the handshake line from stdout within a deadline, check
its fields (with plugin.handshake, the module the server writes it with), and dial the Unix socket
it names. stdout and stderr are collected by background threads; stderr lines are parsed as hclog
JSON as they arrive.

    with PluginProcess.start(PLUGIN_ARGV) as plugin:
        stub = health_pb2_grpc.HealthStub(plugin.channel)
        ...
        assert plugin.shutdown() == 0
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import grpc

from plugin.handshake import (
    APP_PROTOCOL_VERSION,
    MAGIC_COOKIE_KEY,
    MAGIC_COOKIE_VALUE,
    PROTOCOL_VERSIONS_KEY,
    Handshake,
    HandshakeError,
)
from proto import (
    base_pb2,
    base_pb2_grpc,
    device_pb2,
    device_pb2_grpc,
    grpc_controller_pb2,
    grpc_controller_pb2_grpc,
)

PLUGIN_ARGV = [sys.executable, "-m", "plugin.main"]
# What a Nomad agent sets (go-plugin's defaults for the port range). The cookie's value is pinned
# by tests/unit/test_handshake.py, so a typo in plugin.handshake cannot pass unnoticed.
GO_PLUGIN_ENV = {
    MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE,
    PROTOCOL_VERSIONS_KEY: str(APP_PROTOCOL_VERSION),
    "PLUGIN_MIN_PORT": "10000",
    "PLUGIN_MAX_PORT": "25000",
}
HANDSHAKE_DEADLINE_S = 10.0  # the handshake line comes about 0.2 s after the start
EXIT_DEADLINE_S = 10.0
CONNECT_DEADLINE_S = 10.0
HCLOG_LEVELS = {"trace", "debug", "info", "warn", "error"}
HCLOG_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$")


RPC_DEADLINE_S = 10.0
# What a failed call raises; callers catch this instead of importing grpc themselves.
RpcError = grpc.RpcError


class FingerprintStream:
    """The Fingerprint stream read by a background thread, so a test can wait with a deadline."""

    def __init__(self, stub: device_pb2_grpc.DevicePluginStub) -> None:
        self._call = stub.Fingerprint(device_pb2.FingerprintRequest())
        self._messages: list[tuple[float, device_pb2.FingerprintResponse]] = []
        self._cond = threading.Condition()
        self._taken = 0
        self.error: grpc.RpcError | None = None
        self.ended = False
        threading.Thread(target=self._read, name="fingerprint-reader", daemon=True).start()

    def _read(self) -> None:
        try:
            for message in self._call:
                with self._cond:
                    self._messages.append((time.monotonic(), message))
                    self._cond.notify_all()
        except grpc.RpcError as exc:
            self.error = exc
        with self._cond:
            self.ended = True
            self._cond.notify_all()

    def next_message(self, timeout: float) -> device_pb2.FingerprintResponse | None:
        """The next unread message, or None when none arrives within ``timeout``."""
        timed = self.next_timed(timeout)
        return None if timed is None else timed[1]

    def next_timed(self, timeout: float) -> tuple[float, device_pb2.FingerprintResponse] | None:
        """Like next_message, with the monotonic time the message arrived."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._messages) > self._taken or self.ended, timeout)
            if len(self._messages) > self._taken:
                self._taken += 1
                return self._messages[self._taken - 1]
            return None

    def wait_for(
        self, predicate: Callable[[device_pb2.FingerprintResponse], bool], timeout: float
    ) -> device_pb2.FingerprintResponse | None:
        """Read messages until one satisfies ``predicate``; None when the deadline passes first."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.next_message(left)
            if message is not None and predicate(message):
                return message
        return None

    @property
    def count(self) -> int:
        with self._cond:
            return len(self._messages)

    def cancel(self) -> None:
        self._call.cancel()


def plugin_env(env_extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The agent's environment plus go-plugin's variables; a None value removes a key."""
    env = dict(os.environ)
    env.update(GO_PLUGIN_ENV)
    for key, value in (env_extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def check_hclog_entry(entry: Any) -> None:
    """Raise AssertionError unless `entry` is an hclog JSON object the agent accepts."""
    assert isinstance(entry, dict), f"not a JSON object: {entry!r}"
    for key in ("@level", "@message", "@timestamp"):
        assert isinstance(entry.get(key), str), f"{key} is not a string in {entry!r}"
    assert entry["@level"] in HCLOG_LEVELS, entry
    assert HCLOG_TIMESTAMP.match(entry["@timestamp"]), entry


class _Collector:
    """Reads a pipe to EOF on a thread; lets callers wait for conditions on what came."""

    def __init__(self, pipe: Any, on_line: Callable[[bytes], None] | None = None) -> None:
        self.data = bytearray()
        self.lines: list[bytes] = []
        self.eof = False
        self._cond = threading.Condition()
        self._pipe = pipe
        self._on_line = on_line
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        partial = b""
        while True:
            chunk = self._pipe.read1(65536)
            if not chunk:
                break
            with self._cond:
                self.data += chunk
                partial += chunk
                *complete, partial = partial.split(b"\n")
                self.lines.extend(complete)
                self._cond.notify_all()
            for line in complete:
                if self._on_line is not None:
                    self._on_line(line)
        with self._cond:
            if partial:
                self.lines.append(partial)
            self.eof = True
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class PluginProcess:
    """A running plugin process with its handshake, channel and collected output."""

    def __init__(self, proc: subprocess.Popen[bytes], started: float) -> None:
        self.proc = proc
        self.started = started
        self.handshake: Handshake | None = None
        self.handshake_seconds: float | None = None
        self._channel: grpc.Channel | None = None
        self.entries: list[dict[str, Any]] = []
        self.bad_stderr_lines: list[bytes] = []
        self._entries_cond = threading.Condition()
        assert proc.stdout is not None and proc.stderr is not None
        self._stdout = _Collector(proc.stdout)
        self._stderr = _Collector(proc.stderr, self._parse_stderr_line)

    # -- starting ---------------------------------------------------------

    @classmethod
    def spawn(
        cls,
        argv: list[str] | None = None,
        env_extra: Mapping[str, str | None] | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> PluginProcess:
        """Start the executable without waiting for the handshake."""
        started = time.monotonic()
        proc = subprocess.Popen(
            argv or PLUGIN_ARGV,
            env=dict(env) if env is not None else plugin_env(env_extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        return cls(proc, started)

    @classmethod
    def start(
        cls,
        argv: list[str] | None = None,
        env_extra: Mapping[str, str | None] | None = None,
        *,
        handshake_deadline: float = HANDSHAKE_DEADLINE_S,
    ) -> PluginProcess:
        """Start the executable, read and check its handshake, and dial its socket."""
        plugin = cls.spawn(argv, env_extra)
        try:
            plugin.read_handshake(handshake_deadline)
            plugin.wait_connected()
        except BaseException:
            plugin.kill()
            raise
        return plugin

    def read_handshake(self, deadline: float = HANDSHAKE_DEADLINE_S) -> Handshake:
        """Wait for the first stdout line (or exit) and parse it."""
        got_line = self._stdout.wait_for(
            lambda: bool(self._stdout.lines) or self._stdout.eof, deadline
        )
        if not got_line:
            raise HandshakeError(f"no handshake line within {deadline} s")
        if not self._stdout.lines:
            self.wait(EXIT_DEADLINE_S)
            raise HandshakeError(
                f"plugin exited with {self.proc.returncode} before the handshake; "
                f"stderr: {self.stderr_text()!r}"
            )
        self.handshake_seconds = time.monotonic() - self.started
        self.handshake = Handshake.parse(self._stdout.lines[0].decode())
        return self.handshake

    @property
    def socket_path(self) -> Path:
        assert self.handshake is not None, "no handshake yet"
        return Path(self.handshake.address)

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(f"unix:{self.socket_path}")
        return self._channel

    def wait_connected(self, deadline: float = CONNECT_DEADLINE_S) -> None:
        grpc.channel_ready_future(self.channel).result(timeout=deadline)

    # -- output -----------------------------------------------------------

    def _parse_stderr_line(self, line: bytes) -> None:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        with self._entries_cond:
            if isinstance(entry, dict):
                self.entries.append(entry)
            else:
                self.bad_stderr_lines.append(line)
            self._entries_cond.notify_all()

    def wait_for_entry(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = EXIT_DEADLINE_S
    ) -> dict[str, Any]:
        """Wait until a stderr log entry satisfies `predicate`; return it."""
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = [e for e in self.entries if predicate(e)]
            return bool(found)

        with self._entries_cond:
            if not self._entries_cond.wait_for(seen, timeout):
                raise AssertionError(f"no matching log entry; stderr: {self.stderr_text()!r}")
        return found[0]

    def stdout_bytes(self) -> bytes:
        """Everything the plugin wrote to stdout; complete once the process has exited."""
        return bytes(self._stdout.data)

    def stderr_text(self) -> str:
        return bytes(self._stderr.data).decode(errors="replace")

    def stderr_lines(self) -> list[bytes]:
        return list(self._stderr.lines)

    # -- stopping ---------------------------------------------------------

    def wait(self, timeout: float = EXIT_DEADLINE_S) -> int:
        """Wait for exit and for both pipes to reach EOF (as go-plugin >= 1.7 does)."""
        code = self.proc.wait(timeout)
        self._stdout.join(timeout)
        self._stderr.join(timeout)
        return code

    # -- the calls a Nomad client makes -------------------------------------

    def plugin_info(self) -> base_pb2.PluginInfoResponse:
        return base_pb2_grpc.BasePluginStub(self.channel).PluginInfo(base_pb2.PluginInfoRequest(), timeout=RPC_DEADLINE_S)

    def config_schema(self) -> base_pb2.ConfigSchemaResponse:
        return base_pb2_grpc.BasePluginStub(self.channel).ConfigSchema(
            base_pb2.ConfigSchemaRequest(), timeout=RPC_DEADLINE_S
        )

    def set_config(self, msgpack_config: bytes) -> None:
        base_pb2_grpc.BasePluginStub(self.channel).SetConfig(
            base_pb2.SetConfigRequest(msgpack_config=msgpack_config, plugin_api_version="v0.1.0"),
            timeout=RPC_DEADLINE_S,
        )

    def fingerprint(self) -> FingerprintStream:
        """Open the Fingerprint stream; read it with ``next_message(timeout)``."""
        return FingerprintStream(device_pb2_grpc.DevicePluginStub(self.channel))

    def reserve(self, device_ids: list[str]) -> device_pb2.ReserveResponse:
        return device_pb2_grpc.DevicePluginStub(self.channel).Reserve(
            device_pb2.ReserveRequest(device_ids=device_ids), timeout=RPC_DEADLINE_S
        )

    def stats(self, interval_s: float = 1.0) -> Any:
        """Open the Stats stream at ``interval_s``; an iterator of StatsResponse."""
        request = device_pb2.StatsRequest()
        request.collection_interval.FromNanoseconds(int(interval_s * 1e9))
        return device_pb2_grpc.DevicePluginStub(self.channel).Stats(request)

    def shutdown(self, timeout: float = EXIT_DEADLINE_S) -> int:
        """Call GRPCController.Shutdown, close the channel, wait for exit; return the code."""
        stub = grpc_controller_pb2_grpc.GRPCControllerStub(self.channel)
        stub.Shutdown(grpc_controller_pb2.Empty(), timeout=timeout)
        self.close_channel()
        return self.wait(timeout)

    def send_signal(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def kill(self) -> None:
        """Last resort: SIGKILL the process and reap it."""
        self.close_channel()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(EXIT_DEADLINE_S)
        self._stdout.join(EXIT_DEADLINE_S)
        self._stderr.join(EXIT_DEADLINE_S)

    def __enter__(self) -> PluginProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
