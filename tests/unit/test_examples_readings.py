"""The readings scripts shipped in examples/readings/, run through the plugin's own stats-command runner.

android-battery talks to a fake adb (a script on $ADB printing what a phone's dumpsys prints);
board-status talks to a fake board on a pseudo-terminal that answers its status query.
"""

from __future__ import annotations

import os
import pty
import threading
from pathlib import Path

import pytest

from discovery.checks.health import check_environment
from discovery.checks.readings import Reading
from discovery.checks.stats_command import run_stats_command

ROOT = Path(__file__).resolve().parents[2]
ANDROID_BATTERY = str(ROOT / "examples" / "readings" / "android-battery")
BOARD_STATUS = str(ROOT / "examples" / "readings" / "board-status")

DUMPSYS = """\
Current Battery Service state:\r
  AC powered: false\r
  USB powered: true\r
  status: 2\r
  health: 2\r
  present: true\r
  level: 87\r
  scale: 100\r
  voltage: 4231\r
  temperature: 312\r
  technology: Li-ion\r
"""


def fake_adb(tmp_path: Path, stdout: str, code: int = 0, stderr: str = "") -> dict[str, str]:
    """An adb that checks its arguments, prints ``stdout`` and exits ``code``; the env that points $ADB at it."""
    (tmp_path / "out").write_text(stdout)
    adb = tmp_path / "adb"
    adb.write_text(
        "#!/bin/sh\n"
        '[ "$1 $2 $3 $4 $5" = "-s PIXEL01 shell dumpsys battery" ] || { echo "bad args: $*" >&2; exit 9; }\n'
        f'cat "{tmp_path / "out"}"\n'
        f"printf '%s' '{stderr}' >&2\n"
        f"exit {code}\n"
    )
    adb.chmod(0o755)
    return {**check_environment(), "ADB": str(adb)}


def test_android_battery_reports_level_temperature_and_voltage(tmp_path: Path) -> None:
    """dumpsys battery becomes level in %, temperature in C (from tenths) and voltage in mV."""
    result = run_stats_command([ANDROID_BATTERY, "PIXEL01"], 10.0, env=fake_adb(tmp_path, DUMPSYS))
    assert result.error is None and result.problems == (), result.error
    assert dict(result.readings) == {
        "battery_level": Reading(87, "%"),
        "battery_temperature": Reading(31.2, "C"),
        "battery_voltage": Reading(4231, "mV"),
    }


def test_android_battery_scales_level_and_leaves_out_what_the_phone_does_not_say(tmp_path: Path) -> None:
    """A scale other than 100 gives a percentage; a missing or non-numeric value is left out."""
    report = "  level: 40\n  scale: 50\n  temperature: unknown\n"
    result = run_stats_command([ANDROID_BATTERY, "PIXEL01"], 10.0, env=fake_adb(tmp_path, report))
    assert dict(result.readings) == {"battery_level": Reading(80.0, "%")}


@pytest.mark.parametrize(
    ("stdout", "code", "stderr", "message"),
    [
        pytest.param("", 1, "adb: device offline", "exit 1: adb: device offline", id="offline"),
        pytest.param("Can't find service: battery\n", 0, "",
                     "exit 1: android-battery: no battery level in dumpsys output", id="no-level"),
    ],
)
def test_android_battery_fails_with_the_reason(tmp_path: Path, stdout: str, code: int, stderr: str,
                                               message: str) -> None:
    """An offline phone or a report without a level fails, and the plugin's reason quotes why."""
    result = run_stats_command([ANDROID_BATTERY, "PIXEL01"], 10.0, env=fake_adb(tmp_path, stdout, code, stderr))
    assert result.readings == {} and result.error is not None
    assert result.error.message.endswith(message), result.error.message


class FakeBoard:
    """The board's side of a pseudo-terminal: answers ``STATUS?`` with ``answer`` (or stays silent)."""

    def __init__(self, answer: bytes | None) -> None:
        self.master, slave = pty.openpty()
        self.path = os.ttyname(slave)
        self._slave = slave  # held open so the terminal stays up between the script's open and close
        self.asked = b""
        self._answer = answer
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while b"\n" not in self.asked:
            try:
                self.asked += os.read(self.master, 64)
            except OSError:
                return
        if self._answer is not None:
            os.write(self.master, self._answer)

    def close(self) -> None:
        os.close(self.master)
        os.close(self._slave)
        self._thread.join(5)


def test_board_status_turns_the_answer_into_readings_with_units(tmp_path: Path) -> None:
    """The board answers its query; known names get units, others none, a non-number is left out."""
    board = FakeBoard(b"vbus=5.02 vcc=3.31 temp=41.5 uptime=8123 resets=2 mode=run\r\n")
    try:
        result = run_stats_command([BOARD_STATUS, board.path], 10.0)
    finally:
        board.close()
    assert board.asked == b"STATUS?\n"
    assert result.error is None, result.error
    assert dict(result.readings) == {
        "vbus": Reading(5.02, "V"), "vcc": Reading(3.31, "V"), "temp": Reading(41.5, "C"),
        "uptime": Reading(8123, "s"), "resets": Reading(2),
    }


def test_board_status_silent_board_is_a_failure(tmp_path: Path) -> None:
    """A board that never answers fails the run with the reason, within the script's own wait."""
    board = FakeBoard(None)
    try:
        result = run_stats_command([BOARD_STATUS, board.path], 10.0)
    finally:
        board.close()
    assert result.error is not None and "no answer from" in result.error.message
