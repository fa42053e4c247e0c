"""How big each measurement is: the full plan (about 3 minutes on 2 cores) and the quick one for the smoke test."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    quick: bool = False
    startup_runs: int = 5  # plugin spawns for spawn -> handshake / first Fingerprint
    cli_runs: int = 15  # runs of `nomad-device-usb --help` and of a bare interpreter
    enumerate_sizes: tuple[int, ...] = (10, 100, 1000)
    enumerate_runs: int = 3  # in-process repetitions per size
    wire_runs: int = 2  # process spawns per size and subject
    hotplug_devices: int = 100  # each plugged then unplugged: 2 events per device
    storm_devices: int = 200
    storm_quiet_s: float = 1.5  # no message for this long after the last device showed: the storm is over
    storm_idle_s: float = 1.0  # no CPU tick for this long: the subject is done with the storm
    storm_busy_cap_s: float = 15.0  # stop waiting for a subject still busy after this long
    reserve_devices: int = 200
    reserve_calls: int = 300  # per request size, after a warm-up
    idle_devices: int = 200
    idle_seconds: float = 10.0
    idle_settle_s: float = 1.0  # after the first report, before the idle period starts
    reload_runs: int = 10
    readings_devices: int = 200
    readings_interval: str = "5s"  # each device's stats command runs this often
    readings_seconds: float = 30.0  # measured period, after every device has its first readings
    stats_interval_s: float = 1.0  # Nomad's default telemetry collection_interval
    debounce: str = "200ms"  # the plugin's default
    debounce_s: float = 0.2
    poll_interval: float = 5.0  # the poller baseline's period

    @classmethod
    def quick_plan(cls) -> Plan:
        """Tiny sizes: every code path once, in seconds rather than minutes (the smoke test)."""
        return cls(quick=True, startup_runs=1, cli_runs=2, enumerate_sizes=(3, 10), enumerate_runs=1, wire_runs=1,
                   hotplug_devices=5, storm_devices=10, storm_quiet_s=0.4, storm_idle_s=0.3, storm_busy_cap_s=5.0,
                   reserve_devices=10, reserve_calls=20, idle_devices=10, idle_seconds=1.0, idle_settle_s=0.2,
                   reload_runs=2, poll_interval=0.5, readings_devices=10, readings_interval="1s",
                   readings_seconds=2.0, stats_interval_s=0.25)


def say(message: str) -> None:
    """Progress on stderr; stdout carries only the table or the JSON."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)
