"""2. Enumerate and match N devices: discovery alone (in this process) and through the wire.

Discovery alone runs our discovery package in-process, in the world (this process runs under the
umockdev preload): ``Discovery.start()`` is what the plugin does on the first Fingerprint call
(load rules, bind the monitor, enumerate, IDs, match, publish the first snapshot), split into its
two big parts. The baselines' figure is their scan() (enumerate + match), the same for both.
Through the wire: the plugin's Fingerprint call to first message, and spawn to first message for
all three processes.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import pyudev

from benchmarks import baselines
from benchmarks.numbers import median, summary_ms
from benchmarks.plan import Plan, say
from benchmarks.report import Row, Section
from benchmarks.subjects import Baseline, Ours
from benchmarks.world import World, fleet
from discovery.fake.node_devices import make_serial_card_fleet
from discovery.rules.loader import load_rules
from discovery.state.table import DeviceTable
from discovery.sources.udev import UdevSource
from discovery.loop.watcher import Discovery

NAME = "enumerate"
TITLE = "2. Enumerate and match N devices"
TARGET_SIZES = (100, 1000)  # where discovery alone must stay within TARGET_FACTOR of the minimal scan
TARGET_FACTOR = 1.2


def _timed(func: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return samples


def _in_process(world: World, count: int, runs: int) -> dict[str, list[float]]:
    rules_path = str(world.rules_file)
    with world.entered():

        def discovery_start() -> float:
            """Seconds in Discovery.start() alone; stopping it is not part of the figure."""
            discovery = Discovery(UdevSource(), lambda: load_rules(rules_path), rules_file=rules_path)
            try:
                began = time.perf_counter()
                snapshot = discovery.start()
                taken = time.perf_counter() - began
                if len(snapshot.devices) != count:
                    raise RuntimeError(f"Discovery.start() saw {len(snapshot.devices)} of {count} devices")
                return taken
            finally:
                discovery.stop()
                del discovery
                gc.collect()  # close the monitor's socket before the world changes again

        def discovery_runs() -> list[float]:
            return [discovery_start() for _ in range(runs)]

        source = UdevSource()
        devices = source.enumerate()
        rules = load_rules(rules_path)

        def table_build() -> None:
            table = DeviceTable(unplugged_grace=60.0)
            table.set_rules(rules)
            table.replace_all(devices, time.time())
            table.build(1)

        def baseline_scan() -> None:
            found = baselines.scan(pyudev.Context())
            if len(found) != count:
                raise RuntimeError(f"baseline scan saw {len(found)} of {count} devices")

        every = UdevSource(node_subsystems="all")  # list --all, or kind: udev rules without a subsystem
        return {
            "ours_enumerate_all_nodes": _timed(every.enumerate, runs),
            "ours_discovery_start": discovery_runs(),
            "ours_load_rules": _timed(lambda: load_rules(rules_path), runs),
            "ours_enumerate": _timed(source.enumerate, runs),
            "ours_ids_match_snapshot": _timed(table_build, runs),
            "baseline_scan": _timed(baseline_scan, runs),
        }


def _wire(world: World, ids: set[str], plan: Plan) -> tuple[dict[str, list[float]], dict[str, float]]:
    call: list[float] = []
    spawn: list[float] = []
    peak: dict[str, float] = {"ours": 0.0, "poller": 0.0, "rescan": 0.0}
    first: dict[str, list[float]] = {"poller": [], "rescan": []}
    deadline = 60.0 + len(ids) * 0.05
    for _ in range(plan.wire_runs):
        with Ours(world, plan.debounce) as ours:
            report = ours.wait_usable(ids, deadline)
            call.append(report.at - ours.fingerprint_called)
            spawn.append(report.at - ours.started)
            peak["ours"] = max(peak["ours"], ours.memory_mb()["peak_rss_mb"])
        for name, mode in (("poller", "poll"), ("rescan", "rescan")):
            with Baseline(world, mode, plan.poll_interval, name=name) as baseline:
                report = baseline.wait_usable(ids, deadline)
                first[name].append(report.at - baseline.started)
                peak[name] = max(peak[name], baseline.memory_mb()["peak_rss_mb"])
    timings = {"ours_call_to_first_message": call, "ours_spawn_to_first_message": spawn,
               "poller_spawn_to_first_report": first["poller"], "rescan_spawn_to_first_report": first["rescan"]}
    return timings, peak


def _node_rows(section: Section, plan: Plan) -> None:
    """Devices with a node outside USB (kind udev): N tty ports on N/2 PCI dual-UART cards, no USB at all."""
    ms = 1000.0
    with World() as world:
        plugged = 0
        for count in plan.enumerate_sizes:
            for card in make_serial_card_fleet(count // 2)[plugged:]:
                world.testbed.plug(card)
            plugged = count // 2
            say(f"enumerate: {count} tty ports on PCI cards")
            with world.entered():
                by_subsystem, every = UdevSource(node_subsystems={"tty"}), UdevSource(node_subsystems="all")
                if len(by_subsystem.enumerate()) != 2 * plugged:
                    raise RuntimeError("the PCI card fleet is not what was plugged")
                named = _timed(by_subsystem.enumerate, plan.enumerate_runs)
                listed = _timed(every.enumerate, plan.enumerate_runs)
            section.data[f"udev-{count}"] = {"ours_enumerate_tty_ms": summary_ms(named),
                                             "ours_enumerate_all_ms": summary_ms(listed)}
            section.rows += [
                Row(f"N={2 * plugged} udev ttys (PCI cards): enumerate, subsystem tty", "ms",
                    round(median(named) * ms, 1)),
                Row(f"N={2 * plugged} udev ttys (PCI cards): enumerate, every node", "ms",
                    round(median(listed) * ms, 1)),
            ]


def run(plan: Plan) -> Section:
    section = Section(NAME, TITLE)
    ms = 1000.0
    with World() as world:
        devices = fleet(max(plan.enumerate_sizes))
        ids: set[str] = set()
        for count in plan.enumerate_sizes:
            ids.update(world.plug_all(devices[len(ids):count]))
            say(f"enumerate: N={count}, in-process")
            alone = _in_process(world, count, plan.enumerate_runs)
            say(f"enumerate: N={count}, through the wire")
            wire, peak = _wire(world, ids, plan)
            section.data[str(count)] = {
                **{f"{k}_ms": summary_ms(v) for k, v in {**alone, **wire}.items()},
                "peak_rss_mb": peak,
            }
            scan = round(median(alone["baseline_scan"]) * ms, 1)
            start = round(median(alone["ours_discovery_start"]) * ms, 1)
            target = count in TARGET_SIZES
            section.rows += [
                Row(f"N={count}: discovery alone (enumerate + match)", "ms", start, scan, scan,
                    f"<= {TARGET_FACTOR:g}x scan" if target else "", (start <= TARGET_FACTOR * scan) if target else None),
                Row(f"N={count}:   of which load the rules file", "ms",
                    round(median(alone["ours_load_rules"]) * ms, 1)),
                Row(f"N={count}:   of which enumerate (udev reads)", "ms",
                    round(median(alone["ours_enumerate"]) * ms, 1)),
                Row(f"N={count}:   of which IDs + match + snapshot", "ms",
                    round(median(alone["ours_ids_match_snapshot"]) * ms, 1)),
                Row(f"N={count}: enumerate, nodes outside USB listed too (none there)", "ms",
                    round(median(alone["ours_enumerate_all_nodes"]) * ms, 1)),
                Row(f"N={count}: Fingerprint call -> first message", "ms",
                    round(median(wire["ours_call_to_first_message"]) * ms, 1)),
                Row(f"N={count}: spawn -> first message / report", "ms",
                    round(median(wire["ours_spawn_to_first_message"]) * ms, 1),
                    round(median(wire["poller_spawn_to_first_report"]) * ms, 1),
                    round(median(wire["rescan_spawn_to_first_report"]) * ms, 1)),
                Row(f"N={count}: peak RSS after the first message / report", "MiB", peak["ours"], peak["poller"],
                    peak["rescan"]),
            ]
    _node_rows(section, plan)
    section.notes.append(f"medians: {plan.enumerate_runs} in-process runs and {plan.wire_runs} spawns per N; "
                         "the baselines' figure is one scan() (both baselines share it), in the same world and process; "
                         "file-system calls per device: `python -m benchmarks.accesses`")
    return section
