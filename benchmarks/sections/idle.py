"""6. Memory and CPU while idle, with 0 and with N devices attached.

All three processes are started in the same world (the plugin with its Fingerprint stream open, as
an agent keeps it), wait for their first report, settle briefly, then are left alone for the
idle period. CPU is user + system time from /proc/<pid>/stat over that period (all threads),
memory is VmRSS from /proc/<pid>/status at its end.
"""

from __future__ import annotations

import time

from benchmarks.plan import Plan, say
from benchmarks.report import Row, Section
from benchmarks.subjects import Baseline, Ours, Subject
from benchmarks.world import World, fleet

NAME = "idle"
TITLE = "6. Idle: memory and CPU"
TARGET_RSS_MB = 60.0
TARGET_CPU_PERCENT = 0.5  # "near zero": under half a percent of one core


def measure(plan: Plan, world: World, ids: set[str]) -> dict[str, dict[str, float]]:
    subjects: list[Subject] = []
    try:
        subjects.append(Ours(world, plan.debounce))
        subjects.append(Baseline(world, "poll", plan.poll_interval, name="poller"))
        subjects.append(Baseline(world, "rescan", name="rescan"))
        for subject in subjects:
            subject.wait_usable(ids, 60.0)
        time.sleep(plan.idle_settle_s)  # let start-up work (first scans, thread pools) finish
        before = {s.name: s.cpu_seconds() for s in subjects}
        started = time.monotonic()
        time.sleep(plan.idle_seconds)  # the measurement: nobody does anything
        elapsed = time.monotonic() - started
        result = {}
        for s in subjects:
            used = s.cpu_seconds() - before[s.name]
            result[s.name] = {"cpu_percent": round(100.0 * used / elapsed, 3), "cpu_seconds": round(used, 3),
                              **s.memory_mb()}
        return result
    finally:
        for subject in subjects:
            subject.close()


def run(plan: Plan) -> Section:
    section = Section(NAME, TITLE)
    with World() as world:
        say(f"idle: 0 devices, {plan.idle_seconds:.0f} s")
        section.data["0"] = measure(plan, world, set())
        ids = set(world.plug_all(fleet(plan.idle_devices)))
        say(f"idle: {plan.idle_devices} devices, {plan.idle_seconds:.0f} s")
        section.data[str(plan.idle_devices)] = measure(plan, world, ids)
    for devices in ("0", str(plan.idle_devices)):
        figures = section.data[devices]
        rss = {name: figures[name]["rss_mb"] for name in ("ours", "poller", "rescan")}
        cpu = {name: figures[name]["cpu_percent"] for name in ("ours", "poller", "rescan")}
        section.rows += [
            Row(f"{devices} devices: RSS", "MiB", rss["ours"], rss["poller"], rss["rescan"],
                f"< {TARGET_RSS_MB:.0f} MB", rss["ours"] < TARGET_RSS_MB),
            Row(f"{devices} devices: CPU while idle", "% of a core", cpu["ours"], cpu["poller"], cpu["rescan"],
                f"< {TARGET_CPU_PERCENT} %", cpu["ours"] < TARGET_CPU_PERCENT),
        ]
    section.notes.append(f"{plan.idle_seconds:.0f} s idle per case, all three processes side by side; CPU resolution "
                         f"is one clock tick (10 ms) over the period")
    return section
