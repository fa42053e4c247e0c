"""1. Start-up: spawn to the handshake line, and to the first Fingerprint message.

The plugin is started the way Nomad starts it (go-plugin env, handshake, then PluginInfo,
ConfigSchema, SetConfig, Fingerprint) in a world with 10 devices; the baselines from spawn to
their first report. Handshake has no baseline counterpart.
"""

from __future__ import annotations

from benchmarks.numbers import median, summary_ms
from benchmarks.plan import Plan, say
from benchmarks.report import Row, Section
from benchmarks.subjects import Baseline, Ours
from benchmarks.world import World, fleet

NAME = "startup"
TITLE = "1. Start-up (world with 10 devices)"
DEVICES = 10


def run(plan: Plan) -> Section:
    section = Section(NAME, TITLE)
    handshake: list[float] = []
    first_ours: list[float] = []
    after_call: list[float] = []
    first: dict[str, list[float]] = {"poller": [], "rescan": []}
    with World() as world:
        ids = set(world.plug_all(fleet(DEVICES)))
        for run_index in range(plan.startup_runs):
            say(f"startup: run {run_index + 1}/{plan.startup_runs}")
            with Ours(world, plan.debounce) as ours:
                report = ours.wait_usable(ids, 30.0)
                handshake.append(ours.handshake_seconds)
                first_ours.append(report.at - ours.started)
                after_call.append(report.at - ours.fingerprint_called)
            for name, mode in (("poller", "poll"), ("rescan", "rescan")):
                with Baseline(world, mode, plan.poll_interval, name=name) as baseline:
                    report = baseline.wait_usable(ids, 30.0)
                    first[name].append(report.at - baseline.started)
    ms = 1000.0
    section.data = {
        "devices": DEVICES,
        "ours_handshake_ms": summary_ms(handshake),
        "ours_first_fingerprint_ms": summary_ms(first_ours),
        "ours_fingerprint_call_to_first_message_ms": summary_ms(after_call),
        "poller_first_report_ms": summary_ms(first["poller"]),
        "rescan_first_report_ms": summary_ms(first["rescan"]),
    }
    section.rows = [
        Row("spawn -> handshake line (median)", "ms", round(median(handshake) * ms, 1)),
        Row("spawn -> first Fingerprint / first report (median)", "ms", round(median(first_ours) * ms, 1),
            round(median(first["poller"]) * ms, 1), round(median(first["rescan"]) * ms, 1)),
        Row("  of which Fingerprint call -> first message", "ms", round(median(after_call) * ms, 1)),
    ]
    section.notes.append(f"median of {plan.startup_runs} spawns; the plugin's figure includes PluginInfo, "
                         "ConfigSchema and SetConfig round trips, as Nomad makes them")
    return section
