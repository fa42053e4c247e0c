"""Who holds what: the allocations on this machine's Nomad node that hold each device, from the agent's HTTP API.

Three steps, as an operator would do them with curl: the local agent's own node ID
(``/v1/agent/self``, ``stats.client.node_id``), that node's allocations (``/v1/node/<id>/allocations``),
and in each allocation that is pending or running on the client, the device IDs of its tasks
(``AllocatedResources.Tasks.<task>.Devices[].DeviceIDs``). When the agent cannot be asked (none
running, no client on it, a token without ``agent:read`` and ``node:read``), the answer says why
instead of raising: the CLI still lists the devices and exits 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from plugin.cli.nomad_api import AgentApi, AgentSettings, NomadApiError

LIVE_CLIENT_STATES = ("pending", "running")  # the task may hold the device; complete/failed/lost do not


@dataclass(frozen=True)
class Holder:
    """One allocation holding a device: what Nomad calls it, and where it stands."""

    alloc_id: str
    job: str
    task_group: str
    task: str
    namespace: str = "default"
    client_status: str = "running"
    desired_status: str = "run"

    @property
    def short_id(self) -> str:
        return self.alloc_id[:8]  # as `nomad status` prints allocation IDs

    @property
    def text(self) -> str:
        """``1a2b3c4d flash-board/boards``; the namespace when not default, ``(stopping)`` when asked to stop.

        The short ID comes first: it is what ``nomad alloc status`` takes, and a narrow table cuts a cell's end.
        """
        job = self.job if self.namespace == "default" else f"{self.namespace}:{self.job}"
        text = f"{self.short_id} {job}/{self.task_group}"
        return text + (" (stopping)" if self.desired_status != "run" else "")

    def to_json(self) -> dict[str, object]:
        return {"alloc_id": self.alloc_id, "short_id": self.short_id, "job": self.job, "task_group": self.task_group,
                "task": self.task, "namespace": self.namespace, "client_status": self.client_status,
                "desired_status": self.desired_status}


@dataclass(frozen=True)
class Holders:
    """What the agent said: each device ID's holders, or why nothing is known (``error``)."""

    address: str
    node_id: str | None = None
    node_name: str | None = None
    by_device: Mapping[str, tuple[Holder, ...]] = field(default_factory=lambda: MappingProxyType({}))
    error: str | None = None

    @property
    def known(self) -> bool:
        return self.error is None

    def of(self, device_id: str) -> tuple[Holder, ...] | None:
        """The device's holders (empty: free), or None when the agent could not be asked."""
        if not self.known:
            return None
        return self.by_device.get(device_id, ())

    def to_json(self) -> dict[str, object]:
        return {"address": self.address, "node_id": self.node_id, "node_name": self.node_name, "error": self.error}


def find_holders(environ: Mapping[str, str]) -> Holders:
    """Ask the agent that ``environ`` points at (NOMAD_ADDR, ...) which allocations hold which devices."""
    settings = AgentSettings.from_environ(environ)
    try:
        api = AgentApi(settings)
        me = api.get("/v1/agent/self")
        client = _mapping(_mapping(_mapping(me).get("stats")).get("client"))
        node_id = client.get("node_id")
        if not isinstance(node_id, str) or not node_id:
            return Holders(settings.address, error=f"the Nomad agent at {settings.address} runs no client")
        node_name = _mapping(_mapping(me).get("config")).get("NodeName") or None
        allocations = api.get(f"/v1/node/{node_id}/allocations")
    except NomadApiError as exc:
        return Holders(settings.address, error=str(exc))
    if not isinstance(allocations, list):
        return Holders(settings.address, node_id, error=f"the node's allocations are not a list: {allocations!r:.80}")
    return Holders(settings.address, node_id, node_name, MappingProxyType(holders_by_device(allocations)))


def holders_by_device(allocations: list[Any]) -> dict[str, tuple[Holder, ...]]:
    """Device ID -> the live allocations whose tasks were given it, in the agent's JSON shapes."""
    found: dict[str, list[Holder]] = {}
    for alloc in allocations:
        if not isinstance(alloc, dict) or alloc.get("ClientStatus") not in LIVE_CLIENT_STATES:
            continue
        tasks = _mapping(_mapping(alloc.get("AllocatedResources")).get("Tasks"))
        for task_name, task in sorted(tasks.items()):
            for device in _sequence(_mapping(task).get("Devices")):
                if not isinstance(device, dict):
                    continue
                holder = Holder(
                    alloc_id=str(alloc.get("ID", "")),
                    job=str(alloc.get("JobID", "")),
                    task_group=str(alloc.get("TaskGroup", "")),
                    task=str(task_name),
                    namespace=str(alloc.get("Namespace") or "default"),
                    client_status=str(alloc.get("ClientStatus")),
                    desired_status=str(alloc.get("DesiredStatus") or "run"),
                )
                for device_id in _sequence(device.get("DeviceIDs")):
                    found.setdefault(str(device_id), []).append(holder)
    return {device_id: tuple(holders) for device_id, holders in found.items()}


def _mapping(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one for anything else: a shape Nomad never sends is skipped, not a traceback."""
    return value if isinstance(value, dict) else {}


def _sequence(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
