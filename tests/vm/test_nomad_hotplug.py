"""VM tier, Nomad in the guest: a dev agent with the pip-installed plugin runs a waiting job on a hot-plugged usb-serial."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vm.machine import Guest
from vm.nomad import agent_log, find_nomad, stage_nomad
from vm.testing import Devices, Report, running_guest

pytestmark = pytest.mark.vm

MEMORY_MB = 2048  # the agent, its plugin and the task do not fit the other tests' 1 GiB
RULES_FILE = "/etc/nomad-device-usb/rules.yaml"
RULES = (Path(__file__).parent / "rules.yaml").read_text()
PLUGIN_NAME = "nomad-device-usb"
PLUGIN_EXECUTABLE = "/opt/nomad-device-usb/bin/nomad-device-usb"  # the console script pip installed
WORKDIR = "/var/lib/nomad-dev"
GROUP = ["ftdi", "serial", "ft232r"]  # rules.yaml's group for QEMU's usb-serial (FTDI 0403:6001)
JOB_ID = "usb-serial-writer"
TASK = "write"
AGENT_START = 300.0  # the agent is ready ~45 s after boot under software emulation
EVENT_WAIT = 30.0
JOB_WAIT = 60.0  # a raw_exec task starts Nomad's executor, another run of the 70 MB binary
SCENARIO = "Nomad dev agent in the guest: a waiting job on a hot-plugged usb-serial"

AGENT_CONFIG = f"""
data_dir = "{WORKDIR}/data"
log_json = true
disable_update_check = true
leave_on_interrupt = true  # SIGINT: leave, then exit 0 (without it the agent shuts down and exits 1)

client {{
  state_dir = "{WORKDIR}/client"
  alloc_dir = "{WORKDIR}/alloc"
  options = {{
    "driver.raw_exec.enable" = "1"
    "fingerprint.denylist"   = "env_aws,env_gce,env_azure,env_digitalocean"
  }}
}}

plugin "{PLUGIN_NAME}" {{
  config {{
    rules_file = "{RULES_FILE}"
    log_level  = "debug"
  }}
}}
"""

# The task writes who it is to the device Nomad gave it; the host reads that line from QEMU's chardev.
JOB = f"""
job "{JOB_ID}" {{
  datacenters = ["dc1"]
  type        = "batch"

  group "serial" {{
    restart {{
      attempts = 0
      mode     = "fail"
    }}
    reschedule {{
      attempts  = 0
      unlimited = false
    }}

    task "{TASK}" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "echo \\"$NOMAD_ALLOC_ID $USB_DEVICE_0_ID $USB_DEVICE_0_NODE\\" > \\"$USB_DEVICE_0_NODE\\""]
      }}
      resources {{
        cpu    = 100
        memory = 64
        device "{'/'.join(GROUP)}" {{
          count = 1
        }}
      }}
    }}
  }}
}}
"""


@pytest.fixture(scope="module")
def nomad_guest(report: Report) -> Iterator[Guest]:
    """A guest of its own with 2 GiB, the plugin pip-installed and the Nomad binary in its share; skipped without one."""
    binary = find_nomad()
    if binary.path is None:
        pytest.skip(f"Nomad scenario: {binary.reason}")
    report.notes.append(f"Nomad scenario uses {binary.version} from {binary.path}")
    with running_guest(report, "Nomad guest: ", with_plugin=True, memory_mb=MEMORY_MB) as machine:
        machine.staged["nomad"] = stage_nomad(machine, binary.path)
        report.timings["Nomad guest: pip install of the plugin"] = machine.install_plugin()
        machine.call("write_file", path=RULES_FILE, content=RULES)
        yield machine


@pytest.fixture(scope="module")
def nomad_agent(nomad_guest: Guest, report: Report) -> Iterator[dict[str, Any]]:
    """A dev agent in the guest with the plugin in its plugin dir; stopped with SIGINT after the jobs are purged."""
    started = nomad_guest.call(
        "nomad_start", binary=nomad_guest.staged["nomad"], workdir=WORKDIR, config=AGENT_CONFIG,
        plugin_executable=PLUGIN_EXECUTABLE, plugin_name=PLUGIN_NAME, log_path=agent_log(nomad_guest)[1],
        timeout=AGENT_START,
    )
    report.timings["Nomad guest: agent start to node registered (guest)"] = started["registered_s"]
    report.timings["Nomad guest: agent start to the plugin's first Fingerprint (guest)"] = started["first_fingerprint_s"]
    yield started
    stopped = nomad_guest.call("nomad_stop", purge_jobs=[JOB_ID], timeout=120)
    report.timings["Nomad guest: SIGINT to agent exit (guest)"] = stopped["seconds"]
    assert (stopped["exit_code"], stopped["leftovers"]) == (0, []), stopped


def test_waiting_job_runs_on_hotplugged_serial_and_writes_to_it(
    nomad_guest: Guest, nomad_agent: dict[str, Any], report: Report, tmp_path: Path
) -> None:
    """A job submitted before its device exists waits blocked, then runs on the hot-plugged usb-serial and writes to it."""
    guest = nomad_guest
    parsed = guest.call("nomad_api", method="POST", path="/v1/jobs/parse", body={"JobHCL": JOB, "Canonicalize": True})
    guest.call("nomad_api", method="POST", path="/v1/jobs", body={"Job": parsed})
    blocked = guest.call(
        "nomad_wait_list", path=f"/v1/job/{JOB_ID}/evaluations", match={"Status": "blocked"}, timeout=EVENT_WAIT
    )
    assert blocked["item"]["JobID"] == JOB_ID
    assert guest.call("nomad_api", method="GET", path=f"/v1/job/{JOB_ID}/allocations") == []

    chardev_out = tmp_path / "usb-serial.out"  # QEMU writes every byte the guest sends to the device here
    devices = Devices(guest)  # no report: this guest's plug latencies are not the other tests' numbers
    try:
        device = devices.make("serial", chardev_out=str(chardev_out))
        plugged = devices.plug(device)  # the mark in the guest is set just before device_add
        node = guest.call(
            "nomad_wait_node_device", group=GROUP, id_contains=device.serial, healthy=True, timeout=EVENT_WAIT
        )
        device_id = node["instance"]["id"]
        fingerprint = fingerprint_with_device_healthy(guest, device_id)
        finished = guest.call(
            "nomad_wait_list", path=f"/v1/job/{JOB_ID}/allocations",
            match={"ClientStatus": ["complete", "failed", "lost"]}, timeout=JOB_WAIT,
        )
        alloc = guest.call("nomad_api", method="GET", path=f"/v1/allocation/{finished['item']['ID']}")
        events = {e["Type"]: e for e in alloc["TaskStates"][TASK]["Events"]}
        assert alloc["ClientStatus"] == "complete", alloc["TaskStates"]
        assert events["Terminated"]["ExitCode"] == 0, events
        reserved = alloc["AllocatedResources"]["Tasks"][TASK]["Devices"]
        assert [(r["Vendor"], r["Type"], r["Name"], r["DeviceIDs"]) for r in reserved] == [(*GROUP, [device_id])]

        # The task exited, so its tty was drained on close: QEMU has written the line by now.
        written = chardev_out.read_bytes()
        assert written.decode().splitlines() == [f"{alloc['ID']} {device_id} {plugged.node}"], written
        line_written_at = chardev_out.stat().st_mtime
    finally:
        devices.cleanup()

    plugin_part = fingerprint["dt_plugin"] if fingerprint["dt_plugin"] is not None else fingerprint["dt_agent"]
    mark_wall = finished["mark_wall"]
    report.phase(SCENARIO, {
        "device_add → tty node in udev (guest)": plugged.latency["node"],
        "device_add → plugin's Fingerprint, device healthy": plugin_part,
        "Fingerprint → node shows it healthy (/v1/node)": node["dt"] - plugin_part,
        "node update → allocation placed (CreateTime)": alloc["CreateTime"] / 1e9 - mark_wall - node["dt"],
        "node update → task Started (event time)": events["Started"]["Time"] / 1e9 - mark_wall - node["dt"],
        "device_add → line in the chardev file (host)": line_written_at - plugged.requested_at,
    })


def fingerprint_with_device_healthy(guest: Guest, device_id: str) -> dict[str, Any]:
    """The agent's log line for the plugin's first Fingerprint that carries ``device_id`` healthy.

    The plugin logs the device's arrival or recovery, then the snapshot version that holds it, then
    each Fingerprint it sends with its snapshot version; the agent relays them in order.
    """
    healthy = guest.call(
        "nomad_wait_log", query={"@message": ["device added", "device healthy"], "device_id": device_id},
        timeout=EVENT_WAIT,
    )
    published = guest.call(
        "nomad_wait_log", query={"@message": "snapshot published"}, after=healthy["seq"], timeout=EVENT_WAIT
    )
    sent = guest.call(
        "nomad_wait_log", query={"@message": "fingerprint sent", "version": published["record"]["version"]},
        timeout=EVENT_WAIT,
    )
    return sent  # type: ignore[no-any-return]
