"""1. Start-up: spawn to the handshake line and to the first Fingerprint message; the CLI's start; import times.

The plugin is started the way Nomad starts it (go-plugin env, handshake, then PluginInfo,
ConfigSchema, SetConfig, Fingerprint) in a world with 10 devices; the baselines from spawn to
their first report. Handshake has no baseline counterpart. The CLI's ``--help`` is timed against a
bare interpreter (``python -c pass``), both outside the fake world; import times are what
``python -X importtime`` reports for what plugin mode loads before its handshake line and for
``--help``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.numbers import median, summary_ms
from benchmarks.plan import Plan, say
from benchmarks.report import Row, Section
from benchmarks.subjects import Baseline, Ours
from benchmarks.world import ROOT, World, fleet

NAME = "startup"
TITLE = "1. Start-up (world with 10 devices)"
DEVICES = 10
HANDSHAKE_TARGET_MS = 150.0
FIRST_FINGERPRINT_FACTOR = 1.5  # at most this times the poller's first report
HELP_FACTOR = 2.0  # `--help` within this times a bare interpreter

# What plugin mode imports before it writes the handshake line; what `--help` runs.
BEFORE_HANDSHAKE = "import plugin.plugin_mode, plugin.runtime, plugin.server, plugin.services"
HELP = "from plugin.main import main; main(['--help'])"


def _plain_env() -> dict[str, str]:
    """This process's environment without the fake world (the CLI timings are about Python, not umockdev)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "UMOCKDEV_DIR")}
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = f"{ROOT}:{path}" if path else str(ROOT)
    return env


def _wall(argv: list[str], runs: int) -> list[float]:
    env = _plain_env()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        samples.append(time.perf_counter() - start)
    return samples


def import_time_ms(code: str) -> float:
    """Milliseconds ``python -X importtime`` reports for the top-level imports of ``code``."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=_plain_env(), capture_output=True,
                          text=True, check=True)
    total = 0
    for line in done.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        _, cumulative, name = line.split("|", 2)
        if cumulative.strip().isdigit() and not name.startswith("  "):  # depth 0: a module the code imported
            total += int(cumulative)
    return total / 1000.0


def help_argv() -> list[str]:
    """The installed console script, as a person runs it; ``-m plugin.main`` without one."""
    script = Path(sys.executable).with_name("nomad-device-usb")
    return [str(script), "--help"] if script.exists() else [sys.executable, "-m", "plugin.main", "--help"]


def run(plan: Plan) -> Section:
    section = Section(NAME, TITLE)
    handshake: list[float] = []
    first_ours: list[float] = []
    after_call: list[float] = []
    cpu_ours: list[float] = []
    first: dict[str, list[float]] = {"poller": [], "rescan": []}
    with World() as world:
        ids = set(world.plug_all(fleet(DEVICES)))
        for run_index in range(plan.startup_runs):
            say(f"startup: run {run_index + 1}/{plan.startup_runs}")
            with Ours(world, plan.debounce) as ours:
                report = ours.wait_usable(ids, 30.0)
                cpu_ours.append(ours.cpu_seconds())  # soon after the message: the plugin is idle by then
                handshake.append(ours.handshake_seconds)
                first_ours.append(report.at - ours.started)
                after_call.append(report.at - ours.fingerprint_called)
            for name, mode in (("poller", "poll"), ("rescan", "rescan")):
                with Baseline(world, mode, plan.poll_interval, name=name) as baseline:
                    report = baseline.wait_usable(ids, 30.0)
                    first[name].append(report.at - baseline.started)
    say("startup: the CLI's --help and import times")
    help_runs = _wall(help_argv(), plan.cli_runs)
    bare_runs = _wall([sys.executable, "-c", "pass"], plan.cli_runs)
    imports = {"before_handshake": import_time_ms(BEFORE_HANDSHAKE), "help": import_time_ms(HELP),
               "grpc": import_time_ms("import grpc")}
    ms = 1000.0
    section.data = {
        "devices": DEVICES,
        "ours_handshake_ms": summary_ms(handshake),
        "ours_first_fingerprint_ms": summary_ms(first_ours),
        "ours_fingerprint_call_to_first_message_ms": summary_ms(after_call),
        "ours_cpu_to_first_fingerprint_ms": summary_ms(cpu_ours),
        "poller_first_report_ms": summary_ms(first["poller"]),
        "rescan_first_report_ms": summary_ms(first["rescan"]),
        "cli_help_ms": summary_ms(help_runs),
        "bare_interpreter_ms": summary_ms(bare_runs),
        "import_time_ms": imports,
    }
    shake = round(median(handshake) * ms, 1)
    ours_first, poller_first = round(median(first_ours) * ms, 1), round(median(first["poller"]) * ms, 1)
    help_ms, bare_ms = round(median(help_runs) * ms, 1), round(median(bare_runs) * ms, 1)
    section.rows = [
        Row("spawn -> handshake line (median)", "ms", shake, target=f"<= {HANDSHAKE_TARGET_MS:.0f} ms",
            met=shake <= HANDSHAKE_TARGET_MS),
        Row("spawn -> first Fingerprint / first report (median)", "ms", ours_first, poller_first,
            round(median(first["rescan"]) * ms, 1), f"<= {FIRST_FINGERPRINT_FACTOR:g}x poll",
            ours_first <= FIRST_FINGERPRINT_FACTOR * poller_first),
        Row("  of which Fingerprint call -> first message", "ms", round(median(after_call) * ms, 1)),
        Row("  plugin CPU from spawn to the first message (10 ms ticks)", "ms", round(median(cpu_ours) * ms, 1)),
        Row("`nomad-device-usb --help` (median wall time)", "ms", help_ms,
            target=f"<= {HELP_FACTOR:g}x bare ({bare_ms:g} ms)", met=help_ms <= HELP_FACTOR * bare_ms),
        Row("  bare interpreter, `python -c pass` (median wall time)", "ms", bare_ms),
        Row("imports before the handshake line (-X importtime)", "ms", round(imports["before_handshake"], 1)),
        Row("  of which `import grpc` alone (-X importtime)", "ms", round(imports["grpc"], 1)),
        Row("imports of `--help` (-X importtime)", "ms", round(imports["help"], 1)),
    ]
    section.notes.append(f"median of {plan.startup_runs} spawns; the plugin's figure includes PluginInfo, "
                         "ConfigSchema and SetConfig round trips, as Nomad makes them; "
                         f"--help and the bare interpreter: median of {plan.cli_runs} runs outside the fake world; "
                         "-X importtime adds its own overhead, so those figures run above wall time")
    return section
