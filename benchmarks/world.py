"""A umockdev world for one measurement: the testbed, the benchmark's rules file, and the subjects' env.

Every subject (the plugin and both baselines) is started with :meth:`World.env`, so they all see
the same fake /sys and /dev and receive the same uevents. The testbed is driven from the main
thread only (it is not thread-safe).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Self

from discovery.fake.testbed import FakeUsbDevice, Plugged, Testbed, make_fleet

ROOT = Path(__file__).resolve().parent.parent

# Realistic rules: the FTDI fleet the benchmark plugs is matched by the fourth rule and is usable
# only once its tty exists (children + require_driver), as the baselines also demand.
RULES_TEMPLATE = """\
rules:
  - name: hubs
    match: {{device_class: 0x09}}
    ignore: true
  - name: pixel 7
    match: {{vendor_id: 0x18d1, product_id: 0x4ee7}}
    group: {{vendor: google, type: phone, name: pixel-7}}
    env: {{ANDROID_SERIAL: "{{serial}}"}}
  - name: arduino uno
    match: {{vendor_id: 2341, product_id: [0043, 0001]}}
    group: {{vendor: arduino, type: board, name: uno}}
    children: [tty]
  - name: ftdi ft232r
    match: {{vendor_id: "0403", product_id: "6001"}}
    group: {{vendor: ftdi, type: serial, name: {ftdi_name}}}
    children: [tty]
    require_driver: true
    env: {{SERIAL_ADAPTER_SERIAL: "{{serial}}"}}
{ftdi_extra}  - name: silabs cp210x
    match: {{vendor_id: 10c4, product_id: ea60}}
    group: {{vendor: silabs, type: serial, name: cp210x}}
    children: [tty]
  - name: ch340
    match: {{vendor_id: 1a86, product_id: 7523}}
    group: {{vendor: qinheng, type: serial, name: ch340}}
    children: [tty]
  - name: st-link
    match: {{vendor_id: 0483, product_id: 374b}}
    group: {{vendor: st, type: debugger, name: stlink-v2-1}}
  - name: yubikey
    match: {{vendor_id: 1050}}
    group: {{vendor: yubico, type: token, name: "{{product_id}}"}}
"""
FTDI_GROUP = "ftdi/serial/ft232r"


def rules_text(ftdi_name: str = "ft232r", ftdi_extra: str = "") -> str:
    """The benchmark's rules; ``ftdi_extra`` is more YAML for the FTDI rule (4-space indent, ending in a newline)."""
    return RULES_TEMPLATE.format(ftdi_name=ftdi_name, ftdi_extra=ftdi_extra)


def expected_id(device: FakeUsbDevice) -> str:
    """The ID both the plugin and the baselines give a fleet device (all have real serials)."""
    return f"usb-{device.vendor_id:04x}-{device.product_id:04x}-{device.serial}"


def fleet(count: int) -> list[FakeUsbDevice]:
    return make_fleet(count)


class World:
    """One testbed plus a private directory holding the rules file."""

    def __init__(self) -> None:
        self.testbed = Testbed()
        self.dir = Path(tempfile.mkdtemp(prefix="nomad-usb-bench."))  # not under /dev: see Testbed
        self.rules_file = self.dir / "rules.yaml"
        self.rules_file.write_text(rules_text())
        self.plugged: dict[str, Plugged] = {}  # expected ID -> handle

    def env(self) -> dict[str, str]:
        """What a subject process needs: the preload, UMOCKDEV_DIR, and our packages on its path."""
        path = os.environ.get("PYTHONPATH", "")
        return {**self.testbed.env(), "PYTHONPATH": f"{ROOT}:{path}" if path else str(ROOT)}

    def plug(self, device: FakeUsbDevice) -> str:
        dev_id = expected_id(device)
        self.plugged[dev_id] = self.testbed.plug(device)
        return dev_id

    def unplug(self, dev_id: str) -> None:
        self.testbed.unplug(self.plugged.pop(dev_id))

    def plug_all(self, devices: Sequence[FakeUsbDevice]) -> list[str]:
        return [self.plug(d) for d in devices]

    def write_rules(self, text: str) -> float:
        """Replace the rules file the way config tools do (write aside, rename); the time it landed."""
        aside = self.dir / "rules.yaml.new"
        aside.write_text(text)
        os.replace(aside, self.rules_file)
        return time.monotonic()

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Make this process see the world (needs the preload loaded at exec) for in-process runs."""
        old = os.environ.get("UMOCKDEV_DIR")
        os.environ["UMOCKDEV_DIR"] = str(self.testbed.root)
        try:
            if not self.testbed.is_active() or os.path.exists("/sys/kernel"):
                raise RuntimeError(f"not mocked: /sys is not {self.testbed.root}/sys (preload missing?)")
            yield
        finally:
            if old is None:
                os.environ.pop("UMOCKDEV_DIR", None)
            else:
                os.environ["UMOCKDEV_DIR"] = old

    def close(self) -> None:
        try:
            self.testbed.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
