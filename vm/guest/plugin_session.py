"""Guest side: the real plugin, installed in the guest's venv, run by our go-plugin test client.

The agent plays the Nomad agent's part: it starts the executable with go-plugin's environment
(``plugin.host``, installed with the plugin wheel), sends SetConfig, keeps the Fingerprint stream
open in a thread and records every message with its arrival time, and calls Reserve. The host asks
questions about that record ("wait until group G shows device D unhealthy") and gets plain JSON.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Mapping

import grpc
import plugin.host as goplugin_client  # installed with the plugin wheel
from plugin.config import encode_config
from proto import base_pb2, base_pb2_grpc, device_pb2, device_pb2_grpc

import udevlog
from queries import find, fingerprint_to_json

EXECUTABLE = "/opt/nomad-device-usb/bin/nomad-device-usb"
HANDSHAKE_DEADLINE = 180.0  # importing grpc under emulation on a loaded machine is slow


class PluginSession:
    """One plugin process and its open Fingerprint stream."""

    def __init__(self, events: udevlog.EventLog) -> None:
        self._events = events
        self._process: goplugin_client.PluginProcess | None = None
        self._messages: list[tuple[float, list[dict[str, Any]]]] = []
        self._stream_error: str | None = None
        self._changed = threading.Condition()

    def start(self, config: Mapping[str, Any], argv: list[str] | None = None) -> dict[str, Any]:
        """Launch, handshake, SetConfig, open Fingerprint; seconds each step took."""
        if self._process is not None:
            raise RuntimeError("the plugin is already running")
        with self._changed:
            self._messages.clear()
            self._stream_error = None
        started = time.monotonic()
        process = goplugin_client.PluginProcess.start(
            argv or [EXECUTABLE], handshake_deadline=HANDSHAKE_DEADLINE
        )
        self._process = process
        handshake = time.monotonic() - started
        try:
            base = base_pb2_grpc.BasePluginStub(process.channel)
            info = base.PluginInfo(base_pb2.PluginInfoRequest(), timeout=60)
            base.SetConfig(base_pb2.SetConfigRequest(msgpack_config=encode_config(dict(config))), timeout=60)
            configured = time.monotonic() - started
            stream = device_pb2_grpc.DevicePluginStub(process.channel).Fingerprint(device_pb2.FingerprintRequest())
            threading.Thread(target=self._read_stream, args=(stream,), daemon=True, name="fingerprint").start()
            self.wait(None, timeout=HANDSHAKE_DEADLINE, since_mark=False)
        except BaseException:
            self._process = None
            process.kill()  # a plugin that failed to come up must not linger in the guest
            raise
        return {
            "name": info.name,
            "version": info.plugin_version,
            "handshake_s": round(handshake, 3),
            "configured_s": round(configured, 3),
            "first_fingerprint_s": round(time.monotonic() - started, 3),
            "pid": process.proc.pid,
        }

    def _read_stream(self, stream: Any) -> None:
        try:
            for message in stream:
                groups = fingerprint_to_json(message)
                with self._changed:
                    self._messages.append((time.monotonic(), groups))
                    self._changed.notify_all()
        except grpc.RpcError as exc:
            with self._changed:
                self._stream_error = f"{exc.code().name}: {exc.details()}"
                self._changed.notify_all()
            return
        with self._changed:
            self._stream_error = "the Fingerprint stream ended (Nomad would disable the plugin)"
            self._changed.notify_all()

    def wait(self, query: Mapping[str, Any] | None, timeout: float = 30, since_mark: bool = True) -> dict[str, Any]:
        """The first Fingerprint message (after the mark) satisfying ``query`` (None: any message).

        Returns ``dt`` (seconds since the mark), the match, and the whole message.
        """
        mark = self._events.mark_time
        deadline = time.monotonic() + timeout
        index = 0
        with self._changed:
            if not since_mark and self._messages:
                index = len(self._messages) - 1  # the current state counts too
            while True:
                while index < len(self._messages):
                    t, groups = self._messages[index]
                    index += 1
                    if since_mark and t < mark:
                        continue
                    hit = {"group": None, "device": None} if query is None else find(groups, query)
                    if hit is not None:
                        return {"dt": round(t - mark, 6), **hit, "groups": groups}
                if self._stream_error:
                    raise RuntimeError(f"{self._stream_error}; stderr: {self.stderr_tail()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    last = self._messages[-1][1] if self._messages else None
                    raise TimeoutError(
                        f"no Fingerprint message satisfying {dict(query or {})} within {timeout} s; "
                        f"last message: {last}; stderr: {self.stderr_tail()}"
                    )
                self._changed.wait(remaining)

    def latest(self) -> list[dict[str, Any]] | None:
        """The newest Fingerprint message."""
        with self._changed:
            return self._messages[-1][1] if self._messages else None

    def reserve(self, device_ids: list[str]) -> dict[str, Any]:
        """Reserve, plus what each device node in the answer is in the guest's /dev (None: absent)."""
        assert self._process is not None, "plugin not started"
        stub = device_pb2_grpc.DevicePluginStub(self._process.channel)
        try:
            response = stub.Reserve(device_pb2.ReserveRequest(device_ids=device_ids), timeout=60)
        except grpc.RpcError as exc:
            return {"error": {"code": exc.code().name, "details": exc.details()}}
        res = response.container_res
        nodes = {}
        for spec in res.devices:
            try:
                st = os.stat(spec.host_path)
            except FileNotFoundError:
                nodes[spec.host_path] = None
                continue
            nodes[spec.host_path] = {
                "char": (st.st_mode & 0o170000) == 0o020000,
                "block": (st.st_mode & 0o170000) == 0o060000,
                "major": os.major(st.st_rdev),
                "minor": os.minor(st.st_rdev),
            }
        return {
            "envs": dict(res.envs),
            "mounts": [{"task_path": m.task_path, "host_path": m.host_path, "read_only": m.read_only} for m in res.mounts],
            "devices": [
                {"task_path": d.task_path, "host_path": d.host_path, "permissions": d.permissions} for d in res.devices
            ],
            "nodes": nodes,
        }

    def reserve_until(self, device_ids: list[str], node: str, timeout: float = 30) -> dict[str, Any]:
        """Reserve again until ``node`` is in the answer (or an answer is wrong, or time is up).

        A device's child can appear well after the device (usb-storage waits a second before its
        SCSI scan), and the plugin publishes nothing new when only a child arrives: retrying Reserve
        is how a caller can tell when the plugin has seen it. Every answer is returned as soon as it
        names a node that does not exist, so a wrong answer is never retried away.
        """
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            answer = self.reserve(device_ids)
            answer.update(attempts=attempts, seconds=round(time.monotonic() - started, 3))
            if "error" in answer or None in answer["nodes"].values() or node in answer["nodes"]:
                return answer
            if time.monotonic() - started > timeout:
                return answer
            time.sleep(0.05)  # a pause between RPCs, not a wait for a condition we could watch

    def stderr_tail(self, lines: int = 30) -> str:
        """The plugin's last stderr lines."""
        if self._process is None:
            return ""
        return "\n".join(self._process.stderr_text().splitlines()[-lines:])

    def stop(self) -> dict[str, Any]:
        """Shutdown over GRPCController and wait for the exit; the exit code and stderr tail."""
        process, self._process = self._process, None
        if process is None:
            return {"exit_code": None}
        try:
            code = process.shutdown(timeout=60)
        except grpc.RpcError:
            code = process.wait(60)  # the process may exit before the answer reaches us
        finally:
            process.kill()
        return {"exit_code": code, "stderr": "\n".join(process.stderr_text().splitlines()[-30:])}
