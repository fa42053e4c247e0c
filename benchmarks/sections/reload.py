"""7. Rules hot reload: the rules file replaced on disk to the first Fingerprint message that shows it.

Each run renames the FTDI group (ft232r <-> ft232r-b) by writing the file aside and renaming it
over the old one, as configuration tools do, with 10 devices attached. Measured with the default
debounce and with debounce 0 (a reload goes through the same debounce window as udev events).
The baselines have no rules file to reload.
"""

from __future__ import annotations

from benchmarks.numbers import summary_ms
from benchmarks.plan import Plan, say
from benchmarks.report import Row, Section
from benchmarks.subjects import Ours, Predicate
from benchmarks.world import World, fleet, rules_text

NAME = "reload"
TITLE = "7. Rules hot reload"
DEVICES = 10
TIMEOUT_S = 30.0


def shows_group(group: str) -> Predicate:
    return lambda report: group in report.groups


def measure(world: World, debounce: str, runs: int) -> list[float]:
    taken = []
    with Ours(world, debounce) as ours:
        ours.wait_usable(set(world.plugged), TIMEOUT_S)
        for index in range(runs):
            name = "ft232r-b" if index % 2 == 0 else "ft232r"
            group = f"ftdi/serial/{name}"
            start = ours.log.count
            written = world.write_rules(rules_text(name))
            found = ours.log.wait_for(shows_group(group), TIMEOUT_S, start)
            if found is None:
                raise RuntimeError(f"no Fingerprint message with group {group} within {TIMEOUT_S} s"
                                   f"{ours.diagnostics()}")
            taken.append(max(0.0, found[1].at - written))
    world.write_rules(rules_text())
    return taken


def run(plan: Plan) -> Section:
    section = Section(NAME, TITLE)
    with World() as world:
        world.plug_all(fleet(DEVICES))
        say(f"reload: {plan.reload_runs} rewrites, debounce {plan.debounce}")
        with_debounce = measure(world, plan.debounce, plan.reload_runs)
        say(f"reload: {plan.reload_runs} rewrites, debounce 0")
        without = measure(world, "0s", plan.reload_runs)
    section.data = {"devices": DEVICES, "ours_debounce_ms": summary_ms(with_debounce),
                    "ours_no_debounce_ms": summary_ms(without)}
    for label, key in ((f"debounce {plan.debounce}", "ours_debounce_ms"), ("debounce 0", "ours_no_debounce_ms")):
        summary = section.data[key]
        section.rows += [Row(f"file renamed -> new message, p50, {label}", "ms", summary["p50"]),
                         Row(f"file renamed -> new message, max, {label}", "ms", summary["max"])]
    section.notes.append(f"{plan.reload_runs} rewrites per case, {DEVICES} devices attached")
    return section
