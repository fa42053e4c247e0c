"""Commands a dead plugin instance left running are killed, group and all; a live owner's and unmarked ones are not."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from discovery.checks.health import run_check
from discovery.checks.orphans import OWNER_VARIABLE, reap_orphans
from discovery.checks.stats_command import run_stats_command

SLEEP = ["/bin/sleep", "3600"]
DEADLINE_S = 10.0  # a SIGKILLed sleep is gone in milliseconds

Spawn = Callable[[list[str], "str | None"], subprocess.Popen[bytes]]


def stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: [0] state (field 3), [2] pgid (field 5), [19] starttime (field 22)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def mark_of(pid: int) -> str:
    return f"{pid}:{stat_fields(pid)[19]}"


def live_members(group: int) -> list[int]:
    """PIDs in process group ``group`` that are not zombies."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                fields = stat_fields(int(name))
                if int(fields[2]) == group and fields[0] not in ("Z", "X"):
                    found.append(int(name))
    return found


def wait_until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.02)  # polling /proc: nothing to wait on
    return True


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start a command as the plugin does (a session of its own) with ``mark`` as its owner, or none;
    every group started is killed at the end, whatever the test did."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], mark: str | None) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != OWNER_VARIABLE}
        if mark is not None:
            env[OWNER_VARIABLE] = mark
        proc = subprocess.Popen(argv, env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def dead_owner() -> str:
    """The mark of a process that was alive (its real PID and start time) and is gone now."""
    owner = subprocess.Popen(SLEEP)
    try:
        mark = mark_of(owner.pid)
    finally:
        owner.kill()
        owner.wait()
    return mark


def test_reap_orphans_kills_only_commands_whose_owner_is_gone(spawn: Spawn, dead_owner: str) -> None:
    """A dead owner's command is killed with its whole group (an unmarked child too); a live owner's, a
    reused PID's look-alike aside, an unmarked one and an unreadable mark are left alone."""
    me = mark_of(os.getpid())
    reused = f"{os.getpid()}:{int(me.split(':')[1]) + 1}"  # this PID, another start time: not this process
    # the orphan's child drops the mark but stays in the group, as a command's children do
    orphan = spawn(["/bin/sh", "-c", f"env -u {OWNER_VARIABLE} /bin/sleep 3600 & exec /bin/sleep 3600"], dead_owner)
    look_alike = spawn(SLEEP, reused)
    live = spawn(SLEEP, me)
    unmarked = spawn(SLEEP, None)
    garbage = spawn(SLEEP, "not-a-mark")
    assert wait_until(lambda: len(live_members(orphan.pid)) == 2), "the orphan's child never started"

    reaped = reap_orphans()

    assert orphan.wait(DEADLINE_S) == -signal.SIGKILL
    assert look_alike.wait(DEADLINE_S) == -signal.SIGKILL
    assert wait_until(lambda: not live_members(orphan.pid)), f"left in the group: {live_members(orphan.pid)}"
    assert {dead_owner, reused} <= set(reaped.owners) and me not in reaped.owners
    assert reaped.processes >= 2 and reaped.groups >= 2  # the marked ones; the unmarked child went with its group
    assert [p.poll() for p in (live, unmarked, garbage)] == [None, None, None]


def test_commands_carry_their_owners_mark() -> None:
    """Health checks and stats commands (and what they start) carry this process's mark, replacing an inherited one."""
    me = mark_of(os.getpid())
    env = {**os.environ, OWNER_VARIABLE: "1:1"}
    child = f"import os, sys; sys.exit(os.environ.get({OWNER_VARIABLE!r}) != {me!r})"
    check = f"import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-c', {child!r}]))"
    result = run_check([sys.executable, "-c", check], 10.0, env=env)
    assert result.ok, result.detail
    stats = f"import json, os; print(json.dumps({{'owner_pid': int(os.environ[{OWNER_VARIABLE!r}].split(':')[0])}}))"
    readings = run_stats_command([sys.executable, "-c", stats], 10.0, env=env)
    assert readings.error is None and readings.readings["owner_pid"].value == os.getpid()
