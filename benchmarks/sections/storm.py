"""4. Storm: N devices plugged at once, then unplugged at once.

The testbed sends all the uevents as fast as it can (as a hub full of adapters would). For each
wave we count the messages a subject sends until it has been quiet for a while, the time until the
last device shows (usable after the add, gone after the remove), the devices it never showed, and
the CPU it spent until it was idle again. Each subject gets the storm alone, one after the other in
the same world. A subject still busy after Plan.storm_busy_cap_s is cut off (its CPU and busy time are then
lower bounds) and replaced by a fresh one before the remove wave. The waiting periods are in Plan.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.plan import Plan, say
from benchmarks.report import Row, Section
from benchmarks.subjects import Baseline, Ours, Subject
from benchmarks.world import World, expected_id, fleet

NAME = "storm"
TITLE = "4. Storm: N devices at once"
SAMPLE_S = 0.1
MAX_MESSAGES = 3


@dataclass(frozen=True)
class Wave:
    messages: int
    last_shown_s: float | None  # first uevent sent -> last device shown; None if never
    burst_s: float  # how long the testbed took to send the whole burst
    lost: int  # devices the subject still showed wrong once it went quiet
    cpu_s: float  # CPU the subject used from the burst until it was idle (or cut off)
    busy_s: float  # burst start -> last CPU tick seen
    cut_off: bool  # still busy after Plan.storm_busy_cap_s

    def to_json(self) -> dict[str, object]:
        last = None if self.last_shown_s is None else round(self.last_shown_s * 1000.0, 1)
        return {"messages": self.messages, "last_shown_ms": last, "burst_ms": round(self.burst_s * 1000.0, 1),
                "lost": self.lost, "cpu_s": round(self.cpu_s, 2), "busy_s": round(self.busy_s, 2),
                "cut_off": self.cut_off}


def _until_idle(plan: Plan, subject: Subject, t0: float, cpu0: float) -> tuple[float, float, bool]:
    """Sample the subject's CPU time until it stops growing; (CPU used, busy until, cut off)."""
    last, last_change = subject.cpu_seconds(), time.monotonic()
    while time.monotonic() - last_change < plan.storm_idle_s:
        if time.monotonic() - t0 > plan.storm_busy_cap_s:
            return last - cpu0, last_change - t0, True
        time.sleep(SAMPLE_S)
        now = subject.cpu_seconds()
        if now != last:
            last, last_change = now, time.monotonic()
    return last - cpu0, max(0.0, last_change - t0), False


def wave(plan: Plan, subject: Subject, act: Callable[[], None], ids: set[str], added: bool, deadline: float) -> Wave:
    def wrong(usable: frozenset[str]) -> int:
        return len(ids - usable) if added else len(ids & usable)

    start = subject.log.count
    cpu0 = subject.cpu_seconds()
    t0 = time.monotonic()
    act()
    t1 = time.monotonic()
    found = subject.log.wait_for(lambda r: r.at >= t0 and wrong(r.usable) == 0, deadline, start)
    subject.log.wait_quiet(plan.storm_quiet_s, deadline)
    latest = subject.log.latest()
    lost = wrong(latest.usable) if latest is not None else len(ids)
    messages = subject.log.count - start
    cpu, busy, cut_off = _until_idle(plan, subject, t0, cpu0)
    return Wave(messages, None if found is None else found[1].at - t0, t1 - t0, lost, cpu, busy, cut_off)


def storm(plan: Plan, world: World, spawn: Callable[[], Subject], deadline: float) -> tuple[dict[str, Wave], float]:
    """Both waves for one kind of subject; also its peak RSS in MiB."""
    devices = fleet(plan.storm_devices)
    ids = {expected_id(d) for d in devices}

    def plug() -> None:
        world.plug_all(devices)

    def unplug() -> None:
        for dev_id in sorted(ids):
            world.unplug(dev_id)

    subject = spawn()
    try:
        subject.wait_first()
        added = wave(plan, subject, plug, ids, True, deadline)
        peak = subject.memory_mb()["peak_rss_mb"]
        if added.cut_off:  # still chewing on the add wave: a fresh one starts with all devices there
            subject.close()
            subject = spawn()
            subject.wait_usable(ids, deadline)
        removed = wave(plan, subject, unplug, ids, False, deadline)
        peak = max(peak, subject.memory_mb()["peak_rss_mb"])
    finally:
        subject.close()
    return {"add": added, "remove": removed}, peak


def run(plan: Plan) -> Section:
    section = Section(NAME, TITLE)
    count = plan.storm_devices
    waves: dict[str, dict[str, Wave]] = {}
    memory: dict[str, float] = {}
    with World() as world:
        runs: list[tuple[str, Callable[[], Subject], float]] = [
            ("ours", lambda: Ours(world, plan.debounce), 60.0),
            ("ours_no_debounce", lambda: Ours(world, "0s", name="ours-no-debounce"), 60.0),
            ("poller", lambda: Baseline(world, "poll", plan.poll_interval, name="poller"), 2 * plan.poll_interval + 30),
            ("rescan", lambda: Baseline(world, "rescan", name="rescan"), 120.0),
        ]
        for name, spawn, deadline in runs:
            say(f"storm: {name}, {count} devices")
            waves[name], memory[name] = storm(plan, world, spawn, deadline)
    section.data = {name: {k: w.to_json() for k, w in by_wave.items()} for name, by_wave in waves.items()}
    section.data["peak_rss_mb"] = memory

    def ms(name: str, kind: str) -> float | None:
        value = waves[name][kind].last_shown_s
        return None if value is None else round(value * 1000.0, 1)

    def cut(kind: str) -> tuple[str, ...]:
        return tuple(n for n in ("ours", "poller", "rescan") if waves[n][kind].cut_off)

    def cpu(name: str, kind: str) -> float:
        return round(waves[name][kind].cpu_s, 2)

    for kind in ("add", "remove"):
        messages = waves["ours"][kind].messages
        section.rows += [
            Row(f"{kind}: messages", "count", float(messages), float(waves["poller"][kind].messages),
                float(waves["rescan"][kind].messages), f"<= {MAX_MESSAGES}", messages <= MAX_MESSAGES),
            Row(f"{kind}: messages, plugin debounce 0", "count", float(waves["ours_no_debounce"][kind].messages)),
            Row(f"{kind}: first uevent -> last device shown", "ms", ms("ours", kind), ms("poller", kind),
                ms("rescan", kind)),
            Row(f"{kind}: same, plugin debounce 0", "ms", ms("ours_no_debounce", kind)),
            Row(f"{kind}: CPU spent until idle again", "s", cpu("ours", kind), cpu("poller", kind),
                cpu("rescan", kind), "<= poll" if kind == "add" else "",
                cpu("ours", kind) <= cpu("poller", kind) if kind == "add" else None, lower_bound=cut(kind)),
        ]
    lost = {name: float(w["add"].lost + w["remove"].lost) for name, w in waves.items()}
    ours_lost = lost["ours"] + lost["ours_no_debounce"]
    section.rows.append(Row("devices lost (add + remove, both plugin runs)", "count", ours_lost, lost["poller"],
                            lost["rescan"], "0", ours_lost == 0))
    burst = max(w.burst_s for by_wave in waves.values() for w in by_wave.values())
    section.notes.append(f"{count} devices, 4 uevents each (device, interface, usb-serial port, tty); the testbed "
                         f"sends a whole burst in at most {burst * 1000:.0f} ms; 'lost' = devices still shown wrong "
                         f"after {plan.storm_quiet_s} s without a message; CPU cut off after "
                         f"{plan.storm_busy_cap_s:.0f} s (>=)")
    return section
