"""Guest side: the agent the host drives over a virtio-serial port, one JSON object per line.

Request ``{"id": 7, "op": "wait_event", "args": {...}}``; reply ``{"id": 7, "ok": true, "result": ...}``
or ``{"id": 7, "ok": false, "error": "...", "traceback": "..."}``. Requests are served one at a time,
in order. When the host closes the port the agent returns and /init powers the guest off.

Ops: the table ``OPS`` at the bottom. The agent has no network and needs none; the host's files
arrive over the 9p share mounted at /mnt/host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import gadget
import nomad_session
import udevlog

PORT_NAME = "ndu.agent"
STARTED = time.monotonic()


def find_port(name: str = PORT_NAME) -> str:
    """/dev node of the virtio-serial port the host named ``name``."""
    for port in sorted(Path("/sys/class/virtio-ports").iterdir()):
        if (port / "name").read_text().strip() == name:
            return f"/dev/{port.name}"
    raise FileNotFoundError(f"no virtio-serial port named {name}")


class Channel:
    """Line-framed JSON over a character device."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR)
        self._buffer = b""

    def receive(self) -> dict[str, Any] | None:
        """The next request, or None when the host went away."""
        while b"\n" not in self._buffer:
            chunk = os.read(self._fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def send(self, message: dict[str, Any]) -> None:
        """Write one reply line (whole, even when the port takes it in pieces)."""
        data = json.dumps(message).encode() + b"\n"
        while data:
            written = os.write(self._fd, data)
            data = data[written:]


class Agent:
    """State that lives across requests: the event log and, later, a running plugin."""

    def __init__(self) -> None:
        self.events = udevlog.EventLog()
        self.events.start()
        self.plugin: Any = None
        self.nomad: nomad_session.NomadSession | None = None

    # --- basics -------------------------------------------------------------------------------
    def op_ping(self) -> dict[str, Any]:
        """Liveness plus when the agent came up (seconds since the kernel started)."""
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return {
            "release": os.uname().release,
            "uptime": uptime,
            "agent_ready_uptime": uptime - (time.monotonic() - STARTED),
            "python": sys.version.split()[0],
        }

    def op_exec(
        self, argv: list[str], timeout: float = 120, input: str | None = None, env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Run a program in the guest (argv list, no shell)."""
        proc = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, **(env or {})},
        )
        return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}

    def op_write_file(self, path: str, content: str, atomic: bool = True) -> None:
        """Write a file; ``atomic`` writes a sibling and renames it over, as editors do."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not atomic:
            target.write_text(content)
            return
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_text(content)
        temporary.replace(target)

    def op_stat(self, paths: list[str]) -> dict[str, dict[str, Any] | None]:
        """For each path: kind and rdev of what it resolves to, or None when it does not exist."""
        result: dict[str, dict[str, Any] | None] = {}
        for path in paths:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                result[path] = None
                continue
            kind = "char" if (st.st_mode & 0o170000) == 0o020000 else (
                "block" if (st.st_mode & 0o170000) == 0o060000 else "dir" if os.path.isdir(path) else "file"
            )
            result[path] = {
                "kind": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                "realpath": os.path.realpath(path),
            }
        return result

    # --- events -------------------------------------------------------------------------------
    def op_mark(self) -> float:
        """Start timing: later waits see only newer events and report seconds since now."""
        return self.events.mark()

    def op_wait_event(self, query: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        """First kernel/udev event since the mark matching ``query``."""
        return self.events.wait(query, timeout)

    def op_events(self) -> list[dict[str, Any]]:
        """All events since the mark."""
        return self.events.since_mark()

    def op_wait_path(self, path: str, exists: bool = True, timeout: float = 30) -> float:
        """Seconds since the mark when ``path`` (dis)appeared (polls every 2 ms: a measurement, not a test)."""
        deadline = time.monotonic() + timeout
        while os.path.lexists(path) != exists:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} {'did not appear' if exists else 'still exists'} after {timeout} s")
            time.sleep(0.002)
        return round(time.monotonic() - self.events.mark_time, 6)

    # --- gadgets (dummy_hcd + configfs) ---------------------------------------------------------
    def op_gadget_load(self, udcs: int = 4) -> list[str]:
        """Load dummy_hcd and libcomposite; the UDC names."""
        return gadget.load(udcs)

    def op_gadget_prepare(self, name: str, **spec: Any) -> str:
        """Load the gadget modules and describe the gadget, unless done before; its configfs path."""
        if not gadget.GADGETS.is_dir():
            gadget.load()
        if (gadget.GADGETS / name).exists():
            return str(gadget.GADGETS / name)
        return gadget.create(name=name, **spec)

    def op_gadget_plug(self, name: str, udc: str | None = None) -> str:
        """Plug a gadget: bind it to a UDC (the first free one by default)."""
        return gadget.plug(name, udc)

    def op_gadget_unplug(self, name: str) -> None:
        """Unbind a gadget (the unplug)."""
        gadget.unplug(name)

    def op_gadget_remove(self, name: str) -> None:
        """Delete a gadget."""
        gadget.remove(name)

    # --- the plugin (plugin_session is imported on first use: it needs the installed plugin) ---
    def _session(self) -> Any:
        if self.plugin is None:
            import plugin_session  # noqa: PLC0415

            self.plugin = plugin_session.PluginSession(self.events)
        return self.plugin

    def op_plugin_start(self, config: dict[str, Any], argv: list[str] | None = None) -> dict[str, Any]:
        """Start the installed plugin under the go-plugin test client, SetConfig, open Fingerprint."""
        return self._session().start(config, argv)

    def op_plugin_wait(self, query: dict[str, Any] | None, timeout: float = 30, since_mark: bool = True) -> Any:
        """First Fingerprint message (since the mark) satisfying ``query``."""
        return self._session().wait(query, timeout, since_mark)

    def op_plugin_latest(self) -> Any:
        """The newest Fingerprint message."""
        return self._session().latest()

    def op_plugin_reserve(self, device_ids: list[str]) -> dict[str, Any]:
        """Reserve ``device_ids``; the answer and what its nodes are in /dev."""
        return self._session().reserve(device_ids)

    def op_plugin_reserve_until(self, device_ids: list[str], node: str, timeout: float = 30) -> dict[str, Any]:
        """Reserve until ``node`` is in the answer (see PluginSession.reserve_until)."""
        return self._session().reserve_until(device_ids, node, timeout)

    def op_plugin_stop(self) -> dict[str, Any]:
        """Shutdown; the exit code."""
        return self._session().stop()

    # --- at scale: timings and checks of reading every device (scale needs the installed plugin) ---
    def op_scale_enumerate(self, rules_file: str, runs: int = 5) -> dict[str, Any]:
        """Discovery.start() against the minimal scan, ``runs`` each, with whatever is plugged in now."""
        import scale  # noqa: PLC0415

        return scale.enumerate_timings(rules_file, runs)

    def op_compare_properties(self) -> dict[str, Any]:
        """Our one-read properties against libudev's for every device under /sys/devices."""
        import scale  # noqa: PLC0415

        return scale.compare_properties()

    def op_find_usb_device(self, serial: str, child_subsystem: str) -> dict[str, Any]:
        """The plugged usb_device with this serial and its node child, as plug_and_wait reports them."""
        import scale  # noqa: PLC0415

        return scale.find_usb_device(serial, child_subsystem)

    def op_compare_reads(self) -> dict[str, Any]:
        """enumerate() against device_at() for every USB device."""
        import scale  # noqa: PLC0415

        return scale.compare_reads()

    def op_record_usb_device(self, serial: str | None = None, vendor_product: str | None = None) -> str:
        """A plugged usb_device and its interfaces as a umockdev recording (see record.py)."""
        import record  # noqa: PLC0415

        return record.record_usb_device(serial, vendor_product)

    def op_record_pci_device(self, slot_name: str) -> str:
        """A plugged PCI function and the devices with a node below it as a umockdev recording."""
        import record  # noqa: PLC0415

        return record.record_pci_device(slot_name)

    # --- a Nomad dev agent with the installed plugin (see nomad_session) -------------------------
    def _nomad(self) -> nomad_session.NomadSession:
        if self.nomad is None:
            self.nomad = nomad_session.NomadSession(self.events)
        return self.nomad

    def op_nomad_start(
        self, binary: str, workdir: str, config: str, plugin_executable: str, plugin_name: str, log_path: str,
        timeout: float = 300,
    ) -> dict[str, Any]:
        """Run ``nomad agent -dev`` with the plugin in its plugin dir; its node ID once the plugin fingerprinted."""
        return self._nomad().start(binary, workdir, config, plugin_executable, plugin_name, log_path, timeout)

    def op_nomad_api(self, method: str, path: str, body: Any = None) -> Any:
        """One request to the agent's HTTP API; the decoded answer."""
        return self._nomad().api(method, path, body)[0]

    def op_nomad_wait_log(self, query: dict[str, Any], timeout: float = 30, after: int = -1) -> dict[str, Any]:
        """The first agent log line since the mark (after line ``after``) with these fields, and when it was logged."""
        return self._nomad().wait_log(query, timeout, after)

    def op_nomad_wait_node_device(
        self, group: list[str], id_contains: str, healthy: bool = True, timeout: float = 30
    ) -> dict[str, Any]:
        """The first node version since the mark that shows the device so in its group."""
        return self._nomad().wait_node_device(group, id_contains, healthy, timeout)

    def op_nomad_wait_list(self, path: str, match: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        """Blocking queries on a list endpoint until an item matches."""
        return self._nomad().wait_list(path, match, timeout)

    def op_nomad_stop(self, purge_jobs: list[str], timeout: float = 120) -> dict[str, Any]:
        """Purge the jobs, SIGINT the agent, wait; its exit code and any leftover process."""
        return self._nomad().stop(purge_jobs, timeout)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request to one reply; an exception becomes an error reply, never a dead agent."""
        handler: Callable[..., Any] | None = getattr(self, f"op_{request.get('op')}", None)
        if handler is None:
            return {"id": request.get("id"), "ok": False, "error": f"unknown op {request.get('op')!r}"}
        try:
            result = handler(**(request.get("args") or {}))
        except Exception as exc:  # top of the request loop: report and keep serving
            return {
                "id": request.get("id"), "ok": False, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        return {"id": request.get("id"), "ok": True, "result": result}


def main() -> int:
    """Serve requests until the host closes the port."""
    agent = Agent()
    channel = Channel(find_port())
    print(f"ndu-agent: serving on {PORT_NAME}", file=sys.stderr, flush=True)
    while True:
        request = channel.receive()
        if request is None:
            print("ndu-agent: host closed the port", file=sys.stderr, flush=True)
            return 0
        channel.send(agent.handle(request))


if __name__ == "__main__":
    sys.exit(main())
