"""The README's main command: the demo runs the real plugin end to end and tells the truth about it."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_end_to_end() -> None:
    """Every step of the demo happens: groups appear, unplug is refused, replug keeps the ID, a device outside
    USB and a declared one are offered and reserved, clean exit."""
    run = subprocess.run(
        [sys.executable, "-m", "plugin.main", "demo"], capture_output=True, text=True, timeout=30  # it takes 1 s
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "google/phone/pixel-7" in out and "arduino/board/uno" in out and "espressif/board/esp32-devkit" in out
    assert "UNHEALTHY (unplugged)" in out
    assert "-> FAILED_PRECONDITION: device usb-10c4-ea60-58A1F3C2 is unplugged" in out
    assert "same ID as before: True" in out
    assert "env     ANDROID_SERIAL=29011FDH2000XY" in out
    assert "tty-platform-fe201000.serial-ttyAMA0: healthy" in out and "mius-bench-1: healthy" in out
    assert "env     HAT_UART=/dev/ttyAMA0" in out and "device  /dev/gpiochip0 -> /dev/gpiochip0 (rw)" in out
    assert "env     CAR_ADDRESS=192.0.2.10" in out
    assert "plugin exited with 0" in out and "all hclog JSON" in out
