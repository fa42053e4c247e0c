"""Nomad tier: what a docker or exec task really gets from a reservation (nodes, cgroup permissions)."""

from __future__ import annotations

import glob
import os
import subprocess
import time

import pytest
from nomad_cluster import Cluster
from nomad_scenario import Phases, Report, finish, job_hcl, wait_blocked, wait_instances, wait_output, wait_running

from conftest import Boards, HostNodes

pytestmark = pytest.mark.nomad


def _numbers(path: str) -> tuple[int, int]:
    rdev = os.stat(path).st_rdev
    return os.major(rdev), os.minor(rdev)


def _line(out: str, prefix: str) -> str:
    return next((line for line in out.splitlines() if line.startswith(prefix)), "")


def _device_cgroup_rules(container_id: str) -> list[str]:
    """The devices.list of the container's cgroup (cgroup v1), read on the host."""
    found = glob.glob(f"/sys/fs/cgroup/devices/**/{container_id}*/devices.list", recursive=True)
    assert found, f"no device cgroup for container {container_id}"
    with open(found[0]) as rules:
        return rules.read().split("\n")


def test_docker_task_gets_the_nodes_with_the_rules_permissions_only(
    cluster: Cluster, boards: Boards, host_nodes: HostNodes, report: Report, docker: str | None
) -> None:
    """permissions: r -> the container sees the nodes, its cgroup allows exactly 'r', and a write is refused."""
    if docker is None:
        pytest.skip("no docker daemon: see the notes at the end of the run")
    group = "espressif/board/esp32-readonly"
    client = cluster.clients["client1"]
    job = cluster.run_job(job_hcl("readonly-board", group, driver="docker", image=docker))
    wait_blocked(cluster, job)

    phases = Phases("docker: job waits -> board plugged", event=time.time())
    handle = client.world.plug(boards.make("READONLY01"))
    nodes = host_nodes.add(client.world, handle)  # docker makes the task's nodes from the host's
    phases.server = wait_instances(cluster, "client1", group, lambda ids: any(ids.values()))
    alloc, phases.running = wait_running(cluster, job)
    report.phases.append(finish(phases, client))

    out = wait_output(cluster, alloc["ID"], "read: ")
    tty = _line(out, "USB_DEVICE_0_NODE=").partition("=")[2]
    assert tty in nodes and tty.startswith("/dev/ttyUSB")
    for node in nodes:  # the tty and the USB bus node, with the host's numbers
        major, minor = _numbers(node)
        assert any(line.startswith("c") and f"{major}, {minor}" in line and line.endswith(node)
                   for line in out.splitlines()), out
    assert "Operation not permitted" in _line(out, "write: "), out
    assert "Operation not permitted" not in _line(out, "read: "), out  # it reached the device (no driver: ENXIO)

    container = subprocess.run(
        ["docker", "ps", "-q", "--no-trunc", "--filter", f"name=task-{alloc['ID']}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    rules = _device_cgroup_rules(container)
    for node in nodes:
        major, minor = _numbers(node)
        assert [r for r in rules if f" {major}:{minor} " in r + " "] == [f"c {major}:{minor} r"], rules
    cluster.stop_job(job)


def test_exec_task_gets_the_reserved_nodes(
    cluster: Cluster, boards: Boards, host_nodes: HostNodes, report: Report
) -> None:
    """The exec driver creates the reserved nodes inside the task's chroot, with the host's numbers."""
    group = "espressif/board/esp32-exec"
    client = cluster.clients["client2"]
    job = cluster.run_job(job_hcl("exec-board", group, driver="exec"))
    wait_blocked(cluster, job)

    phases = Phases("exec: job waits -> board plugged", event=time.time())
    handle = client.world.plug(boards.make("EXEC01"))
    nodes = host_nodes.add(client.world, handle)
    phases.server = wait_instances(cluster, "client2", group, lambda ids: any(ids.values()))
    alloc, phases.running = wait_running(cluster, job)
    report.phases.append(finish(phases, client))

    out = wait_output(cluster, alloc["ID"], "read: ")
    for node in nodes:
        major, minor = _numbers(node)
        assert any(line.startswith("c") and f"{major}, {minor}" in line and line.endswith(node)
                   for line in out.splitlines()), out
    # Nomad before #22518 (v1.9.0) allows only its default devices in an exec task's cgroup.
    report.notes.append(f"exec task on this Nomad, opening its tty for reading: {_line(out, 'read: ')!r}")
    cluster.stop_job(job)
