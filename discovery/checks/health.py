"""Health checks: a rule's command run for one device, with a timeout, never through a shell.

The command is an argv list. It runs in its own session with stdin and stdout on /dev/null and
stderr in a temporary file, so it never inherits the plugin's stdout/stderr (the Nomad agent would then not
see the plugin exit) and a timeout can kill the whole process group. It dies with the plugin, through
util-linux ``setpriv --pdeathsig KILL`` where there is one; its environment names this process as its owner
(``orphans.OWNER_VARIABLE``), so a later instance can kill what it left in its group.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from discovery.checks.command_trust import UntrustedProgram, find_program, refusal, untrusted_found
from discovery.checks.orphans import OWNER_VARIABLE, own_mark

log = logging.getLogger(__name__)

_STDERR_LIMIT = 4096
STARTS_WAIT_S = 0.25  # how long kill_all waits for checks being started (see RunningChecks)
# Only these, never a PATH lookup: the plugin may run as root, and a command runs through what is found here.
SETPRIV_PATHS = ("/usr/bin/setpriv", "/bin/setpriv")
_SETPRIV_PROBE_S = 5.0

_deathsig_lock = threading.Lock()
_deathsig_prefix: tuple[str, ...] | None = None  # found once: setpriv's argv up to the command's, or ()


@dataclass(frozen=True)
class HealthResult:
    """What one run of a health check found."""

    ok: bool
    exit_code: int | None  # None when it timed out or could not start
    detail: str  # human reason: "" when ok, else the exit code and the last stderr line
    latency_s: float
    checked_at: float  # wall clock


def last_line(data: bytes) -> str:
    """The last non-blank line of a command's stderr, cut to 200 characters (what a reason quotes)."""
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def check_environment() -> dict[str, str]:
    """The plugin's environment without go-plugin's handshake variables, which are not the check's business."""
    return {
        k: v for k, v in os.environ.items() if k != "NOMAD_PLUGIN_MAGIC_COOKIE" and not k.startswith("PLUGIN_")
    }


class RunningChecks:
    """The process groups of the checks running now, so that none outlives its owner (``kill_all`` at stop).

    A check runs in a session of its own, so the plugin's exit does not take it along: without this,
    a check that hangs kept running after the plugin stopped. A check being started when its owner
    stops is the narrow case: its process exists (forked) before its PID is known, and the plugin
    exits a few milliseconds after stop, so ``kill_all`` waits for starts under way to end (each
    kills its own process once it has one), and no check starts after it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._groups: set[int] = set()
        self._starting = 0  # starts announced by ``starting`` whose ``started`` has not come yet
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once ``kill_all`` began: no check starts from then on."""
        with self._cond:
            return self._closed

    def starting(self) -> None:
        """A check is about to be started; ``started`` must follow, with its PID or None if it did not start.

        OSError (ECANCELED) once ``kill_all`` began: the owner is stopping, nothing new starts.
        """
        with self._cond:
            if self._closed:
                raise OSError(errno.ECANCELED, "not started, the plugin is stopping")
            self._starting += 1

    def started(self, pid: int | None) -> None:
        """The start announced by ``starting`` is over: track ``pid``'s group, or kill it once ``kill_all`` ran."""
        with self._cond:
            late = self._closed
            if pid is not None and not late:
                self._groups.add(pid)
        try:
            if pid is not None and late:
                _kill_group_of(pid)  # the owner stopped while this one was starting
        finally:
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._groups)

    def discard(self, pid: int) -> None:
        with self._cond:
            self._groups.discard(pid)

    def kill_all(self, starts_wait_s: float = STARTS_WAIT_S) -> int:
        """Kill every running check's process group and refuse new ones; how many were running.

        Returns once the starts under way have ended (each kills its own process), or after
        ``starts_wait_s`` (a start takes milliseconds; the plugin's whole stop has half a second).
        """
        with self._cond:
            self._closed = True
            groups, self._groups = self._groups, set()
        for pid in groups:
            _kill_group_of(pid)
        with self._cond:
            if not self._cond.wait_for(lambda: self._starting == 0, starts_wait_s):
                log.warning("a command was still starting when its owner stopped; it may outlive the plugin",
                            extra={"starting": self._starting, "waited_s": starts_wait_s})
        return len(groups)


def run_check(
    argv: Sequence[str],
    timeout_s: float,
    *,
    env: dict[str, str] | None = None,
    running: RunningChecks | None = None,
    strict: bool = True,
) -> HealthResult:
    """Run ``argv`` and judge it: exit code 0 within ``timeout_s`` is healthy.

    Its stderr goes to a temporary file rather than a pipe: a check that leaves a background child
    holding stderr open is judged by its own exit, and nothing here waits on that child. ``running``
    tracks the check while it runs, so its owner can kill it when it stops. ``strict``: as root, a
    program others could change is not run, and the check fails saying so (``command_trust``).
    """
    started = time.monotonic()
    if env is None:
        env = check_environment()
    wall = time.time()
    with tempfile.TemporaryFile() as err:
        try:
            proc = start_isolated(argv, stdout=subprocess.DEVNULL, stderr=err, env=env, running=running,
                                  strict=strict, what="health command")
        except UntrustedProgram as exc:
            return HealthResult(False, None, refusal("health check", exc.reasons), 0.0, wall)
        except OSError as exc:
            program = argv[0] if argv else "?"
            detail = f"health check could not start: {program}: {exc.strerror or exc}"
            return HealthResult(False, None, detail, 0.0, wall)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.wait()
            latency = time.monotonic() - started
            return HealthResult(False, None, f"health check timed out after {timeout_s:g}s", latency, wall)
        finally:
            if running is not None:
                running.discard(proc.pid)
        latency = time.monotonic() - started
        if code == 0:
            return HealthResult(True, 0, "", latency, wall)
        err.seek(max(0, os.fstat(err.fileno()).st_size - _STDERR_LIMIT))
        tail = last_line(err.read())
    detail = f"health check failed: exit {code}" + (f": {tail}" if tail else "")
    return HealthResult(False, code, detail, latency, wall)


def start_isolated(
    argv: Sequence[str],
    *,
    stdout: Any,
    stderr: Any,
    env: dict[str, str],
    running: RunningChecks | None,
    strict: bool = True,
    what: str = "command",
) -> subprocess.Popen[bytes]:
    """Start a rule's command (health check or stats) in a session of its own, stdin on /dev/null.

    Its own session, so a timeout can kill its whole process group; ``running`` tracks it so its
    owner can kill it at stop (the caller discards it when it ends). OSError when it cannot start;
    ``strict``: UntrustedProgram when, as root, its program (``what`` names it) is not root's alone
    (``command_trust``). The program is looked up once, for that check and for the wrapper below.

    It dies with the thread that starts it (``die_with_parent``). Here that is a worker of the
    watcher's health pool, which lives until the pool shuts down at stop, after ``kill_all`` killed
    every check (``concurrent.futures`` workers end only at shutdown), or a CLI thread that waits for
    the command: so in effect it dies with the plugin (a SIGKILL, a crash), and at no other time.
    """
    program = find_program(argv[0], env) if argv else None
    if strict and program is not None and (reasons := untrusted_found(program, what)):
        raise UntrustedProgram(reasons)
    wrapper = die_with_parent() if program is not None else ()
    if running is None:
        return _popen_isolated(argv, stdout=stdout, stderr=stderr, env=env, wrapper=wrapper)
    running.starting()
    pid = None
    try:
        proc = _popen_isolated(argv, stdout=stdout, stderr=stderr, env=env, wrapper=wrapper)
        pid = proc.pid
    finally:
        running.started(pid)  # tracked, or killed if the owner stopped meanwhile
    return proc


def die_with_parent() -> tuple[str, ...]:
    """What to put before a command's argv so that it is SIGKILLed when the thread that started it exits.

    ``setpriv --pdeathsig KILL -- argv`` sets PR_SET_PDEATHSIG and execs the command: the same PID,
    the same exit code, and a child the command forks (a daemon such as adb's server) is not
    affected, the kernel clears it in forked children (and at the exec of a set-user-ID program: that one
    is not covered, nor a command whose parent dies before setpriv ran). Done in setpriv because
    ``preexec_fn`` is unsafe in a threaded process. Found once, only at ``SETPRIV_PATHS``, and tried once (util-linux before 2.33 has
    no ``--pdeathsig``); () when there is none: commands then start as they are, and a SIGKILLed
    plugin leaves them running (said once, at debug level).
    """
    global _deathsig_prefix
    with _deathsig_lock:
        if _deathsig_prefix is None:
            _deathsig_prefix = _find_setpriv()
        return _deathsig_prefix


def _find_setpriv() -> tuple[str, ...]:
    for path in SETPRIV_PATHS:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            continue
        prefix = (path, "--pdeathsig", "KILL", "--")
        try:
            probe = subprocess.run([*prefix, path, "--version"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env={}, timeout=_SETPRIV_PROBE_S, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("setpriv could not be tried", extra={"path": path, "error": str(exc)})
            continue
        if probe.returncode == 0:
            return prefix
        log.debug("setpriv has no --pdeathsig", extra={"path": path, "exit_code": probe.returncode})
    log.debug("rule commands start without setpriv --pdeathsig: a plugin that is SIGKILLed leaves them running",
              extra={"looked_at": ",".join(SETPRIV_PATHS)})
    return ()


def _popen_isolated(
    argv: Sequence[str], *, stdout: Any, stderr: Any, env: dict[str, str], wrapper: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """Popen ``argv`` after ``wrapper`` (``die_with_parent``, or nothing), marked with this process as its owner.

    ``wrapper`` only for a program that is found: one that is not must fail here, with OSError, not in setpriv.
    """
    mark = own_mark()  # names this process as the owner, so the next instance can reap what it leaves (orphans)
    return subprocess.Popen(
        [*wrapper, *argv], stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, close_fds=True,
        start_new_session=True, env={**env, OWNER_VARIABLE: mark} if mark is not None else env,
    )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the command's whole process group (it runs in a session of its own)."""
    _kill_group_of(proc.pid)


def _kill_group_of(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        log.debug("command exited before it could be killed", extra={"pid": pid})
