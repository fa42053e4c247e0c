"""A rule command dies with its plugin (setpriv --pdeathsig); what it left in its group is killed by the next instance
when its owner is gone, and nothing a clean stop would spare: no session leader (a daemon), no live leader's session,
no live owner's command, no unmarked one."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from polling import wait_until as poll_until

from discovery.checks.health import run_check
from discovery.checks.orphans import OWNER_VARIABLE, reap_orphans
from discovery.checks.stats_command import run_stats_command

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 10.0  # a SIGKILLed sleep is gone in milliseconds
SETSID = "/usr/bin/setsid"

Tag = Callable[[], str]
Spawn = Callable[[str, "str | None"], subprocess.Popen[bytes]]


def stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: [0] state (field 3), [2] pgid (field 5), [3] session (field 6),
    [19] starttime (field 22)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def mark_of(pid: int) -> str:
    return f"{pid}:{stat_fields(pid)[19]}"


def state(pid: int) -> str:
    """The process's state letter, or "gone"."""
    try:
        return stat_fields(pid)[0]
    except OSError:
        return "gone"


def running(pid: int) -> bool:
    return state(pid) not in ("gone", "Z", "X")


def pids_tagged(tag: str, program: bytes | None = None) -> list[int]:
    """The live processes that have ``tag`` as an argument (and run ``program``, when given)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if tag.encode() in argv and program in (None, argv[0]) and running(int(entry.name)):
                    found.append(int(entry.name))
    return found


def wait_until(condition: Callable[[], bool]) -> bool:
    return poll_until(condition, DEADLINE_S, every=0.02)


def the_one(tag: str) -> int:
    """The sleep tagged ``tag``, once it runs (``env`` and ``setsid`` have exec'd it)."""
    assert wait_until(lambda: len(pids_tagged(tag, b"/bin/sleep")) == 1), f"no single sleep tagged {tag}"
    return pids_tagged(tag, b"/bin/sleep")[0]


def survives(pid: int) -> bool:
    """True if ``pid`` runs and no SIGKILL is on its way: a SIGSTOP sent now stops it (one that is being
    killed drops it and dies), so this does not pass merely because a kill has not landed yet."""
    if not running(pid):
        return False
    os.kill(pid, signal.SIGSTOP)
    assert wait_until(lambda: state(pid) in ("T", "Z", "X", "gone")), f"{pid} neither stopped nor died"
    return state(pid) == "T"


@pytest.fixture
def tag() -> Iterator[Tag]:
    """Hands out arguments for ``sleep`` (a few microseconds more) that name a process this test started;
    at the end every process carrying one is killed, whatever session it ran in."""
    given: list[str] = []

    def new() -> str:
        given.append(f"0.00{os.getpid()}{len(given):03d}")
        return given[-1]

    try:
        yield new
    finally:
        for value in given:
            for pid in pids_tagged(value):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start a shell script as the plugin starts a command (a session of its own) with ``mark`` as its owner,
    or none; every group started is killed at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(script: str, mark: str | None) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != OWNER_VARIABLE}
        if mark is not None:
            env[OWNER_VARIABLE] = mark
        proc = subprocess.Popen(["/bin/sh", "-c", script], env=env, start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
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
    owner = subprocess.Popen(["/bin/sleep", "3600"])
    try:
        mark = mark_of(owner.pid)
    finally:
        owner.kill()
        owner.wait()
    return mark


class Tree:
    """A command as the plugin starts it: its leader (``exec sleep``), a background child in its group,
    optionally a daemon that calls setsid (adb's server), an unmarked child in its group, and a child in a
    group of its own in the session."""

    def __init__(self, spawn: Spawn, tag: Tag, mark: str | None, *, daemon: bool = False,
                 unmarked: bool = False, own_group: bool = False) -> None:
        self.leader_tag, self.child_tag, self.daemon_tag, self.unmarked_tag = tag(), tag(), tag(), tag()
        self.own_group_tag = tag()
        script = f"/bin/sleep 3600 {self.child_tag} & "
        if daemon:
            script += f"{SETSID} /bin/sleep 3600 {self.daemon_tag} & "
        if unmarked:  # drops the mark but stays in the group, as a command's children may
            script += f"env -u {OWNER_VARIABLE} /bin/sleep 3600 {self.unmarked_tag} & "
        if own_group:
            argv = ["/bin/sleep", "3600", self.own_group_tag]
            execv = f"import os; os.setpgid(0, 0); os.execv({argv[0]!r}, {argv!r})"
            script += f'{sys.executable} -c "{execv}" & '
        self.leader = spawn(script + f"exec /bin/sleep 3600 {self.leader_tag}", mark)
        self.child = the_one(self.child_tag)
        self.daemon = the_one(self.daemon_tag) if daemon else None
        self.unmarked = the_one(self.unmarked_tag) if unmarked else None
        self.own_group = the_one(self.own_group_tag) if own_group else None
        assert the_one(self.leader_tag) == self.leader.pid
        assert int(stat_fields(self.child)[2]) == self.leader.pid, "the child is not in the leader's group"
        if self.daemon is not None:
            assert int(stat_fields(self.daemon)[3]) == self.daemon, "the daemon is not a session leader"

    def lose_leader(self) -> None:
        """The leader dies as it does with its plugin (pdeathsig); what it started lingers in its group."""
        self.leader.kill()
        assert self.leader.wait() == -signal.SIGKILL


def test_reap_orphans_kills_only_what_a_clean_stop_would_and_whose_owner_is_gone(
    spawn: Spawn, tag: Tag, dead_owner: str
) -> None:
    """Killed: a dead owner's group whose session leader is gone (an unmarked member too), a reused PID's
    look-alike owner counting as dead. Left alone: a daemon (a session leader) of that dead owner, a dead
    owner's command whose leader lives, a member in a group of its own (a stop kills the leader's group only),
    a live owner's leaderless group, an unmarked one and a garbage mark."""
    me = mark_of(os.getpid())
    reused = f"{os.getpid()}:{int(me.split(':')[1]) + 1}"  # this PID, another start time: not this process
    orphaned = Tree(spawn, tag, dead_owner, daemon=True, unmarked=True, own_group=True)
    look_alike = Tree(spawn, tag, reused)
    leader_alive = Tree(spawn, tag, dead_owner)
    live_owner = Tree(spawn, tag, me)
    no_mark = Tree(spawn, tag, None)
    garbage = Tree(spawn, tag, "not-a-mark")
    for tree in (orphaned, look_alike, live_owner, no_mark, garbage):
        tree.lose_leader()

    reaped = reap_orphans()

    for name, pid in (("orphaned child", orphaned.child), ("orphaned unmarked child", orphaned.unmarked),
                      ("look-alike's child", look_alike.child)):
        assert pid is not None and wait_until(lambda pid=pid: not running(pid)), f"{name} {pid} was not killed"
    assert {dead_owner, reused} <= set(reaped.owners) and me not in reaped.owners, reaped
    assert reaped.processes >= 2 and reaped.groups >= 2, reaped
    assert reaped.left_alone >= 4, reaped  # the daemon, the group of its own, leader_alive's leader and child
    spared = {"daemon": orphaned.daemon, "a group of its own": orphaned.own_group,
              "live leader": leader_alive.leader.pid, "live leader's child": leader_alive.child,
              "live owner's child": live_owner.child, "unmarked child": no_mark.child,
              "garbage mark's child": garbage.child}
    assert {name: survives(pid) for name, pid in spared.items() if pid is not None} == dict.fromkeys(spared, True)


def start_from_a_doomed_parent(tag: str, setpriv: bool) -> int:
    """A python process (its main thread only) starts ``sleep`` through the plugin's ``start_isolated`` and is
    SIGKILLed; the sleep's PID. Without ``setpriv`` it sets health's fixed setpriv paths to none first."""
    script = "\n".join([
        "import subprocess, sys, threading",
        "from discovery.checks import health",
        "" if setpriv else "health.SETPRIV_PATHS = ()",
        f"proc = health.start_isolated(['/bin/sleep', '3600', {tag!r}], stdout=subprocess.DEVNULL,",
        "                              stderr=subprocess.DEVNULL, env=health.check_environment(), running=None)",
        "print(proc.pid, flush=True)",
        "threading.Event().wait()",
    ])
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert the_one(tag) == pid
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    return pid


def test_a_command_dies_with_the_process_that_started_it(tag: Tag) -> None:
    """Started through setpriv --pdeathsig, the command's own process is killed when its parent is SIGKILLed."""
    pid = start_from_a_doomed_parent(tag(), setpriv=True)
    assert wait_until(lambda: not running(pid)), f"the command {pid} outlived the process that started it"


def test_without_setpriv_a_command_outlives_the_process_that_started_it(tag: Tag) -> None:
    """No setpriv at the fixed paths: the command starts as it is (and the test above is not vacuous)."""
    pid = start_from_a_doomed_parent(tag(), setpriv=False)
    assert survives(pid), f"the command {pid} died with the process that started it"


def test_a_missing_program_still_cannot_start() -> None:
    """setpriv is put in front of found programs only: a missing one fails to start, it does not exit 1."""
    result = run_check(["no-such-program-here"], 10.0)
    assert result.exit_code is None and result.detail.startswith("health check could not start: no-such-program-here")


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
