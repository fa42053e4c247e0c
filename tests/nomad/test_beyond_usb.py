"""Nomad tier: devices that are not USB, offered to a real scheduler like USB ones.

A declared car (``kind: declared``: hardware udev cannot see) is in every client's rules; its health
check fails until the bench says the car is reachable. A job waiting for it must run as soon as the
check passes, and its task gets the kind-neutral ``DEVICE_*`` names and the rule's env, no ``USB_*``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from nomad_cluster import Cluster
from nomad_scenario import Phases, Report, finish, job_hcl, wait_blocked, wait_instances, wait_output, wait_running

pytestmark = pytest.mark.nomad

CAR_GROUP = "doyota/car/mius"
CAR_ID = "mius-bench-1"


def test_job_waiting_for_a_declared_car_runs_when_its_check_passes(
    cluster: Cluster, report: Report, ready_dir: Path
) -> None:
    """The car is declared on both clients and unhealthy on both; once its check passes the job runs with its env."""
    for name in cluster.clients:
        wait_instances(cluster, name, CAR_GROUP, lambda ids: ids == {CAR_ID: False})
    job = cluster.run_job(job_hcl("bench-car", CAR_GROUP))
    wait_blocked(cluster, job)

    phases = Phases("declared car unhealthy -> its check passes", event=time.time())
    (ready_dir / f"car-{CAR_ID}").touch()
    phases.server = min(
        wait_instances(cluster, name, CAR_GROUP, lambda ids: ids == {CAR_ID: True}) for name in cluster.clients
    )
    alloc, phases.running = wait_running(cluster, job)
    placed_on = next(c for c in cluster.clients.values() if c.node_id == alloc["NodeID"])
    report.phases.append(finish(phases, placed_on))

    lines = wait_output(cluster, alloc["ID"], "DEVICE_0_ID=").splitlines()
    assert f"DEVICE_0_ID={CAR_ID}" in lines
    assert f"DEVICE_IDS={CAR_ID}" in lines
    assert "CAR_ADDRESS=192.0.2.10" in lines
    assert [line for line in lines if line.startswith("USB_")] == []
    cluster.stop_job(job)
