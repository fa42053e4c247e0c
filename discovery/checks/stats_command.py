"""Running a rule's stats command for one device: an argv list, a timeout, and a bound on what it may print.

Isolated as health checks are (``discovery.checks.health``): never through a shell, in its own session so a
timeout kills the whole process group, stdin on /dev/null, stderr in a temporary file, and the
plugin's environment without go-plugin's handshake variables. stdout is a pipe read with a limit:
a command that prints more than ``STDOUT_LIMIT`` bytes is killed and gives no readings. The run ends
when the command exits, not when its stdout closes, so a background child left holding the pipe
(adb starting its server) costs nothing. Every failure becomes a ``Problem`` in the result; this
never raises for anything the command does.
"""

from __future__ import annotations

import os
import select
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence

from discovery.checks.command_trust import UntrustedProgram, refusal
from discovery.checks.health import RunningChecks, check_environment, kill_group, last_line, start_isolated
from discovery.checks.readings import Problem, ReadingsFormatError, ReadingsResult, parse_readings

STDOUT_LIMIT = 64 * 1024
_STDERR_TAIL = 4096
_POLL_SLICE_S = 0.05  # only without pidfd: how often to look whether the command has exited


def run_stats_command(
    argv: Sequence[str],
    timeout_s: float,
    *,
    env: dict[str, str] | None = None,
    limit: int = STDOUT_LIMIT,
    wall: Callable[[], float] = time.time,
    running: RunningChecks | None = None,
    strict: bool = True,
) -> ReadingsResult:
    """Run ``argv`` and turn what it printed into readings, or say why there are none.

    ``running`` tracks the command while it runs, as for health checks, so its owner can kill it
    when it stops (a hanging command must not outlive the plugin). ``strict``: as root, a program
    others could change is not run (``command_trust``): no readings, and a problem that says why.
    """
    started = time.monotonic()
    taken_at = wall()
    if env is None:
        env = check_environment()

    def failed(kind: str, message: str) -> ReadingsResult:
        return ReadingsResult(error=Problem(kind, message), taken_at=taken_at, latency_s=time.monotonic() - started)

    with tempfile.TemporaryFile() as err:
        try:
            proc = start_isolated(argv, stdout=subprocess.PIPE, stderr=err, env=env, running=running,
                                  strict=strict, what="stats command")
        except UntrustedProgram as exc:
            message = refusal("stats command", exc.reasons)
            return failed(f"untrusted:{message}", message)  # logged once per device and reason (ReadingsBook)
        except OSError as exc:
            program = argv[0] if argv else "?"
            return failed("start", f"stats command could not start: {program}: {exc.strerror or exc}")
        assert proc.stdout is not None
        try:
            outcome, output = _collect(proc, proc.stdout.fileno(), started + timeout_s, limit)
        finally:
            proc.stdout.close()
            if running is not None:
                running.discard(proc.pid)
        if outcome != "exited":
            kill_group(proc)
            proc.wait()
            if outcome == "timeout":
                return failed("timeout", f"stats command timed out after {timeout_s:g}s")
            return failed("output", f"stats command printed more than {limit} bytes; killed")
        code = proc.wait()
        if code != 0:
            err.seek(max(0, os.fstat(err.fileno()).st_size - _STDERR_TAIL))
            tail = last_line(err.read())
            return failed("exit", f"stats command failed: exit {code}" + (f": {tail}" if tail else ""))
    try:
        readings, problems = parse_readings(output)
    except ReadingsFormatError as exc:
        return failed("output", f"stats command {exc}")
    return ReadingsResult(readings, None, tuple(problems), taken_at, time.monotonic() - started)


def _collect(proc: subprocess.Popen[bytes], fd: int, deadline: float, limit: int) -> tuple[str, bytes]:
    """Read stdout until the process exits: ("exited" | "timeout" | "too much", what was read)."""
    os.set_blocking(fd, False)
    try:
        exit_fd: int | None = os.pidfd_open(proc.pid)  # readable once the process has exited
    except (AttributeError, OSError):  # kernels before 5.3: look at the process every slice instead
        exit_fd = None
    data = bytearray()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if exit_fd is not None:
        poller.register(exit_fd, select.POLLIN)
    eof = False
    try:
        while True:
            if proc.poll() is not None:
                if not eof:
                    _drain(fd, data, limit + 1)  # what it wrote before it exited
                return ("too much" if len(data) > limit else "exited"), bytes(data)
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout", bytes(data)
            wait = left if exit_fd is not None else min(left, _POLL_SLICE_S)
            ready = poller.poll(max(1, int(wait * 1000)))
            if not eof and any(ready_fd == fd for ready_fd, _ in ready) and not _drain(fd, data, limit + 1):
                eof = True
                poller.unregister(fd)  # a closed pipe would poll ready forever: wait for the exit alone
            if len(data) > limit:
                return "too much", bytes(data)
    finally:
        if exit_fd is not None:
            os.close(exit_fd)


def _drain(fd: int, data: bytearray, cap: int) -> bool:
    """Read what is available (up to ``cap`` bytes in all); False at end of file."""
    while len(data) < cap:
        try:
            chunk = os.read(fd, min(65536, cap - len(data)))
        except BlockingIOError:
            return True
        if not chunk:
            return False
        data += chunk
    return True
