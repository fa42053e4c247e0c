"""Process tier: a health check dies with its SIGKILLed plugin (setpriv --pdeathsig); the background child it left in
its group runs only until the next instance starts, which kills it and says so. A daemon the check started (a
session of its own, as adb's server) lives on, as it does after a clean stop; what an instance still alive left is not touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
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
# `sleep 3600 0.000<pid>2<n>`: processes this run can find in /proc (the pytest PID makes them this run's own)
LEADER, CHILD, DAEMON = (f"0.000{os.getpid()}2{n}" for n in range(3))
SCRIPT = f"/bin/sleep 3600 {CHILD} & /usr/bin/setsid /bin/sleep 3600 {DAEMON} & exec /bin/sleep 3600 {LEADER}"
RULES = f"""\
rules:
  - name: ftdi
    match: {{vendor_id: "0403"}}
    group: {{vendor: ftdi, type: serial, name: ft232r}}
    health: {{command: ["/bin/sh", "-c", "{SCRIPT}"], interval: 1h, timeout: 1h}}
"""

Process = tuple[int, str]  # a PID and its start time: the same process, not a later one given that PID


@dataclass(frozen=True)
class Check:
    """A health check's processes: its leader (the plugin's child), a background child in its group, a daemon."""

    leader: Process
    child: Process
    daemon: Process


def stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: [0] state, [1] ppid, [3] session, [19] starttime."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def running(process: Process) -> bool:
    try:
        fields = stat_fields(process[0])
    except OSError:
        return False
    return fields[19] == process[1] and fields[0] not in ("Z", "X")


def survives(process: Process) -> bool:
    """Runs, and no SIGKILL is on its way: a SIGSTOP sent now stops it (one being killed drops it and dies);
    it goes on at once."""
    if not running(process):
        return False
    os.kill(process[0], signal.SIGSTOP)
    assert wait_until(lambda: not running(process) or stat_fields(process[0])[0] == "T", WAIT_S)
    stopped = running(process)
    with contextlib.suppress(ProcessLookupError):
        os.kill(process[0], signal.SIGCONT)
    return stopped


def sleeps(marker: str, parent: int) -> list[Process]:
    """The sleeps carrying ``marker`` whose parent is ``parent`` (setsid and exec done: argv[0] is the sleep)."""
    found = []
    for pid in pids_with_argument(lambda arg: arg == marker.encode()):
        with contextlib.suppress(OSError, IndexError):
            fields = stat_fields(pid)
            if (int(fields[1]) == parent and fields[0] not in ("Z", "X")
                    and Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"/bin/sleep"):
                found.append((pid, fields[19]))
    return found


def check_of(plugin: PluginProcess) -> Check | None:
    """The hanging health check ``plugin`` runs now, once all three of its processes run."""
    leaders = sleeps(LEADER, plugin.proc.pid)
    if len(leaders) != 1:
        return None
    children, daemons = sleeps(CHILD, leaders[0][0]), sleeps(DAEMON, leaders[0][0])
    if len(children) != 1 or len(daemons) != 1 or stat_fields(daemons[0][0])[3] != str(daemons[0][0]):
        return None
    return Check(leaders[0], children[0], daemons[0])


def wait_check_of(plugin: PluginProcess) -> Check:
    assert wait_until(lambda: check_of(plugin) is not None, WAIT_S), "the health check never ran whole"
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
    """Every instance started is killed at the end, and every process of a check this run started with it,
    whatever session it runs in (daemons included)."""
    made = Instances(testbed, tmp_path)
    try:
        yield made
    finally:
        for plugin in made.started:
            plugin.__exit__(None, None, None)
        for pid in pids_with_argument(lambda arg: arg in (LEADER.encode(), CHILD.encode(), DAEMON.encode())):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_a_sigkilled_plugins_check_dies_and_the_next_instance_kills_what_it_left_but_not_a_daemon(
    instances: Instances,
) -> None:
    """SIGKILL takes the check's own process along; its background child lingers until the next instance kills it
    and logs one warning naming its owner; the daemon it started lives on, and so does what another instance's check
    left (its owner lives)."""
    instances.testbed.plug(usb_devices.make_ftdi())
    live = instances.start("state-live")  # a second agent's plugin on the same host
    live_check = wait_check_of(live)
    live_mark = owner_in_environment(live_check.leader)
    doomed = instances.start("state")
    doomed_check = wait_check_of(doomed)
    doomed_mark = owner_in_environment(doomed_check.leader)
    assert doomed_mark.split(":")[0] == str(doomed.proc.pid)
    assert owner_in_environment(doomed_check.daemon) == doomed_mark  # the daemon carries the mark too

    doomed.send_signal(signal.SIGKILL)
    assert doomed.wait() == -signal.SIGKILL
    assert wait_until(lambda: not running(doomed_check.leader), WAIT_S), "the check outlived its plugin"
    assert running(doomed_check.child), "the background child died with its plugin: nothing left to reap"
    assert running(doomed_check.daemon), "the daemon died with the plugin"
    print(f"\nORPHANS after its plugin {doomed.proc.pid} was SIGKILLed: the check {doomed_check.leader[0]} is gone, "
          f"its child {doomed_check.child[0]} and the daemon {doomed_check.daemon[0]} run "
          f"({OWNER_VARIABLE}={doomed_mark})")

    os.kill(live_check.leader[0], signal.SIGKILL)  # the live one's check ends, its child lingers: still not ownerless
    assert wait_until(lambda: not running(live_check.leader), WAIT_S)
    relaunched = instances.start("state")  # the same config, as Nomad relaunches it
    warning = relaunched.wait_for_entry(lambda e: e.get("@message") == REAPED, WAIT_S)
    assert wait_until(lambda: not running(doomed_check.child), WAIT_S), f"the child {doomed_check.child[0]} still runs"
    assert survives(doomed_check.daemon), "the daemon was killed"
    assert all(survives(p) for p in (live_check.child, live_check.daemon)), "the live instance's commands were killed"
    owners = warning["owners"].split(",")
    assert warning["@level"] == "warn" and doomed_mark in owners and live_mark not in owners, warning
    assert warning["left_alone"] >= 1, warning  # the daemon
    assert [e for e in relaunched.entries if e.get("@message") == REAPED] == [warning]
    assert not [e for e in relaunched.entries if "traceback" in e] and not relaunched.bad_stderr_lines
    print(f"ORPHANS the new instance {relaunched.proc.pid} killed the child and logged: {warning}; the daemon "
          f"{doomed_check.daemon[0]} and the live instance {live.proc.pid}'s check child {live_check.child[0]} "
          "still run")
    for plugin in (relaunched, live):
        assert plugin.shutdown() == 0
    assert survives(doomed_check.daemon), "a clean stop killed the daemon"
