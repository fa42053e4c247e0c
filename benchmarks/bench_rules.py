"""Rules engine timings: matching 1,000 devices against ~20 rules, explain, and parsing big files.

Run from the repository root: ``python3 benchmarks/bench_rules.py``. Numbers are printed, not asserted.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from discovery.model import Child, Interface, UsbDevice, frozen_mapping  # noqa: E402
from discovery.rules.loader import load_rules, parse_rules  # noqa: E402
from discovery.rules.ruleset import RuleSet  # noqa: E402

EXTRA_RULES = """
  - name: by serial {i}
    match: {{vendor_id: {vid:04x}, serial: "SN{i}*", properties: {{ID_MODEL: "Model_{i}*"}}}}
    group: {{vendor: bench, type: t{i}, name: "n-{{serial}}"}}
    attributes: {{model: "{{ID_MODEL}}", rev: {{value: "{{bcdDevice}}", type: hex}}, ram: {{value: 8, unit: GiB}}}}
    env: {{SERIAL: "{{serial}}"}}
"""


def rules_text() -> str:
    base = (ROOT / "examples" / "rules.yaml").read_text()
    return base + "".join(EXTRA_RULES.format(i=i, vid=0x1000 + i) for i in range(9))


def devices(count: int, seed: int = 1) -> list[UsbDevice]:
    rng = random.Random(seed)
    known = [(0x18D1, 0x4EE7), (0x0403, 0x6001), (0x2341, 0x0043), (0x10C4, 0xEA60), (0x1A86, 0x7523),
             (0x0483, 0x374B), (0x1050, 0x0407)] + [(0x1000 + i, 0x0001) for i in range(9)]  # fmt: skip
    out = []
    for n in range(count):
        vid, pid = rng.choice(known) if rng.random() < 0.8 else (rng.randrange(0x10000), rng.randrange(0x10000))
        i = vid - 0x1000
        out.append(
            UsbDevice(
                sys_path=f"/sys/devices/usb1/1-{n}",
                sys_name=f"1-{n}",
                vendor_id=vid,
                product_id=pid,
                busnum=1,
                devnum=n % 127 + 1,
                port_path=f"pci-0000:00:14.0-usb-0:{n}",
                serial=f"SN{i}-{n}" if rng.random() < 0.9 else None,
                manufacturer="Maker",
                product="Thing",
                interfaces=(Interface(0, rng.choice([0x02, 0x03, 0xFF])),)
                + ((Interface(1, 0xFF, 0x42, 0x01),) if vid == 0x18D1 else ()),
                children=(Child("tty", f"/sys/x/tty{n}", f"ttyUSB{n}", f"/dev/ttyUSB{n}"),),
                properties=frozen_mapping({"ID_MODEL": f"Model_{i}_x", "ID_SERIAL": f"s{n}"}),
                attributes=frozen_mapping({"bcdDevice": "0100", "speed": "480"}),
            )
        )
    return out


def timed(label: str, func, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    print(f"{label:<55} {best * 1000:9.2f} ms (best of {repeat})")
    return best


def main() -> None:
    text = rules_text()
    rules = parse_rules(text, "bench.yaml")
    devs = devices(1000)
    print(f"{len(rules.rules)} rules, {len(devs)} devices")
    timed("parse the ~20-rule file", lambda: parse_rules(text, "bench.yaml"))
    timed("match 1,000 devices (with ids)", lambda: [rules.match(d, d.sys_name) for d in devs])
    matched = sum(1 for d in devs if rules.match(d, d.sys_name) is not None)
    print(f"  ({matched} of {len(devs)} matched)")
    timed("explain 1,000 devices", lambda: [rules.explain(d, d.sys_name) for d in devs], repeat=3)
    timed("warnings_for 1,000 devices", lambda: rules.warnings_for(devs), repeat=3)
    big = "rules:\n" + "".join(EXTRA_RULES.format(i=i, vid=i % 0x10000) for i in range(2000))
    print(f"big file: {len(big.encode()) / 1024:.0f} KiB, 2,000 rules")
    timed("parse 2,000 rules", lambda: parse_rules(big, "big.yaml"), repeat=1)
    big_rules = parse_rules(big, "big.yaml")
    timed("static_warnings, 2,000 rules (shadow check skipped)", big_rules.static_warnings, repeat=1)
    thousand = RuleSet(big_rules.rules[:1000])
    timed("static_warnings, 1,000 rules (pairwise shadow check)", thousand.static_warnings, repeat=1)
    load_rules(ROOT / "examples" / "rules.yaml")


if __name__ == "__main__":
    main()
