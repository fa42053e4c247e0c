"""Nomad tier: devices that are not USB, offered to a real scheduler like USB ones.

A Raspberry Pi HAT (its UART is a ``kind: udev`` device on a platform bus) plugged into one client's
world must start a job that waits for it there, with ``DEVICE_*`` and the rule's env. A declared car (``kind: declared``: hardware udev cannot see) is in every client's rules; its health
check fails until the bench says the car is reachable. A job waiting for it must run as soon as the
check passes, and its task gets the kind-neutral ``DEVICE_*`` names and the rule's env, no ``USB_*``.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from nomad_cluster import Cluster
from nomad_scenario import Phases, Report, finish, job_hcl, wait_blocked, wait_instances, wait_output, wait_running

from discovery.fake.node_devices import make_raspberry_pi_hat

pytestmark = pytest.mark.nomad

UART_GROUP = "raspberrypi/serial/pl011"
UART_ID = "tty-platform-fe201000.serial-ttyAMA0"

CAR_GROUP = "doyota/car/mius"
CAR_ID = "mius-bench-1"


def test_job_waiting_for_an_on_board_uart_runs_where_the_hat_is_plugged(cluster: Cluster, report: Report) -> None:
    """No Pi HAT anywhere: the job waits; the HAT's boards plugged into client2 bring it there with its node."""
    job = cluster.run_job(job_hcl("hat-uart", UART_GROUP))
    wait_blocked(cluster, job)

    client = cluster.clients["client2"]
    phases = Phases("Pi HAT UART (kind: udev) plugged into client2", event=time.time())
    handle = client.world.plug(make_raspberry_pi_hat())
    phases.server = wait_instances(cluster, "client2", UART_GROUP, lambda ids: ids == {UART_ID: True})
    alloc, phases.running = wait_running(cluster, job)
    report.phases.append(finish(phases, client))

    assert alloc["NodeID"] == client.node_id
    lines = wait_output(cluster, alloc["ID"], "DEVICE_0_ID=").splitlines()
    assert f"DEVICE_0_ID={UART_ID}" in lines
    assert "DEVICE_0_NODE=/dev/ttyAMA0" in lines
    assert "HAT_UART=/dev/ttyAMA0" in lines
    assert [line for line in lines if line.startswith("USB_")] == []
    cluster.stop_job(job)
    client.world.unplug(handle)


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
    with ThreadPoolExecutor(len(cluster.clients)) as pool:  # each client's own moment, watched side by side
        names = list(cluster.clients)
        times = pool.map(lambda name: wait_instances(cluster, name, CAR_GROUP, lambda ids: ids == {CAR_ID: True}), names)
        healthy_at = dict(zip(names, times, strict=True))
    alloc, phases.running = wait_running(cluster, job)
    placed_on = next(name for name, c in cluster.clients.items() if c.node_id == alloc["NodeID"])
    phases.server = healthy_at[placed_on]
    report.phases.append(finish(phases, cluster.clients[placed_on]))

    lines = wait_output(cluster, alloc["ID"], "DEVICE_0_ID=").splitlines()
    assert f"DEVICE_0_ID={CAR_ID}" in lines
    assert f"DEVICE_IDS={CAR_ID}" in lines
    assert "CAR_ADDRESS=192.0.2.10" in lines
    assert [line for line in lines if line.startswith("USB_")] == []
    cluster.stop_job(job)
