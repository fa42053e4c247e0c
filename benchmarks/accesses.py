"""``python -m benchmarks.accesses [--devices N] [--subject NAME ...]``: count file-system calls per device.

Timings under umockdev are noisy (every sysfs access goes through its preload library, and other
work shares the machine); the number of calls is not. This tool builds a world of N FT232R
adapters (usb_device, interface, usb-serial port, tty each), runs one subject in a child process
under ``strace -f`` inside that world, and counts the system calls made between two markers around
the measured call (after one warm-up call, so imports and first-use caches are not counted):

* ``ours``: ``UdevSource().enumerate()``, everything the plugin reads at start;
* ``minimal``: ``benchmarks.baselines.scan()``, the minimal pyudev scan the targets compare with;
* ``hotplug``: ``UdevSource().device_at()`` of one device, what one udev event costs us.

The table gives calls per device (total / N; ``hotplug`` is for its one device), and the opened
paths by kind: sysfs attributes by name, ``uevent`` files, udev database look-ups, directories, and
the one-component-at-a-time path walks libudev makes to resolve a sys_path. Needs ``strace`` and
umockdev's preload library; the figures are the same on every run of the same code.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from discovery.fake.testbed import Testbed, make_fleet

SUBJECTS = ("ours", "minimal", "hotplug")
BEGIN, END = "/nomad-usb-accesses-begin", "/nomad-usb-accesses-end"
# The calls counted: everything that opens, reads, stats, lists or resolves a path.
TRACED = "openat,open,read,pread64,newfstatat,statx,lstat,stat,access,faccessat2,readlink,readlinkat,getdents64"

# The child: import and warm up, then the measured call between two markers strace sees as stat()s.
CHILD = """
import os, sys
from discovery.sources.udev import UdevSource
from benchmarks import baselines
import pyudev

subject, sys_path = sys.argv[1], sys.argv[2]
context = pyudev.Context()
source = UdevSource()

def measured():
    if subject == "ours":
        return len(source.enumerate())
    if subject == "minimal":
        return len(baselines.scan(context))
    return int(source.device_at(sys_path) is not None)

measured()  # warm-up: imports, first-use caches
for mark in ({begin!r}, {end!r}):
    try:
        os.stat(mark)
    except OSError:
        pass
    if mark == {begin!r}:
        found = measured()
print(found, file=sys.stderr)
"""

_CALL = re.compile(r"^(?:\d+\s+)?(?:<\.\.\. )?(\w+)\(")
_OPEN_PATH = re.compile(r'^(?:\d+\s+)?(openat|open)\((?:AT_FDCWD|\d+), "([^"]*)", ([A-Z_|]+)')


@dataclass
class Counts:
    """System calls by name and opened paths by kind, for one measured call."""

    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    opened: collections.Counter[str] = field(default_factory=collections.Counter)
    found: int = 0


def kind_of_open(path: str, flags: str) -> str:
    """What an opened path is, in words that say where the cost goes."""
    if "O_PATH" in flags:
        return "path walk (one component, O_PATH)"
    if "O_DIRECTORY" in flags:
        return "directory listing"
    if "/run/udev/data/" in path:
        return "udev database entry"
    name = path.rsplit("/", 1)[-1]
    if "/sys/" in path:
        return f"sysfs {name}" if name == "uevent" else f"sysfs attribute {name}"
    if "/dev/" in path:
        return "device node"
    return "other file"


def parse_trace(text: str) -> Counts:
    """Count the calls between the begin and end markers of an ``strace -f`` log."""
    counts = Counts()
    inside = False
    for line in text.splitlines():
        if BEGIN in line:
            inside = True
            continue
        if END in line:
            break
        if not inside:
            continue
        call = _CALL.match(line)
        if call is None or "resumed>" in line:
            continue
        counts.calls[call.group(1)] += 1
        opened = _OPEN_PATH.match(line)
        if opened is not None:
            counts.opened[kind_of_open(opened.group(2), opened.group(3))] += 1
    return counts


def trace(testbed: Testbed, subject: str, sys_path: str) -> Counts:
    """Run one subject under strace in the world and count its calls."""
    child = CHILD.format(begin=BEGIN, end=END)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, **testbed.env(), "PYTHONPATH": root}
    with tempfile.NamedTemporaryFile("r", prefix="nomad-usb-strace.", suffix=".log") as log:
        done = subprocess.run(["strace", "-f", "-qq", "-o", log.name, "-e", f"trace={TRACED}",
                               sys.executable, "-c", child, subject, sys_path],
                              env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{subject}: the traced child failed ({done.returncode}):\n{done.stderr}")
        counts = parse_trace(log.read())
    counts.found = int(done.stderr.strip().splitlines()[-1])
    return counts


def render(results: dict[str, Counts], devices: int) -> str:
    """A Markdown table: calls per device for each subject, then opened paths by kind."""
    per = {name: (1 if name == "hotplug" else devices) for name in results}
    names = list(results)
    lines = [f"File-system calls per device, world of {devices} FT232R adapters "
             "(hotplug: one device_at(); strace, deterministic)", "",
             "| call | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    calls = sorted({c for r in results.values() for c in r.calls}, key=lambda c: -sum(r.calls[c] for r in results.values()))
    for call in calls:
        lines.append(f"| {call} | " + " | ".join(f"{results[n].calls[call] / per[n]:.1f}" for n in names) + " |")
    lines.append("| **all** | " + " | ".join(f"**{sum(results[n].calls.values()) / per[n]:.1f}**" for n in names) + " |")
    lines += ["", "| opened | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    kinds = sorted({k for r in results.values() for k in r.opened}, key=lambda k: -sum(r.opened[k] for r in results.values()))
    for kind in kinds:
        lines.append(f"| {kind} | " + " | ".join(f"{results[n].opened[kind] / per[n]:.2f}" for n in names) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accesses", description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=100, help="adapters in the world (default 100)")
    parser.add_argument("--subject", action="append", choices=SUBJECTS, help="repeat; default: all three")
    args = parser.parse_args(argv)
    subjects = args.subject or list(SUBJECTS)
    fleet = make_fleet(args.devices)
    results: dict[str, Counts] = {}
    with Testbed() as testbed:
        for device in fleet:
            testbed.plug(device)
        for subject in subjects:
            results[subject] = trace(testbed, subject, fleet[len(fleet) // 2].sys_path)
            expected = 1 if subject == "hotplug" else args.devices
            if results[subject].found != expected:
                raise RuntimeError(f"{subject} found {results[subject].found} devices, expected {expected}")
    print(render(results, args.devices), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
