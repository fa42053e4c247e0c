"""A small QEMU Machine Protocol client: JSON lines over a unix socket, commands and events.

QEMU connects to a socket we listen on (``-chardev socket,path=...`` without ``server``), so there is
no race between QEMU creating its socket and us dialling it. The client sends ``qmp_capabilities``,
then one command at a time; asynchronous events that arrive meanwhile are kept for ``wait_event``.
"""

from __future__ import annotations

import json
import select
import socket
import time
from typing import Any, Callable


class QMPError(RuntimeError):
    """QEMU answered a command with an error, or the connection broke."""


class QMP:
    """One QMP session on an already connected socket."""

    def __init__(self, sock: socket.socket, timeout: float = 30) -> None:
        self._sock = sock
        self._buffer = b""
        self.events: list[dict[str, Any]] = []
        greeting = self._read_message(time.monotonic() + timeout)
        if "QMP" not in greeting:
            raise QMPError(f"not a QMP greeting: {greeting}")
        self.version = greeting["QMP"]["version"]["qemu"]
        self.execute("qmp_capabilities", timeout=timeout)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("QMP: no message before the deadline")
            ready, _, _ = select.select([self._sock], [], [], remaining)
            if ready:
                chunk = self._sock.recv(65536)
                if not chunk:
                    raise QMPError("QMP: QEMU closed the connection")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def execute(self, command: str, arguments: dict[str, Any] | None = None, timeout: float = 30) -> Any:
        """Run a command and return its ``return`` value; QMPError with QEMU's text on failure."""
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if "event" in message:
                self.events.append(message)
            elif "error" in message:
                error = message["error"]
                raise QMPError(f"{command} {arguments or {}}: {error.get('class')}: {error.get('desc')}")
            elif "return" in message:
                return message["return"]

    def wait_event(
        self, name: str, match: Callable[[dict[str, Any]], bool] = lambda data: True, timeout: float = 30
    ) -> dict[str, Any]:
        """The first unconsumed event called ``name`` whose data satisfies ``match``; it is consumed."""
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self.events):
                if event["event"] == name and match(event.get("data", {})):
                    return self.events.pop(index)
            message = self._read_message(deadline)
            if "event" in message:
                self.events.append(message)

    def close(self) -> None:
        """Drop the connection (QEMU keeps running)."""
        self._sock.close()
