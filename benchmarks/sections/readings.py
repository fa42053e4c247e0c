"""8. Readings: N devices, each with a stats command every few seconds, against the same run without readings.

Two runs of the real plugin in one world of N FTDI adapters: the benchmark's rules as they are, and
the same rules with a ``stats`` command on the FTDI rule (a POSIX sh script printing two readings,
run every ``readings_interval``). In each run the Stats stream is open at Nomad's default interval
(1 s), as an agent keeps it. Once every device is usable (and, with readings, every device has its
first readings), the plugin is measured for ``readings_seconds``: its own CPU time, its children's
(the commands it ran and waited for), RSS at the end, and for every Stats message the time from the
timestamp the plugin put in it to its arrival here, and how much later than one interval after the
previous message it came. Under umockdev every command also loads its preload library, so a
command costs more here than on a real machine.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.numbers import children_cpu_seconds, cpu_seconds, memory_mb, summary_ms
from benchmarks.plan import Plan, say
from benchmarks.report import Row, Section
from benchmarks.subjects import BenchError, Ours
from benchmarks.world import World, fleet, rules_text

NAME = "readings"
TITLE = "8. Readings: a stats command per device (Stats stream at 1 s)"
READINGS_SCRIPT = """\
#!/bin/sh
# A farm device's stats command: two readings, as a board answering its status query would give them.
printf '{"vbus": {"value": 5.02, "unit": "V"}, "temp": {"value": 41.5, "unit": "C"}}\\n'
"""
FIRST_READINGS_S = 120.0


@dataclass
class StatsLog:
    """Stats messages as they arrive: (arrival wall time, arrival monotonic time, message summary)."""

    arrivals: list[tuple[float, float, dict[str, Any]]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    error: str | None = None


def summarise(message: Any) -> dict[str, Any]:
    """What a Stats message says about readings: devices with readings, errors, oldest reading, its timestamp."""
    stamps: list[float] = []
    with_readings = errors = 0
    oldest = 0
    for group in message.groups:
        for stats in group.instance_stats.values():
            stamps.append(stats.timestamp.ToNanoseconds() / 1e9)
            if "readings" in stats.stats.nested and stats.stats.nested["readings"].attributes:
                with_readings += 1
            if "readings_error" in stats.stats.attributes:
                errors += 1
            age = stats.stats.attributes.get("seconds_since_readings")
            if age is not None:
                oldest = max(oldest, age.int_numerator_val.value)
    return {"stamp": min(stamps, default=0.0), "with_readings": with_readings, "errors": errors, "oldest_s": oldest}


def read_stats(call: Any, log: StatsLog) -> None:
    try:
        for message in call:
            wall, mono = time.time(), time.monotonic()
            summary = summarise(message)
            with log.cond:
                log.arrivals.append((wall, mono, summary))
                log.cond.notify_all()
    except Exception as exc:  # cancelled at the end, or the stream broke: the latter is a finding
        with log.cond:
            log.error = str(exc)
            log.cond.notify_all()


def wait_for(log: StatsLog, predicate: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with log.cond:
        while True:
            if log.arrivals and predicate(log.arrivals[-1][2]):
                return log.arrivals[-1][2]
            left = deadline - time.monotonic()
            if left <= 0 or log.error is not None:
                last = log.arrivals[-1][2] if log.arrivals else None
                raise BenchError(f"readings: condition not met in {timeout:.0f} s (last: {last}, error: {log.error})")
            log.cond.wait(left)


def measure(plan: Plan, world: World, ids: set[str], with_readings: bool) -> dict[str, Any]:
    """One run: the plugin with or without stats commands, measured while nobody plugs anything."""
    extra = ""
    if with_readings:
        script = world.dir / "readings.sh"
        script.write_text(READINGS_SCRIPT)
        extra = (f"    stats: {{command: [/bin/sh, \"{script}\", \"{{serial}}\"], interval: {plan.readings_interval}, "
                 "timeout: 1s, summary: vbus}\n")
    world.write_rules(rules_text(ftdi_extra=extra))
    with Ours(world, plan.debounce) as ours:
        ours.wait_usable(ids, 60.0)
        log = StatsLog()
        call = ours.plugin.stats(plan.stats_interval_s)
        reader = threading.Thread(target=read_stats, args=(call, log), name="stats-reader", daemon=True)
        reader.start()
        try:
            if with_readings:
                wait_for(log, lambda s: s["with_readings"] == len(ids), FIRST_READINGS_S)
            else:
                wait_for(log, lambda s: True, 30.0)
            time.sleep(plan.stats_interval_s)  # one more message, so the period starts between two
            pid = ours.pid
            cpu0, children0 = cpu_seconds(pid), children_cpu_seconds(pid)
            with log.cond:
                first = len(log.arrivals)
            started = time.monotonic()
            time.sleep(plan.readings_seconds)  # the measurement: the plugin and its commands alone
            elapsed = time.monotonic() - started
            cpu, children = cpu_seconds(pid) - cpu0, children_cpu_seconds(pid) - children0
            memory = memory_mb(pid)
            with log.cond:
                window = log.arrivals[first:]
                before = log.arrivals[first - 1] if first > 0 else None
                broke = log.error
        finally:
            call.cancel()
            reader.join(10.0)
    if broke is not None:
        raise BenchError(f"readings: the Stats stream broke: {broke}")
    latencies = [wall - summary["stamp"] for wall, _, summary in window]
    gaps = []
    previous = before[1] if before is not None else None
    for _, mono, _ in window:
        if previous is not None:
            gaps.append(max(0.0, mono - previous - plan.stats_interval_s))
        previous = mono
    last = window[-1][2] if window else {}
    return {
        "devices": len(ids),
        "seconds": round(elapsed, 2),
        "messages": len(window),
        "plugin_cpu_percent": round(100.0 * cpu / elapsed, 2),
        "children_cpu_percent": round(100.0 * children / elapsed, 2),
        **memory,
        "stats_latency_ms": summary_ms(latencies),
        "stats_late_ms": summary_ms(gaps),
        "devices_with_readings": last.get("with_readings", 0),
        "readings_errors": last.get("errors", 0),
        "oldest_reading_s": last.get("oldest_s", 0),
    }


def run(plan: Plan) -> Section:
    section = Section(NAME, TITLE)
    with World() as world:
        ids = set(world.plug_all(fleet(plan.readings_devices)))
        say(f"readings: {len(ids)} devices without readings, {plan.readings_seconds:.0f} s")
        section.data["without"] = measure(plan, world, ids, with_readings=False)
        say(f"readings: {len(ids)} devices with a stats command every {plan.readings_interval}, "
            f"{plan.readings_seconds:.0f} s")
        section.data["with"] = measure(plan, world, ids, with_readings=True)
    without, with_ = section.data["without"], section.data["with"]
    n = plan.readings_devices
    every = plan.readings_interval
    for label, key, unit in (
        ("plugin CPU", "plugin_cpu_percent", "% of a core"),
        ("its commands' CPU", "children_cpu_percent", "% of a core"),
        ("plugin RSS at the end", "rss_mb", "MiB"),
    ):
        section.rows += [
            Row(f"{n} devices, no readings: {label}", unit, without[key]),
            Row(f"{n} devices, readings every {every}: {label}", unit, with_[key]),
        ]
    for label, key in (("Stats message: timestamp -> received", "stats_latency_ms"),
                       ("Stats message: later than the interval", "stats_late_ms")):
        for name, figures in (("no readings", without), (f"readings every {every}", with_)):
            section.rows += [
                Row(f"{n} devices, {name}: {label}, p50", "ms", figures[key].get("p50")),
                Row(f"{n} devices, {name}: {label}, p99", "ms", figures[key].get("p99")),
            ]
    section.rows.append(Row(f"{n} devices, readings every {every}: devices with readings / errors at the end",
                            "count", with_["devices_with_readings"], target=f"{n} / 0",
                            met=with_["devices_with_readings"] == n and with_["readings_errors"] == 0))
    section.rows.append(Row(f"{n} devices, readings every {every}: oldest reading at the end", "s",
                            with_["oldest_reading_s"]))
    section.notes.append(f"{plan.readings_seconds:.0f} s per run after every device was usable (and had its first "
                         f"readings); Stats at {plan.stats_interval_s:g} s; {with_['messages']} messages measured with "
                         f"readings, {without['messages']} without; command: /bin/sh printing 2 readings, "
                         "under umockdev's preload; 4 command workers (shared with health checks)")
    return section
