"""Host side helpers for the VM tier's tests: a device factory that cleans up, and the run's measurements.

They live here, not in tests/vm/conftest.py, so that test modules can import them by name.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vm.build import ensure_image
from vm.hotplug import (
    CardPlugged,
    EmulatedDevice,
    GadgetDevice,
    PciSerialCard,
    Plugged,
    plug_and_wait,
    plug_card_and_wait,
    unplug_and_wait,
    unplug_card_and_wait,
)
from vm.machine import Guest

ROOT_PORTS = range(1, 9)  # qemu-xhci p2=8 (see vm.machine)
PCI_SLOTS = range(0x10, 0x20)  # free slots of the root PCI bus (QEMU's own devices sit below 0x10)
KINDS = ("serial", "keyboard", "storage", "gadget")
STEP_ORDER = {"plug": 0, "unplug": 1, "replug": 2, "healthy": 3, "edit": 4}  # how the report lists them


class Report:
    """Numbers measured during the run: timings of the guest and hotplug latencies in it."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.latencies: list[tuple[str, str, float]] = []  # (kind, stage, seconds)
        self.phases: list[tuple[str, str, float]] = []  # (scenario, phase, seconds)
        self.notes: list[str] = []

    def latency(self, kind: str, values: dict[str, float], prefix: str = "") -> None:
        """Record each stage of one measurement (seconds since the guest's mark)."""
        for stage, seconds in values.items():
            self.latencies.append((kind, prefix + stage, seconds))

    def phase(self, scenario: str, values: dict[str, float]) -> None:
        """Record one run of a scenario: seconds each phase took, in the order they happen."""
        for name, seconds in values.items():
            self.phases.append((scenario, name, seconds))

    def lines(self) -> list[str]:
        """The report as text: timings, scenario phases, then per kind and step min / median / max, in time order."""
        out = [*self.notes, *(f"{name}: {value:.2f} s" for name, value in self.timings.items())]
        out.extend(self._phase_lines())
        if not self.latencies:
            return out
        out.append("hotplug latencies in the guest, seconds from the request (min / median / max, n):")
        grouped: dict[tuple[str, str], list[float]] = {}
        for kind, stage, seconds in self.latencies:
            grouped.setdefault((kind, stage), []).append(seconds)
        rows = []
        for (kind, stage), values in grouped.items():
            values.sort()
            median = values[len(values) // 2]
            step = stage.split(" → ")[0]
            rows.append(((kind, STEP_ORDER.get(step, len(STEP_ORDER)), step, median), kind, stage, values, median))
        for _, kind, stage, values, median in sorted(rows):
            out.append(f"  {kind:9} {stage:42} {values[0]:7.3f} {median:7.3f} {values[-1]:7.3f}  n={len(values)}")
        return out

    def _phase_lines(self) -> list[str]:
        grouped: dict[str, dict[str, list[float]]] = {}
        for scenario, name, seconds in self.phases:
            grouped.setdefault(scenario, {}).setdefault(name, []).append(seconds)
        out = []
        for scenario, phases in grouped.items():
            out.append(f"{scenario}, seconds per phase (min / median / max, n):")
            for name, values in phases.items():
                values = sorted(values)
                median = values[len(values) // 2]
                out.append(f"  {name:52} {values[0]:7.3f} {median:7.3f} {values[-1]:7.3f}  n={len(values)}")
        return out

    def as_json(self) -> dict[str, Any]:
        """Machine-readable form."""
        return {
            "notes": self.notes, "timings": self.timings, "latencies": [list(x) for x in self.latencies],
            "phases": [list(x) for x in self.phases],
        }


class Devices:
    """Makes test devices with unique serials and free root ports; unplugs leftovers in ``cleanup``.

    Every plug and unplug adds its udev latencies to ``report``.

    Serials are unique for the whole session, because the plugin remembers unplugged devices for
    its grace period and a reused serial would be taken for a replug.
    """

    _counter = itertools.count(1)

    def __init__(self, guest: Guest, report: Report | None = None) -> None:
        self.guest = guest
        self.report = report
        self.plugged: dict[int, Plugged] = {}  # id(device) -> what plug_and_wait saw
        self.cards: dict[int, CardPlugged] = {}  # id(card) -> what plug_card_and_wait saw
        self._ports: dict[int, int] = {}
        self._slots: dict[int, int] = {}

    def make(self, kind: str, chardev_out: str | None = None) -> EmulatedDevice | GadgetDevice:
        """A new device of ``kind`` (serial, keyboard, storage or gadget); a serial may write to ``chardev_out``."""
        n = next(self._counter)
        serial = f"NDU{kind[:3].upper()}{n:04d}"
        if kind == "gadget":
            return GadgetDevice(name=f"acm{n}", serial=serial)
        used = set(self._ports.values())
        port = next(p for p in ROOT_PORTS if p not in used)
        device = EmulatedDevice(kind=kind, id=f"{kind}{n}", serial=serial, port=port, chardev_out=chardev_out)
        self._ports[id(device)] = port
        return device

    def plug(self, device: EmulatedDevice | GadgetDevice) -> Plugged:
        """Plug and wait for udev to announce the device and its node."""
        plugged = plug_and_wait(self.guest, device)
        self.plugged[id(device)] = plugged
        if self.report is not None:
            self.report.latency(device.kind, plugged.latency, "plug → ")
        return plugged

    def unplug(self, plugged: Plugged) -> dict[str, float]:
        """Unplug and wait for udev's remove and for the node to go."""
        latencies = unplug_and_wait(self.guest, plugged)
        self.plugged.pop(id(plugged.device), None)
        if self.report is not None:
            self.report.latency(plugged.device.kind, latencies, "unplug → ")
        return latencies

    def make_card(self, ports: int = 2) -> PciSerialCard:
        """A new QEMU PCI serial card with ``ports`` ports, in a free slot of the root bus."""
        n = next(self._counter)
        used = set(self._slots.values())
        slot = next(s for s in PCI_SLOTS if s not in used)
        card = PciSerialCard(id=f"pciser{n}", slot=slot, ports=ports)
        self._slots[id(card)] = slot
        return card

    def plug_card(self, card: PciSerialCard) -> CardPlugged:
        """Plug and wait for udev to announce the card, its driver and its ports' ttys."""
        plugged = plug_card_and_wait(self.guest, card)
        self.cards[id(card)] = plugged
        if self.report is not None:
            self.report.latency(card.kind, plugged.latency, "plug → ")
        return plugged

    def unplug_card(self, plugged: CardPlugged) -> dict[str, float]:
        """Unplug and wait for udev's remove of the ports' ttys and of the card."""
        latencies = unplug_card_and_wait(self.guest, plugged)
        self.cards.pop(id(plugged.card), None)
        if self.report is not None:
            self.report.latency(plugged.card.kind, latencies, "unplug → ")
        return latencies

    def cleanup(self) -> None:
        """Unplug whatever is still plugged."""
        for plugged in list(self.plugged.values()):
            self.unplug(plugged)
        for card in list(self.cards.values()):
            self.unplug_card(card)
        self._ports.clear()
        self._slots.clear()


@contextlib.contextmanager
def running_guest(report: Report, label: str = "", **options: Any) -> Iterator[Guest]:
    """Boot a guest from the cached image (``options`` go to Guest), report its boot, stop it after.

    Its run directory is a short path under /tmp (unix socket paths are short); NDU_VM_KEEP=1 keeps it.
    """
    image = ensure_image()
    run_dir = Path(tempfile.mkdtemp(prefix="ndu-vm-", dir="/tmp"))
    machine = Guest(image, run_dir, **options)
    try:
        machine.start()
        report.timings[f"{label}boot to agent ready (host)"] = machine.timings["boot_to_agent"]
        report.timings[f"{label}guest uptime when the agent answered"] = machine.timings["guest_uptime_at_agent"]
        yield machine
    finally:
        machine.stop()
        if os.environ.get("NDU_VM_KEEP") == "1":
            report.notes.append(f"{label}run directory kept (console.log, qemu.argv, share/): {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
