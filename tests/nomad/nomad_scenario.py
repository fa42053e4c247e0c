"""The steps every Nomad-tier scenario is made of: jobs asking for boards, and waits on what the server shows."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nomad_cluster import Client, Cluster, device_instances, plugin_entry_times, started_at, task_log

# Deadlines a few seconds above the slowest run seen, so a regression fails quickly and clearly.
NODE_UPDATE_S = 25.0  # plug -> the server's node (the client batches node updates: 5-9 s measured)
SCHEDULE_S = 15.0  # the server's node -> task running (without healthy_count: 33-37 s, or never)
BLOCKED_S = 15.0
TASK = "task"
BUSYBOX = "/bin/busybox"

# What a task prints: its device variables; in a container or chroot also its nodes, and whether it
# may write and read its tty. (Never on raw_exec: there the paths are the host's own /dev.)
ENV_PROBE = f"{BUSYBOX} env | {BUSYBOX} sort | {BUSYBOX} grep -E '^(USB_DEVICE|DEVICE_|BOARD_|CAR_|HAT_)'\n"
PROBE = ENV_PROBE + f"""\
for node in "$USB_DEVICE_0_NODE" "$USB_DEVICE_0_BUS_NODE"; do {BUSYBOX} ls -l "$node" 2>&1; done
echo "write: $( {{ echo x > "$USB_DEVICE_0_NODE"; }} 2>&1 && echo ok)"
echo "read: $( {{ : < "$USB_DEVICE_0_NODE"; }} 2>&1 && echo ok)"
exec {BUSYBOX} sleep 3600
"""


@dataclass
class Phases:
    """When each step of one scenario happened (wall clock, seconds)."""

    scenario: str
    event: float  # the plug, or the health check starting to pass
    fingerprint: float | None = None  # the plugin's first Fingerprint after the event
    server: float | None = None  # the server's node shows what the job waits for
    running: float | None = None  # the task's Started event

    def row(self) -> str:
        def span(a: float | None, b: float | None) -> str:
            return f"{(b - a) * 1000:8.0f}" if a is not None and b is not None else "       -"

        return (f"{self.scenario:<44} {span(self.event, self.fingerprint)} {span(self.fingerprint, self.server)} "
                f"{span(self.server, self.running)} {span(self.event, self.running)}")


@dataclass
class Report:
    phases: list[Phases] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def board_id(serial: str) -> str:
    return f"usb-10c4-ea60-{serial}"


def job_hcl(name: str, device: str, *, count: int = 1, driver: str = "raw_exec", image: str = "") -> str:
    """A service job whose one task asks for ``count`` devices of ``device`` and prints what it got."""
    if driver == "docker":
        config = {"image": image, "force_pull": False, "command": BUSYBOX, "args": ["sh", "-c", PROBE]}
    elif driver == "exec":
        config = {"command": BUSYBOX, "args": ["sh", "-c", PROBE]}
    else:  # raw_exec runs on the host: the host's shell and tools
        script = (ENV_PROBE + f"exec {BUSYBOX} sleep 3600\n").replace(f"{BUSYBOX} ", "")
        config = {"command": "/bin/sh", "args": ["-c", script]}
    body = "\n".join(f"        {k} = {json.dumps(v)}" for k, v in config.items())
    return f"""\
job "{name}" {{
  datacenters = ["dc1"]
  group "boards" {{
    restart {{
      attempts = 0
      mode     = "fail"
    }}
    task "{TASK}" {{
      driver = "{driver}"
      config {{
{body}
      }}
      resources {{
        cpu    = 50
        memory = 64
        device "{device}" {{
          count = {count}
        }}
      }}
    }}
  }}
}}
"""


def wait_blocked(cluster: Cluster, job_id: str) -> None:
    """The job found no node with what it asks for and waits as a blocked evaluation."""
    cluster.api.watch(
        f"/v1/job/{job_id}/evaluations", lambda evals: any(e["Status"] == "blocked" for e in evals), BLOCKED_S
    )
    allocs, _ = cluster.api.get(f"/v1/job/{job_id}/allocations")
    assert allocs == [], f"job {job_id} was placed before its device existed"


def wait_instances(
    cluster: Cluster, client: str, group: str, predicate: Callable[[dict[str, bool]], bool]
) -> float:
    """When the server's view of ``client``'s node first satisfies ``predicate`` on the group's {ID: healthy}."""
    node_id = cluster.clients[client].node_id
    _, seen = cluster.api.watch(
        f"/v1/node/{node_id}", lambda node: predicate(device_instances(node, group)), NODE_UPDATE_S
    )
    return seen


def wait_running(cluster: Cluster, job_id: str) -> tuple[dict[str, Any], float]:
    """The job's running allocation and when its task started."""

    def running(allocs: list[dict[str, Any]]) -> str | None:
        for alloc in allocs:
            if alloc["ClientStatus"] == "running":
                return alloc["ID"]
            if alloc["ClientStatus"] == "failed":
                raise AssertionError(f"allocation failed: {json.dumps(alloc.get('TaskStates'))[:2000]}")
        return None

    alloc_id, _ = cluster.api.watch(f"/v1/job/{job_id}/allocations", running, SCHEDULE_S)
    alloc, _ = cluster.api.get(f"/v1/allocation/{alloc_id}")
    started = started_at(alloc, TASK)
    assert started is not None, alloc.get("TaskStates")
    return alloc, started


def wait_output(cluster: Cluster, alloc_id: str, marker: str, timeout: float = 10.0) -> str:
    """The task's stdout once it has printed ``marker``."""
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = task_log(cluster.api, alloc_id, TASK)
        if marker in out:
            return out
        time.sleep(0.1)
    raise AssertionError(f"task output has no {marker!r}: {out!r}")


def fingerprint_after(client: Client, event: float) -> float | None:
    """The plugin's first Fingerprint message after ``event``, by its own log entry."""
    # Entries carry milliseconds; allow for the truncation.
    times = [t for t in plugin_entry_times(client.agent, "fingerprint sent") if t >= event - 0.001]
    return min(times, default=None)


def finish(phases: Phases, client: Client) -> Phases:
    phases.fingerprint = fingerprint_after(client, phases.event)
    return phases
