"""run_stats_command: the rule's command runs as a real subprocess, bounded in time and output, and never raises."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from discovery.checks.readings import Reading
from discovery.checks.stats_command import run_stats_command

PY = sys.executable


def py(code: str) -> list[str]:
    return [PY, "-c", code]


def test_stats_command_readings_with_units() -> None:
    """The printed object becomes readings, units in Nomad's spelling; the run's start time is the wall clock given."""
    result = run_stats_command(py('print(\'{"level": 87, "temp": {"value": 31.2, "unit": "celsius"}}\')'), 10.0,
                               wall=lambda: 1234.5)
    assert result.error is None and result.problems == ()
    assert dict(result.readings) == {"level": Reading(87), "temp": Reading(31.2, "C")}
    assert result.taken_at == 1234.5 and result.latency_s > 0


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_stats_command_timeout_kills_the_process_group(tmp_path: Path) -> None:
    """A hanging command and its children are killed at the timeout: no readings, the reason says so."""
    pid_file = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; "
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pid_file)!r}, 'w').write(str(c.pid)); time.sleep(60)")
    result = run_stats_command(py(code), 2.0)
    assert result.readings == {} and result.error is not None
    assert (result.error.kind, result.error.message) == ("timeout", "stats command timed out after 2s")
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5.0
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the command's child outlived the timeout"


def test_stats_command_huge_output_is_cut_off() -> None:
    """A command that prints without end is killed once it passes the limit."""
    result = run_stats_command(["/usr/bin/yes"], 30.0, limit=100_000)
    assert result.error is not None and result.error.message == "stats command printed more than 100000 bytes; killed"


@pytest.mark.parametrize(
    ("argv", "kind", "message"),
    [
        pytest.param(py("import sys; print('disk gone', file=sys.stderr); sys.exit(3)"), "exit",
                     "stats command failed: exit 3: disk gone", id="exit-code"),
        pytest.param(py("print('level: 87')"), "output", "stats command output is not JSON", id="garbage"),
        pytest.param(py("pass"), "output", "stats command printed nothing", id="silent"),
        pytest.param(["/nonexistent/battery"], "start",
                     "stats command could not start: /nonexistent/battery: No such file or directory", id="missing"),
    ],
)
def test_stats_command_failure_gives_no_readings_and_says_why(argv: list[str], kind: str, message: str) -> None:
    """A failing, garbage-printing, silent or missing command costs its readings, with the reason."""
    result = run_stats_command(argv, 10.0)
    assert result.readings == {} and result.error is not None
    assert result.error.kind == kind and result.error.message.startswith(message)


def test_stats_command_ends_with_the_process_not_its_background_child() -> None:
    """A child left holding stdout (adb starting its server) does not hold the run up to the timeout."""
    code = ("import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'], "
            "start_new_session=True); print('{\"a\": 1}')")
    result = run_stats_command(py(code), 20.0)
    assert dict(result.readings) == {"a": Reading(1)}
    assert result.latency_s < 15.0  # ended at the command's exit, well before the child or the timeout


def test_stats_command_does_not_pass_on_go_plugin_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command runs without the plugin's handshake cookie, as health checks do."""
    monkeypatch.setenv("NOMAD_PLUGIN_MAGIC_COOKIE", "e4327c2e")
    monkeypatch.setenv("PLUGIN_PROTOCOL_VERSIONS", "2")
    code = ("import os, json; print(json.dumps({'leaked': int('NOMAD_PLUGIN_MAGIC_COOKIE' in os.environ "
            "or 'PLUGIN_PROTOCOL_VERSIONS' in os.environ)}))")
    assert dict(run_stats_command(py(code), 10.0).readings) == {"leaked": Reading(0)}
