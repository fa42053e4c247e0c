"""A real Nomad cluster on loopback: one server and two clients, each client's plugin in its own fake udev world.

Nothing here is Nomad's: it writes agent configurations, starts the ``nomad`` binary the operator
built (found by ``vm.nomad.find_nomad``), and talks to the agents over their HTTP API. Each client gets the
real plugin executable in its plugin dir through a small wrapper that puts the plugin (and only
the plugin) into that client's umockdev world.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from discovery.fake.testbed import Testbed

PLUGIN_NAME = "nomad-device-usb"
START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 30.0
# Variables of the test process that must not reach the agents: the agents live in the real world.
_WORLD_VARS = ("LD_PRELOAD", "UMOCKDEV_DIR", "NOMAD_ADDR", "NOMAD_TOKEN")


def plugin_executable() -> str:
    """The installed console script of this checkout's virtualenv."""
    script = Path(sys.executable).parent / PLUGIN_NAME
    if not script.exists():
        raise RuntimeError(f"{script} is missing: run scripts/bootstrap")
    return str(script)


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; held together so they are distinct."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class NomadError(RuntimeError):
    """The HTTP API answered with an error status."""


class Api:
    """Nomad's HTTP API on one agent; blocking queries return the new index too."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> tuple[Any, int]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                index = int(response.headers.get("X-Nomad-Index") or 0)
        except urllib.error.HTTPError as exc:
            raise NomadError(f"{method} {path}: {exc.code} {exc.read().decode(errors='replace')}") from None
        content_type = response.headers.get("Content-Type", "")
        return (json.loads(raw) if raw and "json" in content_type else raw.decode(errors="replace")), index

    def get(self, path: str, *, index: int = 0, wait_s: float = 0) -> tuple[Any, int]:
        if index:
            sep = "&" if "?" in path else "?"
            path = f"{path}{sep}index={index}&wait={int(wait_s * 1000)}ms"
        return self.call("GET", path, timeout=wait_s + 30.0)

    def watch(self, path: str, predicate: Callable[[Any], Any], timeout: float) -> tuple[Any, float]:
        """Blocking queries on ``path`` until ``predicate(body)`` is truthy: (its value, wall time seen)."""
        deadline = time.monotonic() + timeout
        index = 0
        last: Any = None
        while (left := deadline - time.monotonic()) > 0:
            body, new_index = self.get(path, index=index, wait_s=min(left, 5.0))
            seen = time.time()
            last = body
            value = predicate(body)
            if value:
                return value, seen
            index = new_index if new_index > index else index
        raise TimeoutError(f"{path}: condition not met in {timeout:.0f} s; last answer: {str(last)[:600]}")


@dataclass
class Agent:
    """One running ``nomad agent`` with its directories and log."""

    name: str
    directory: Path
    http_port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def api(self) -> Api:
        return Api(self.http_port)

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def stop(self) -> None:
        """SIGINT, as an operator's Ctrl-C; the agent stops its plugins. Killed if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# hclog's time layout in the agent's log (plugin entries carry the plugin's own as timestamp=...).
_TIMESTAMP = re.compile(r"timestamp=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)(Z|[+-]\d{4})")


def plugin_entry_times(agent: Agent, message: str) -> list[float]:
    """Wall times of the plugin's log entries ``message`` in the agent's log, by the plugin's own clock."""
    times = []
    for line in agent.log_lines():
        if f"{PLUGIN_NAME}: {message}" not in line:
            continue
        found = _TIMESTAMP.search(line)
        if found:
            zone = "+0000" if found.group(2) == "Z" else found.group(2)
            times.append(datetime.strptime(found.group(1) + zone, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp())
    return times


@dataclass
class Client:
    """A client agent, its node ID and the fake udev world its plugin lives in."""

    agent: Agent
    world: Testbed
    node_id: str = ""


@dataclass
class Cluster:
    """Server and clients, started by :func:`start_cluster`."""

    server: Agent
    clients: dict[str, Client]
    root: Path
    jobs: list[str] = field(default_factory=list)

    @property
    def api(self) -> Api:
        return self.server.api

    def node(self, client: str) -> dict[str, Any]:
        body, _ = self.api.get(f"/v1/node/{self.clients[client].node_id}")
        return body

    def run_job(self, hcl: str) -> str:
        """Parse the job file as the server would and register it; returns the job ID."""
        job, _ = self.api.call("POST", "/v1/jobs/parse", {"JobHCL": hcl, "Canonicalize": True})
        self.api.call("POST", "/v1/jobs", {"Job": job})
        self.jobs.append(job["ID"])
        return job["ID"]

    def stop_job(self, job_id: str) -> None:
        self.api.call("DELETE", f"/v1/job/{job_id}?purge=true")

    def stop(self) -> None:
        for job_id in self.jobs:
            try:
                self.stop_job(job_id)
            except (NomadError, OSError):
                pass
        for job_id in self.jobs:  # stopped jobs first: agents stopped by SIGINT leave tasks running
            _wait_allocs_stopped(self.api, job_id)
        for client in self.clients.values():
            client.agent.stop()
        self.server.stop()
        _unmount_below(self.root)


def _wait_allocs_stopped(api: Api, job_id: str, timeout: float = 30.0) -> None:
    """Blocking queries until no allocation of the job runs; teardown goes on regardless after ``timeout``."""
    try:
        api.watch(f"/v1/job/{job_id}/allocations",
                  lambda allocs: all(a["ClientStatus"] not in ("running", "pending") for a in allocs), timeout)
    except (NomadError, OSError, TimeoutError):
        return


def _unmount_below(root: Path) -> None:
    """Nomad mounts a secrets tmpfs (and more, for exec) in each task dir; unmount them, deepest first."""
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    prefix = str(root) + "/"
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _hcl_string(value: str) -> str:
    return json.dumps(value)  # an HCL string literal is a JSON string literal for plain text


def _common_config(name: str, directory: Path, ports: list[int]) -> str:
    http, rpc, serf = ports
    return f"""\
name = {_hcl_string(name)}
data_dir = {_hcl_string(str(directory / "data"))}
bind_addr = "127.0.0.1"
log_level = "DEBUG"
disable_update_check = true
ports {{
  http = {http}
  rpc  = {rpc}
  serf = {serf}
}}
advertise {{
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}}
"""


def _client_config(name: str, directory: Path, ports: list[int], server_rpc: int, rules_file: Path) -> str:
    return _common_config(name, directory, ports) + f"""\
plugin_dir = {_hcl_string(str(directory / "plugins"))}
client {{
  enabled = true
  servers = ["127.0.0.1:{server_rpc}"]
  network_interface = "lo"
  options = {{
    # The cloud fingerprinters would ask link-local metadata addresses: loopback only here.
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }}
  # exec tasks get a chroot with a static busybox and the user database only: copying the default /usr takes minutes here.
  chroot_env {{
    "/usr/bin/busybox" = "/bin/busybox"
    "/etc/passwd"      = "/etc/passwd"
    "/etc/group"       = "/etc/group"
  }}
}}
plugin "raw_exec" {{
  config {{
    enabled = true
  }}
}}
plugin {_hcl_string(PLUGIN_NAME)} {{
  config {{
    rules_file = {_hcl_string(str(rules_file))}
    state_dir  = {_hcl_string(str(directory / "plugin-state"))}  # each client its own, not the machine's
    log_level  = "debug"  # "fingerprint sent" entries time the plugin's part
  }}
}}
"""


def _install_plugin(plugin_dir: Path, world: Testbed) -> None:
    """The plugin under its block's name, in this client's fake world (test only: the agent is not)."""
    plugin_dir.mkdir(parents=True)
    env = world.env()
    wrapper = plugin_dir / PLUGIN_NAME
    wrapper.write_text(
        "#!/bin/sh\n"
        "# nomad-device-usb in a fake udev world (Nomad tier of the tests)\n"
        f"export UMOCKDEV_DIR='{env['UMOCKDEV_DIR']}'\n"
        f"export LD_PRELOAD='{env['LD_PRELOAD']}'\n"
        f"exec '{plugin_executable()}' \"$@\"\n"
    )
    wrapper.chmod(0o755)


def _start_agent(nomad: str, name: str, directory: Path, http_port: int, config: str) -> Agent:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "agent.hcl").write_text(config)
    log_path = directory / "agent.log"
    env = {k: v for k, v in os.environ.items() if k not in _WORLD_VARS}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [nomad, "agent", f"-config={directory / 'agent.hcl'}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    return Agent(name, directory, http_port, proc, log_path)


def _check_alive(agent: Agent) -> None:
    if agent.proc.poll() is not None:
        tail = "\n".join(agent.log_lines()[-30:])
        raise RuntimeError(f"nomad agent {agent.name} exited with {agent.proc.returncode}:\n{tail}")


def _wait(what: str, check: Callable[[], Any], agents: list[Agent], timeout: float = START_DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        for agent in agents:
            _check_alive(agent)
        try:
            value = check()
            if value:
                return value
        except (NomadError, OSError) as exc:
            last_error = exc
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready in {timeout:.0f} s (last error: {last_error})")


@dataclass
class ClusterSpec:
    """What to start: where, with which binary, and each client's world and drivers to wait for."""

    nomad: str
    root: Path
    rules_file: Path
    worlds: dict[str, Testbed]
    drivers: tuple[str, ...] = ("raw_exec",)


@dataclass
class Started:
    cluster: Cluster
    seconds: float


def start_cluster(spec: ClusterSpec) -> Iterator[Started]:
    """Start the server, then the clients; yield once every node is ready with its drivers; stop all after."""
    started = time.monotonic()
    server_ports = free_ports(3)
    agents: list[Agent] = []
    clients: dict[str, Client] = {}
    server = _start_agent(
        spec.nomad, "server", spec.root / "server", server_ports[0],
        _common_config("server", spec.root / "server", server_ports)
        + "server {\n  enabled = true\n  bootstrap_expect = 1\n}\n",
    )
    agents.append(server)
    cluster = Cluster(server, clients, spec.root)
    try:
        _wait("leader", lambda: server.api.get("/v1/status/leader")[0], agents)
        for name, world in spec.worlds.items():
            directory = spec.root / name
            ports = free_ports(3)
            _install_plugin(directory / "plugins", world)
            agent = _start_agent(
                spec.nomad, name, directory, ports[0],
                _client_config(name, directory, ports, server_ports[1], spec.rules_file),
            )
            agents.append(agent)
            clients[name] = Client(agent, world)

        def nodes_ready() -> bool:
            nodes, _ = server.api.get("/v1/nodes")
            by_name = {n["Name"]: n for n in nodes}
            for name, client in clients.items():
                node = by_name.get(name)
                if node is None or node["Status"] != "ready":
                    return False
                drivers = node.get("Drivers") or {}
                if not all(drivers.get(d, {}).get("Healthy") for d in spec.drivers):
                    return False
                client.node_id = node["ID"]
            return True

        _wait("nodes", nodes_ready, agents)
        yield Started(cluster, time.monotonic() - started)
    finally:
        cluster.stop()


# -- reading what the server knows ----------------------------------------------------------------


def device_instances(node: dict[str, Any], group: str) -> dict[str, bool]:
    """{device ID: healthy} of a "vendor/type/name" group on a node, as the server has it."""
    for dev in (node.get("NodeResources") or {}).get("Devices") or []:
        if f"{dev['Vendor']}/{dev['Type']}/{dev['Name']}" == group:
            return {i["ID"]: i["Healthy"] for i in dev.get("Instances") or []}
    return {}


def evaluation_statuses(api: Api, job_id: str) -> list[str]:
    evals, _ = api.get(f"/v1/job/{job_id}/evaluations")
    return [e["Status"] for e in evals]


def started_at(alloc: dict[str, Any], task: str) -> float | None:
    """Wall time of the task's Started event, from the client's own record."""
    state = (alloc.get("TaskStates") or {}).get(task) or {}
    for event in state.get("Events") or []:
        if event["Type"] == "Started":
            return event["Time"] / 1e9
    return None


def task_log(api: Api, alloc_id: str, task: str, kind: str = "stdout") -> str:
    body, _ = api.get(f"/v1/client/fs/logs/{alloc_id}?task={task}&type={kind}&origin=start&offset=0&plain=true")
    return body if isinstance(body, str) else json.dumps(body)


def quote_path(path: str) -> str:
    return urllib.parse.quote(path)
