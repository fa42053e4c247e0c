"""Health checks: a rule's command run for one device, with a timeout, never through a shell.

The command is an argv list. It runs in its own session with stdin and stdout on /dev/null and
stderr on a pipe, so it never inherits the plugin's stdout/stderr (the Nomad agent would then not
see the plugin exit) and a timeout can kill the whole process group.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

_STDERR_LIMIT = 4096


@dataclass(frozen=True)
class HealthResult:
    """What one run of a health check found."""

    ok: bool
    exit_code: int | None  # None when it timed out or could not start
    detail: str  # human reason: "" when ok, else the exit code and the last stderr line
    latency_s: float
    checked_at: float  # wall clock


def _last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def check_environment() -> dict[str, str]:
    """The plugin's environment without go-plugin's handshake variables, which are not the check's business."""
    return {
        k: v for k, v in os.environ.items() if k != "NOMAD_PLUGIN_MAGIC_COOKIE" and not k.startswith("PLUGIN_")
    }


def run_check(argv: Sequence[str], timeout_s: float, *, env: dict[str, str] | None = None) -> HealthResult:
    """Run ``argv`` and judge it: exit code 0 within ``timeout_s`` is healthy."""
    started = time.monotonic()
    if env is None:
        env = check_environment()
    wall = time.time()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,
            env=env,
        )
    except OSError as exc:
        program = argv[0] if argv else "?"
        return HealthResult(False, None, f"health check could not start: {program}: {exc.strerror or exc}", 0.0, wall)
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        latency = time.monotonic() - started
        return HealthResult(False, None, f"health check timed out after {timeout_s:g}s", latency, wall)
    latency = time.monotonic() - started
    if proc.returncode == 0:
        return HealthResult(True, 0, "", latency, wall)
    tail = _last_line(err[-_STDERR_LIMIT:])
    detail = f"health check failed: exit {proc.returncode}" + (f": {tail}" if tail else "")
    return HealthResult(False, proc.returncode, detail, latency, wall)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        log.debug("health check exited before it could be killed", extra={"pid": proc.pid})
