"""What rule commands leave behind when their plugin instance dies: the next instance kills it, and no more.

Every health check and stats command starts with ``NOMAD_DEVICE_USB_OWNER=<pid>:<starttime>`` in its
environment, naming the plugin process that started it (``starttime``, field 22 of ``/proc/<pid>/stat``,
tells the owner from a later process given the same PID); its children inherit it. A command runs in
a session of its own, whose leader (the command's own process) dies with the plugin through
``setpriv --pdeathsig`` (``health.die_with_parent``). What it started in its group does not: a
background child that hangs would run for ever after a SIGKILL or a crash, where a clean stop kills
the command's whole group.

So at start, a plugin instance kills what a clean stop would have killed and that has no owner now:
the group of a session whose leader is gone, when a member carries the mark of an owner that is gone
(no such process, another start time, or a zombie) and is in that leader's group. Never a session
leader (a daemon the command started that called setsid, such as adb's server, survives a crash as
it survives a clean stop; so does a command started without setpriv, a limit), nor a process in a
session whose leader lives, nor one whose owner lives (two Nomad agents on one host each run their
own plugin), nor one without the mark or with a mark it cannot read. A /proc entry that cannot be
read (a process that ended meanwhile, EACCES) is skipped.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass

log = logging.getLogger(__name__)

OWNER_VARIABLE = "NOMAD_DEVICE_USB_OWNER"
_NEEDLE = f"{OWNER_VARIABLE}=".encode()
_PROC = "/proc"

_own: tuple[int, str | None] | None = None  # (pid, mark): computed once per process


@dataclass(frozen=True)
class Reaped:
    """What one scan did: the marked processes it killed groups for, the process groups killed, their owners'
    marks, and the marked processes of gone owners it left alone (session leaders, or a leader lives)."""

    processes: int
    groups: int
    owners: tuple[str, ...]
    left_alone: int = 0


def own_mark() -> str | None:
    """This process's mark, ``"<pid>:<starttime>"``; None when /proc cannot say (then commands go unmarked)."""
    global _own
    pid = os.getpid()
    if _own is None or _own[0] != pid:  # a forked child is another owner
        fields = _stat(pid)
        _own = (pid, f"{pid}:{fields[19]}" if fields is not None else None)
    return _own[1]


def reap_orphans() -> Reaped:
    """Kill the leaderless command groups of owners that are gone (see the module); log once if there were any."""
    me, my_group = os.getpid(), os.getpgrp()
    alive: dict[str, bool] = {}
    groups: dict[int, str] = {}  # session (= the gone leader's group) -> the mark of a member found in it
    found = spared = 0
    for name in os.listdir(_PROC):
        if not name.isdigit() or int(name) == me:
            continue
        mark = _mark_of(f"{_PROC}/{name}/environ")
        if mark is None:
            continue
        if mark not in alive:
            alive[mark] = _owner_alive(mark)
        if alive[mark]:
            continue
        fields = _stat(int(name))
        if fields is None or fields[0] in ("Z", "X"):
            continue  # ended meanwhile
        group, session = int(fields[2]), int(fields[3])
        if session == int(name) or group != session or _running(session):
            # a session leader (a daemon; it is its own live leader, said first to save a read), another group
            # than the leader's, or a leader that lives: a clean stop spares these too
            spared += 1
            continue
        found += 1
        groups.setdefault(session, mark)
    killed: set[str] = set()
    count = 0
    for group, mark in groups.items():
        if group <= 1 or group == my_group:
            continue
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError as exc:  # ended meanwhile (ESRCH), or not ours to kill (EPERM)
            log.debug("left-behind command not killed", extra={"pgid": group, "error": exc.strerror or str(exc)})
            continue
        count += 1
        killed.add(mark)
    result = Reaped(found, count, tuple(sorted(killed)), spared)
    if count:
        log.warning("killed commands left running by a plugin instance that is gone",
                    extra={"processes": found, "process_groups": count, "owners": ",".join(result.owners),
                           "left_alone": spared})
    elif spared:
        log.debug("left alone commands of a plugin instance that is gone: session leaders, or a leader lives",
                  extra={"left_alone": spared})
    return result


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a session leader's PID stays taken while its session has
    members, so no other process has it)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _mark_of(environ_path: str) -> str | None:
    """The owner mark in a process's environment, or None (no mark, or the entry could not be read)."""
    try:
        with open(environ_path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if _NEEDLE not in data:
        return None
    for entry in data.split(b"\0"):
        if entry.startswith(_NEEDLE):
            return entry[len(_NEEDLE):].decode("ascii", "replace")
    return None


def _owner_alive(mark: str) -> bool:
    """False only when the owner is surely gone; a mark that is not ``<pid>:<starttime>`` counts as alive."""
    pid_text, sep, start = mark.partition(":")
    if not (sep and pid_text.isdigit() and start.isdigit() and int(pid_text) > 0):
        return True  # not a mark we wrote: leave it alone
    try:
        fields = _read_stat(int(pid_text))
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True  # there, but unreadable: not surely gone
    return fields[19] == start and fields[0] not in ("Z", "X")


def _stat(pid: int) -> list[str] | None:
    """``_read_stat``, or None if it cannot be read."""
    try:
        return _read_stat(pid)
    except (OSError, ValueError):
        return None


def _read_stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces and parentheses):
    [0] is field 3 (state), [2] field 5 (pgid), [3] field 6 (session), [19] field 22 (starttime).
    OSError, or ValueError if short."""
    with open(f"{_PROC}/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[-1].decode("ascii", "replace").split()
    if len(fields) < 20:
        raise ValueError(f"{_PROC}/{pid}/stat: {len(fields)} fields after the name")
    return fields
