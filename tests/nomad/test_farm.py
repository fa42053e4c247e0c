"""Nomad tier: a device farm on a real agent: readings in Nomad's device stats, and who holds what.

The board's rule has a stats command; its readings must show, with their units, where Nomad shows
device stats (the client's /v1/client/stats, the allocation's stats, ``nomad node status -stats``
and ``nomad alloc status -stats``). ``nomad-device-usb list --json``, run inside the client's fake
world against that client's HTTP address, must name the allocation holding the board while its
job runs, and nothing once the job has stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

import pytest
from nomad_cluster import Client, Cluster, plugin_executable
from nomad_scenario import Report, board_id, job_hcl, wait_instances, wait_running

from conftest import NOMAD_BINARY, Boards

pytestmark = pytest.mark.nomad

GROUP = "espressif/board/esp32-farm"
STATS_S = 20.0  # the client collects device stats every second; a few rounds, and the plugin's first run
STOP_S = 30.0  # job stopped -> its allocation complete on the client (raw_exec's kill timeout is 5 s)
CLI_S = 60.0


def device_stats(groups: list[dict[str, Any]] | None, device_id: str) -> dict[str, Any] | None:
    """The DeviceStats of ``device_id`` in a list of DeviceGroupStats as Nomad's API shows them."""
    for group in groups or []:
        if f"{group['Vendor']}/{group['Type']}/{group['Name']}" == GROUP:
            return (group.get("InstanceStats") or {}).get(device_id)
    return None


def reading(stats: dict[str, Any] | None, name: str) -> tuple[Any, str] | None:
    """(value, unit) of a reading under ``readings`` in a DeviceStats, if it is there."""
    if not stats:
        return None
    value = (((stats.get("Stats") or {}).get("Nested") or {}).get("readings") or {}).get("Attributes", {}).get(name)
    if value is None:
        return None
    number = value.get("FloatNumeratorVal", value.get("IntNumeratorVal"))
    return number, value.get("Unit", "")


def wait_value(what: str, fetch: Any, timeout: float) -> Any:
    """Poll ``fetch()`` until it gives something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fetch()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: nothing within {timeout:.0f} s")


def list_output(client: Client, rules_file: str, *args: str) -> str:
    """``nomad-device-usb list`` in the client's fake world, asking that client's agent."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env.update(client.world.env())
    env["NOMAD_ADDR"] = f"http://127.0.0.1:{client.agent.http_port}"
    done = subprocess.run([plugin_executable(), "list", "--rules", rules_file, *args], env=env,
                          capture_output=True, text=True, timeout=CLI_S, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def list_json(client: Client, rules_file: str) -> dict[str, Any]:
    return json.loads(list_output(client, rules_file, "--json"))


def nomad_cli(client: Client, *args: str) -> str:
    """The nomad CLI's output against the client's agent."""
    assert NOMAD_BINARY is not None
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "UMOCKDEV_DIR")}
    env["NOMAD_ADDR"] = f"http://127.0.0.1:{client.agent.http_port}"
    done = subprocess.run([NOMAD_BINARY, *args], env=env, capture_output=True, text=True, timeout=CLI_S, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def lines_with(text: str, needle: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if needle in line]


def test_farm_board_readings_and_holder_on_a_real_agent(
    cluster: Cluster, boards: Boards, rules_file: Any, report: Report
) -> None:
    """Readings show in the node's and the allocation's device stats with units; list names the holder until it ends."""
    client = cluster.clients["client1"]
    device = board_id("FARM01")
    client.world.plug(boards.make("FARM01"))
    wait_instances(cluster, "client1", GROUP, lambda ids: ids.get(device) is True)
    on_node = time.monotonic()

    node_stats = wait_value("the board's readings in /v1/client/stats", lambda: reading(
        device_stats(client.agent.api.get("/v1/client/stats")[0].get("DeviceStats"), device), "vbus"), STATS_S)
    assert node_stats == (5.02, "V")
    report.notes.append(f"farm board on the server's node -> its readings in the client's /v1/client/stats: "
                        f"{time.monotonic() - on_node:.1f} s")
    host = client.agent.api.get("/v1/client/stats")[0]
    stats = device_stats(host.get("DeviceStats"), device)
    assert reading(stats, "temp") == (41.5, "C") and reading(stats, "resets") == (2, "")
    assert stats is not None and stats["Summary"].get("FloatNumeratorVal") == 5.02 and stats["Summary"]["Unit"] == "V"

    free = list_json(client, str(rules_file))
    (entry,) = [d for d in free["devices"] if d["id"] == device]
    assert free["nomad"]["node_id"] == client.node_id and entry["allocations"] == []

    job = cluster.run_job(job_hcl("farm-board", GROUP))
    alloc, _ = wait_running(cluster, job)
    held = list_json(client, str(rules_file))
    (entry,) = [d for d in held["devices"] if d["id"] == device]
    assert [(a["alloc_id"], a["job"], a["task_group"], a["task"], a["client_status"]) for a in entry["allocations"]] \
        == [(alloc["ID"], job, "boards", "task", "running")]
    table = list_output(client, str(rules_file), "--wide").splitlines()
    row = next(line for line in table if line.startswith(device))
    assert row.endswith(f"{alloc['ID'][:8]} farm-board/boards"), table
    report.notes.append(f"nomad-device-usb list --wide, held board: {' '.join(row.split())} / {table[-1]}")

    alloc_stats = wait_value("the board's readings in the allocation's stats", lambda: reading(device_stats(
        (client.agent.api.get(f"/v1/client/allocation/{alloc['ID']}/stats")[0].get("ResourceUsage") or {})
        .get("DeviceStats"), device), "vbus"), STATS_S)
    assert alloc_stats == (5.02, "V")

    node_text = nomad_cli(client, "node", "status", "-self", "-stats")
    alloc_text = nomad_cli(client, "alloc", "status", "-stats", alloc["ID"])
    qualified = f"{GROUP}[{device}]"
    summary_lines = lines_with(node_text, qualified)
    assert any(line.endswith("5.02 V") for line in summary_lines), node_text
    assert "readings.vbus = 5.02 V" in lines_with(node_text, "readings.vbus"), node_text
    assert "readings.temp = 41.5 C" in lines_with(alloc_text, "readings.temp"), alloc_text
    node_seen = summary_lines + lines_with(node_text, "readings.")
    alloc_seen = lines_with(alloc_text, qualified) + lines_with(alloc_text, "readings.")
    report.notes.append(f"nomad node status -self -stats: {' / '.join(node_seen)}")
    report.notes.append(f"nomad alloc status -stats: {' / '.join(alloc_seen)}")

    stopped = time.monotonic()
    cluster.stop_job(job)

    def released() -> bool:
        (after,) = [d for d in list_json(client, str(rules_file))["devices"] if d["id"] == device]
        return after["allocations"] == []

    wait_value("the board free again in list --json after the job stopped", released, STOP_S)
    report.notes.append(f"farm job stopped -> list --json shows the board free: {time.monotonic() - stopped:.1f} s")
