"""Nomad tier: a job waiting for a board runs as soon as the board is usable, on a real server and two clients."""

from __future__ import annotations

import time

import pytest
from nomad_cluster import Cluster
from nomad_scenario import (
    Phases,
    Report,
    board_id,
    finish,
    job_hcl,
    wait_blocked,
    wait_instances,
    wait_output,
    wait_running,
)

from conftest import Boards

pytestmark = pytest.mark.nomad


def test_waiting_job_is_placed_on_the_client_where_the_board_is_plugged(
    cluster: Cluster, boards: Boards, report: Report
) -> None:
    """No board anywhere: the job waits; a board plugged into client2 brings it there, with USB_DEVICE_* set."""
    group = "espressif/board/esp32-devkit"
    job = cluster.run_job(job_hcl("first-board", group))
    wait_blocked(cluster, job)

    client = cluster.clients["client2"]
    phases = Phases("no board anywhere -> plugged into client2", event=time.time())
    client.world.plug(boards.make("FIRST01"))
    phases.server = wait_instances(cluster, "client2", group, lambda ids: ids.get(board_id("FIRST01")) is True)
    alloc, phases.running = wait_running(cluster, job)
    report.phases.append(finish(phases, client))

    assert alloc["NodeID"] == client.node_id
    out = wait_output(cluster, alloc["ID"], "USB_DEVICE_0_ID=")
    assert f"USB_DEVICE_0_ID={board_id('FIRST01')}" in out.splitlines()
    assert "BOARD_SERIAL=FIRST01" in out.splitlines()
    cluster.stop_job(job)


def test_job_for_two_boards_waits_for_the_second(cluster: Cluster, boards: Boards, report: Report) -> None:
    """One board in the group is not enough for count = 2; the second one's arrival starts the job."""
    group = "espressif/board/esp32-pair"
    client = cluster.clients["client1"]
    client.world.plug(boards.make("PAIR01"))
    wait_instances(cluster, "client1", group, lambda ids: ids.get(board_id("PAIR01")) is True)
    job = cluster.run_job(job_hcl("board-pair", group, count=2))
    wait_blocked(cluster, job)

    phases = Phases("1 board, job wants 2 -> second plugged", event=time.time())
    client.world.plug(boards.make("PAIR02"))
    phases.server = wait_instances(cluster, "client1", group, lambda ids: sum(ids.values()) == 2)
    alloc, phases.running = wait_running(cluster, job)
    report.phases.append(finish(phases, client))

    out = wait_output(cluster, alloc["ID"], "USB_DEVICE_1_ID=")
    assert f"USB_DEVICE_IDS={board_id('PAIR01')},{board_id('PAIR02')}" in out.splitlines()
    cluster.stop_job(job)


def test_job_waiting_for_an_unhealthy_board_runs_when_its_check_passes(
    cluster: Cluster, boards: Boards, report: Report, ready_dir: object
) -> None:
    """A board attached but failing its health check (not flashed yet) is not enough; passing the check is."""
    group = "espressif/board/esp32-gated"
    client = cluster.clients["client1"]
    client.world.plug(boards.make("GATED01"))
    wait_instances(cluster, "client1", group, lambda ids: ids.get(board_id("GATED01")) is False)
    job = cluster.run_job(job_hcl("gated-board", group))
    wait_blocked(cluster, job)

    phases = Phases("board unhealthy -> its check passes", event=time.time())
    (ready_dir / "ready-GATED01").touch()  # type: ignore[operator]
    phases.server = wait_instances(cluster, "client1", group, lambda ids: ids.get(board_id("GATED01")) is True)
    alloc, phases.running = wait_running(cluster, job)
    report.phases.append(finish(phases, client))

    assert alloc["NodeID"] == client.node_id
    cluster.stop_job(job)


def test_unplugged_board_turns_unhealthy_and_serves_a_waiting_job_on_the_other_client(
    cluster: Cluster, boards: Boards, report: Report
) -> None:
    """Unplugged from client1 it stays listed there, unhealthy, and its task keeps running (Nomad does not
    stop it); plugged into client2 it keeps its ID and a waiting job runs there."""
    group = "espressif/board/esp32-roaming"
    first, second = cluster.clients["client1"], cluster.clients["client2"]
    handle = first.world.plug(boards.make("ROAM01"))
    wait_instances(cluster, "client1", group, lambda ids: ids.get(board_id("ROAM01")) is True)
    holder = cluster.run_job(job_hcl("roaming-holder", group))
    held, _ = wait_running(cluster, holder)
    first.world.unplug(handle)
    wait_instances(cluster, "client1", group, lambda ids: ids.get(board_id("ROAM01")) is False)
    job = cluster.run_job(job_hcl("roaming-board", group))
    wait_blocked(cluster, job)

    phases = Phases("unplugged on client1 -> plugged into client2", event=time.time())
    second.world.plug(boards.make("ROAM01"))  # another port and device number, the same serial
    phases.server = wait_instances(cluster, "client2", group, lambda ids: ids == {board_id("ROAM01"): True})
    alloc, phases.running = wait_running(cluster, job)
    report.phases.append(finish(phases, second))

    assert alloc["NodeID"] == second.node_id
    out = wait_output(cluster, alloc["ID"], "USB_DEVICE_0_ID=")
    assert f"USB_DEVICE_0_ID={board_id('ROAM01')}" in out.splitlines()
    still, _ = cluster.api.get(f"/v1/allocation/{held['ID']}")
    assert (still["NodeID"], still["ClientStatus"]) == (first.node_id, "running")
    cluster.stop_job(job)
    cluster.stop_job(holder)
