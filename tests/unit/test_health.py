"""Health checks run as real subprocesses: verdicts, reasons and timeouts."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from discovery.checks.health import HealthResult, RunningChecks, run_check


def test_run_check_ok_and_failure_reason() -> None:
    """Exit 0 is healthy; otherwise the reason holds the exit code and the last stderr line."""
    assert run_check([sys.executable, "-c", "pass"], 10.0).ok
    result = run_check([sys.executable, "-c", "import sys; print('x', file=sys.stderr); print('last', file=sys.stderr); sys.exit(4)"], 10.0)
    assert not result.ok and result.exit_code == 4
    assert result.detail == "health check failed: exit 4: last"


def test_run_check_missing_program_is_named() -> None:
    """A command that cannot start says which program is missing."""
    result = run_check(["/nonexistent/adb", "get-state"], 5.0)
    assert not result.ok and result.exit_code is None
    assert result.detail == "health check could not start: /nonexistent/adb: No such file or directory"


def test_run_check_timeout_kills_the_process_group() -> None:
    """A hanging check (and its children) is killed at the timeout and reported as such."""
    script = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    result = run_check([sys.executable, "-c", script], 0.5)
    assert not result.ok and result.detail == "health check timed out after 0.5s"


def test_run_check_does_not_pass_on_go_plugin_variables(monkeypatch) -> None:
    """The check runs without the plugin's handshake cookie, so it never starts in plugin mode."""
    monkeypatch.setenv("NOMAD_PLUGIN_MAGIC_COOKIE", "e4327c2e")
    monkeypatch.setenv("PLUGIN_PROTOCOL_VERSIONS", "2")
    script = "import os, sys; sys.exit(1 if 'NOMAD_PLUGIN_MAGIC_COOKIE' in os.environ or 'PLUGIN_PROTOCOL_VERSIONS' in os.environ else 0)"
    assert run_check([sys.executable, "-c", script], 10.0).ok


def test_run_check_judges_exit_not_a_background_child() -> None:
    """A check that exits 0 but leaves a child holding stderr is healthy, and we do not wait for the child."""
    script = (
        "import subprocess, sys; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(5)'], start_new_session=True)"
    )
    result = run_check([sys.executable, "-c", script], 3.0)
    assert result.ok, result.detail


def test_running_checks_are_killed_when_their_owner_stops() -> None:
    """kill_all ends a check still running (it reports the kill), and a check asked for after it does not start."""
    running = RunningChecks()
    results: list[HealthResult] = []
    worker = threading.Thread(target=lambda: results.append(run_check(["/bin/sleep", "60"], 30.0, running=running)))
    worker.start()
    deadline = time.monotonic() + 10.0
    while not len(running) and time.monotonic() < deadline:
        threading.Event().wait(0.01)  # the thread has to start the process first
    assert running.kill_all() == 1
    worker.join(10.0)
    assert not worker.is_alive() and results[0].detail == "health check failed: exit -9"
    late = run_check(["/bin/sleep", "60"], 30.0, running=running)
    assert late.detail == "health check could not start: /bin/sleep: not started, the plugin is stopping"


def test_running_checks_kill_all_waits_for_a_check_being_started() -> None:
    """A check being started when its owner stops (forked, PID not known yet) is killed before kill_all returns.

    The plugin exits milliseconds after kill_all; a check whose start was under way then lived on for ever.
    """
    running = RunningChecks()
    running.starting()  # as start_isolated announces a start, before the fork
    stopper = threading.Thread(target=running.kill_all, kwargs={"starts_wait_s": 60.0})
    stopper.start()
    deadline = time.monotonic() + 10.0
    while not running.closed and time.monotonic() < deadline:
        threading.Event().wait(0.01)  # kill_all runs on its own thread
    stopper.join(0.5)  # it waits for the start: returning now would leave the check behind
    assert stopper.is_alive(), "kill_all returned while a check was still being started"
    check = subprocess.Popen(["/bin/sleep", "60"], start_new_session=True)  # the start completes
    running.started(check.pid)
    stopper.join(10.0)
    assert not stopper.is_alive() and check.wait(10.0) == -signal.SIGKILL
    assert len(running) == 0


def test_running_checks_kill_all_gives_up_on_a_start_that_never_ends(caplog: pytest.LogCaptureFixture) -> None:
    """A start that does not end within starts_wait_s: kill_all returns anyway (the plugin must exit), with a warning."""
    running = RunningChecks()
    running.starting()
    assert running.kill_all(starts_wait_s=0.01) == 0
    assert [r.getMessage() for r in caplog.records] == [
        "a command was still starting when its owner stopped; it may outlive the plugin"
    ]
