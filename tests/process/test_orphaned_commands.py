"""Process tier: a health check that hangs outlives a SIGKILLed plugin only until the next instance starts,
which kills it and says so; the hanging check of an instance still alive is never touched."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.checks.orphans import OWNER_VARIABLE
from discovery.fake import usb_devices
from discovery.fake.testbed import Testbed
from plugin.config import encode_config
from plugin.host import PluginProcess
from process_support import pids_with_argument, wait_until

WAIT_S = 15.0  # each step takes well under a second; generous for a loaded machine
REAPED = "killed commands left running by a plugin instance that is gone"
# `sleep 3600 0.000<pid>2`: a check this run can find in /proc (the pytest PID makes it this run's own)
MARKER = f"0.000{os.getpid()}2"
RULES = f"""\
rules:
  - name: ftdi
    match: {{vendor_id: "0403"}}
    group: {{vendor: ftdi, type: serial, name: ft232r}}
    health: {{command: ["/bin/sleep", "3600", "{MARKER}"], interval: 1h, timeout: 1h}}
"""

Process = tuple[int, str]  # a PID and its start time: the same process, not a later one given that PID


def stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: [0] state, [1] ppid, [19] starttime."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def running(process: Process) -> bool:
    try:
        fields = stat_fields(process[0])
    except OSError:
        return False
    return fields[19] == process[1] and fields[0] not in ("Z", "X")


def check_of(plugin: PluginProcess) -> Process | None:
    """The hanging health check ``plugin`` runs now (its child carrying the marker), if there is one."""
    for pid in pids_with_argument(lambda arg: arg == MARKER.encode()):
        with contextlib.suppress(OSError):
            fields = stat_fields(pid)
            if int(fields[1]) == plugin.proc.pid and fields[0] not in ("Z", "X"):
                return pid, fields[19]
    return None


def wait_check_of(plugin: PluginProcess) -> Process:
    assert wait_until(lambda: check_of(plugin) is not None, WAIT_S), "the health check never ran"
    found = check_of(plugin)
    assert found is not None
    return found


def owner_in_environment(process: Process) -> str:
    environ = Path(f"/proc/{process[0]}/environ").read_bytes().split(b"\0")
    return next(e.split(b"=", 1)[1].decode() for e in environ if e.startswith(f"{OWNER_VARIABLE}=".encode()))


class Instances:
    """Plugin instances in one world, each started as Nomad does: handshake, SetConfig, Fingerprint."""

    def __init__(self, testbed: Testbed, tmp_path: Path) -> None:
        self.testbed = testbed
        self.rules_file = tmp_path / "rules.yaml"
        self.rules_file.write_text(RULES)
        self.tmp_path = tmp_path
        self.started: list[PluginProcess] = []

    def start(self, state: str) -> PluginProcess:
        plugin = PluginProcess.start(env_extra=self.testbed.env())
        self.started.append(plugin)
        plugin.set_config(encode_config({"rules_file": str(self.rules_file), "debounce": "50ms",
                                         "state_dir": str(self.tmp_path / state)}))
        plugin.fingerprint()
        return plugin


@pytest.fixture
def instances(testbed: Testbed, tmp_path: Path) -> Iterator[Instances]:
    """Every instance started is killed at the end, and every hanging check this run started with it."""
    made = Instances(testbed, tmp_path)
    try:
        yield made
    finally:
        for plugin in made.started:
            plugin.__exit__(None, None, None)
        for pid in pids_with_argument(lambda arg: arg == MARKER.encode()):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


def test_a_new_instance_kills_the_checks_a_sigkilled_one_left_and_spares_a_live_ones(instances: Instances) -> None:
    """SIGKILL leaves a hanging check running; the next instance kills it and logs one warning naming its owner,
    while another instance's check, whose owner lives, keeps running."""
    instances.testbed.plug(usb_devices.make_ftdi())
    live = instances.start("state-live")  # a second agent's plugin on the same host
    live_check = wait_check_of(live)
    live_mark = owner_in_environment(live_check)
    doomed = instances.start("state")
    doomed_check = wait_check_of(doomed)
    doomed_mark = owner_in_environment(doomed_check)
    assert doomed_mark.split(":")[0] == str(doomed.proc.pid)

    doomed.send_signal(signal.SIGKILL)
    assert doomed.wait() == -signal.SIGKILL
    assert running(doomed_check), "the hanging check died with its plugin: nothing left to reap"
    print(f"\nORPHANS health check {doomed_check[0]} still running after its plugin {doomed.proc.pid} was SIGKILLed "
          f"({OWNER_VARIABLE}={doomed_mark})")

    relaunched = instances.start("state")  # the same config, as Nomad relaunches it
    warning = relaunched.wait_for_entry(lambda e: e.get("@message") == REAPED, WAIT_S)
    assert wait_until(lambda: not running(doomed_check), WAIT_S), f"the orphaned check {doomed_check[0]} still runs"
    assert running(live_check), "the live instance's check was killed"
    owners = warning["owners"].split(",")
    assert warning["@level"] == "warn" and doomed_mark in owners and live_mark not in owners, warning
    assert [e for e in relaunched.entries if e.get("@message") == REAPED] == [warning]
    assert not [e for e in relaunched.entries if "traceback" in e] and not relaunched.bad_stderr_lines
    print(f"ORPHANS the new instance {relaunched.proc.pid} killed it and logged: {warning}; the live instance "
          f"{live.proc.pid}'s check {live_check[0]} still runs")
    for plugin in (relaunched, live):
        assert plugin.shutdown() == 0
