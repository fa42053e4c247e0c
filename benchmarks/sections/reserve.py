"""5. Reserve latency for 1 and for 8 IDs, over the wire, with N devices attached.

Timed in this process around the gRPC call (client stub, as the agent's device hook calls it),
after a warm-up. The IDs of each call are drawn at random from the attached devices. The baselines
have no counterpart (they only find devices).
"""

from __future__ import annotations

import random
import time

from benchmarks.numbers import summary_ms
from benchmarks.plan import Plan, say
from benchmarks.report import Row, Section
from benchmarks.subjects import Ours
from benchmarks.world import World, fleet

NAME = "reserve"
TITLE = "5. Reserve"
WARMUP_CALLS = 20
TARGET_P99_MS = 5.0


def run(plan: Plan) -> Section:
    section = Section(NAME, TITLE)
    rng = random.Random(7)
    samples: dict[int, list[float]] = {}
    with World() as world:
        ids = sorted(world.plug_all(fleet(plan.reserve_devices)))
        with Ours(world, plan.debounce) as ours:
            ours.wait_usable(set(ids), 60.0)
            for _ in range(WARMUP_CALLS):
                ours.plugin.reserve(rng.sample(ids, 1))
            for size in (1, 8):
                say(f"reserve: {plan.reserve_calls} calls with {size} ID(s)")
                taken = []
                for _ in range(plan.reserve_calls):
                    chosen = rng.sample(ids, min(size, len(ids)))
                    start = time.perf_counter()
                    response = ours.plugin.reserve(chosen)
                    taken.append(time.perf_counter() - start)
                    if len(response.container_res.devices) < 2 * len(chosen):
                        raise RuntimeError(f"Reserve({chosen}) handed over too few nodes: {response}")
                samples[size] = taken
    section.data = {"devices": plan.reserve_devices, "calls": plan.reserve_calls,
                    **{f"ids_{size}_ms": summary_ms(taken) for size, taken in samples.items()}}
    for size in (1, 8):
        summary = section.data[f"ids_{size}_ms"]
        section.rows += [
            Row(f"{size} ID{'s' if size > 1 else ''}: p50", "ms", summary["p50"]),
            Row(f"{size} ID{'s' if size > 1 else ''}: p99", "ms", summary["p99"], target=f"< {TARGET_P99_MS:.0f} ms",
                met=summary["p99"] < TARGET_P99_MS),
        ]
    section.notes.append(f"{plan.reserve_calls} calls per size after {WARMUP_CALLS} warm-up calls, "
                         f"{plan.reserve_devices} devices attached; each FTDI hands over 2 nodes (USB + tty)")
    return section
