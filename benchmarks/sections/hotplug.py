"""3. Hotplug latency: a udev event to the message that shows it, over at least 200 add/remove events.

Devices are plugged one at a time, each waiting until the subject shows it usable, then unplugged
one at a time the same way (2 events per device). Latency runs from the moment the testbed has sent
the device's last uevent to the arrival of the first message in which the device is usable (add) or
no longer usable (remove). The plugin runs with its default debounce and with debounce 0. The poller
watches the same world during the first run: it is paced by the plugin, and its latency per event is
read off its reports afterwards (each poll re-reads everything, so events do not disturb each other).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from benchmarks.numbers import summary_ms
from benchmarks.plan import Plan, say
from benchmarks.report import Row, Section
from benchmarks.subjects import Baseline, BenchError, Ours, Predicate, Subject
from benchmarks.world import World, fleet

NAME = "hotplug"
TITLE = "3. Hotplug: udev event -> message on the wire"
EVENT_TIMEOUT_S = 10.0  # an event shows within the debounce window (200 ms); a miss is counted
MAX_MISSES_IN_A_ROW = 3  # then the subject has stopped showing events: fail now, not after every event's wait
TARGET_MS = 20.0


@dataclass(frozen=True)
class Event:
    before: float  # testbed call started
    after: float  # testbed call returned: the device's last uevent is sent
    dev_id: str
    added: bool

    def shown(self) -> Predicate:
        return lambda r: r.at >= self.before and (self.dev_id in r.usable) == self.added


def drive(world: World, count: int, pace: Subject, label: str) -> list[Event]:
    """Plug ``count`` devices one by one, then unplug them; wait for ``pace`` to show each event."""
    events: list[Event] = []

    misses = 0

    def record(before: float, dev_id: str, added: bool, start: int) -> None:
        nonlocal misses
        event = Event(before, time.monotonic(), dev_id, added)
        events.append(event)
        if pace.log.wait_for(event.shown(), EVENT_TIMEOUT_S, start) is not None:  # a miss is counted later
            misses = 0
            return
        misses += 1
        if misses >= MAX_MISSES_IN_A_ROW:
            raise BenchError(f"hotplug: {label}: {pace.name} showed none of the last {misses} events within "
                             f"{EVENT_TIMEOUT_S:.0f} s each (a device never usable, or never gone){pace.diagnostics()}")

    for index, device in enumerate(fleet(count)):
        start, before = pace.log.count, time.monotonic()
        record(before, world.plug(device), True, start)
        if (index + 1) % 50 == 0:
            say(f"hotplug: {label}: {index + 1}/{count} added")
    for index, dev_id in enumerate([e.dev_id for e in events]):
        start, before = pace.log.count, time.monotonic()
        world.unplug(dev_id)
        record(before, dev_id, False, start)
        if (index + 1) % 50 == 0:
            say(f"hotplug: {label}: {index + 1}/{count} removed")
    return events


@dataclass(frozen=True)
class Figures:
    adds: list[float]  # seconds from each add to the first report showing it
    removes: list[float]
    events: int
    missed: int  # events no report ever showed

    def stat(self, key: str) -> float | None:
        value = summary_ms(self.adds + self.removes).get(key)
        return None if value is None else round(float(value), 1)

    def to_json(self) -> dict[str, object]:
        return {"all_ms": summary_ms(self.adds + self.removes), "add_ms": summary_ms(self.adds),
                "remove_ms": summary_ms(self.removes), "events": self.events, "missed": self.missed}


def figures(events: list[Event], subject: Subject) -> Figures:
    adds: list[float] = []
    removes: list[float] = []
    missed = 0
    for event in events:
        report = subject.log.first_after(event.before, event.shown())
        if report is None:
            missed += 1
            continue
        # a subject may see the last child before the testbed call returns: never below zero
        (adds if event.added else removes).append(max(0.0, report.at - event.after))
    return Figures(adds, removes, len(events), missed)


def run(plan: Plan) -> Section:
    section = Section(NAME, TITLE)
    count = plan.hotplug_devices
    results: dict[str, Figures] = {}
    with World() as world:
        with Baseline(world, "poll", plan.poll_interval, name="poller") as poller, \
                Ours(world, plan.debounce) as ours:
            poller.wait_first()
            ours.wait_first()
            say(f"hotplug: plugin (debounce {plan.debounce}) paced, poller watching: {2 * count} events")
            events = drive(world, count, ours, f"debounce {plan.debounce}")
            results["ours_debounce"] = figures(events, ours)
            poller.log.wait_for(events[-1].shown(), 2 * plan.poll_interval + 10.0)
            results["poller"] = figures(events, poller)
        section.data["testbed_call_ms"] = summary_ms([e.after - e.before for e in events])
        with Ours(world, "0s", name="ours-no-debounce") as ours0:
            ours0.wait_first()
            say(f"hotplug: plugin without debounce: {2 * count} events")
            results["ours_no_debounce"] = figures(drive(world, count, ours0, "debounce 0"), ours0)
        with Baseline(world, "rescan", name="rescan") as rescan:
            rescan.wait_first()
            say(f"hotplug: rescan-on-every-event baseline: {2 * count} events")
            results["rescan"] = figures(drive(world, count, rescan, "rescan"), rescan)
    section.data.update({name: f.to_json() for name, f in results.items()})

    poll, scan = results["poller"], results["rescan"]
    for who, budget, label in (("ours_debounce", TARGET_MS + plan.debounce_s * 1000.0, f"debounce {plan.debounce}"),
                               ("ours_no_debounce", TARGET_MS, "debounce 0")):
        for key in ("p50", "p99", "max"):
            figure = results[who].stat(key)
            first = key == "p50"
            section.rows.append(Row(f"{key}, plugin {label}", "ms", figure, poll.stat(key), scan.stat(key),
                                    f"< {budget:.0f} ms" if first else "",
                                    (figure is not None and figure < budget) if first else None))
    missed = results["ours_debounce"].missed + results["ours_no_debounce"].missed
    section.rows.append(Row(f"events never shown (of {2 * count} per run; plugin: both runs)", "count", float(missed),
                            float(poll.missed), float(scan.missed)))
    section.notes.append(f"{2 * count} events per run ({count} adds, {count} removes); the poller's figures come "
                         "from the debounce run, where it watched the same events; a device counts as shown "
                         "when it is usable (plugin: healthy, i.e. its tty exists; baselines: tty found)")
    return section
