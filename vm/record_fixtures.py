"""``python -m vm.record_fixtures``: record real-kernel fixtures of QEMU's USB devices into fixtures/kernel/.

Boots a guest (as the VM tier does), plugs one of each emulated kind, a usb-hub and a configfs ACM
gadget, and writes each usb_device with its interfaces as a umockdev recording: the binary
``descriptors`` and the attribute files exactly as the guest's kernel shows them. Run as root, like
scripts/vm-test; about a minute. tests/unit/test_descriptors.py checks our descriptor parsing
against these files.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vm.hotplug import BUS, EmulatedDevice, GadgetDevice, plug_and_wait
from vm.testing import Report, running_guest

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "kernel"
HUB_IDS = "0409:55aa"  # QEMU's usb-hub


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    report = Report()
    with running_guest(report, with_plugin=True) as guest:
        guest.install_plugin()
        devices = [EmulatedDevice(kind, f"rec{kind}", f"NDUREC{kind[:3].upper()}", port)
                   for port, kind in enumerate(("serial", "keyboard", "storage"), start=1)]
        for device in [*devices, GadgetDevice(name="recacm", serial="NDURECACM")]:
            plug_and_wait(guest, device)
            name = {"serial": "qemu-usb-serial", "keyboard": "qemu-usb-kbd", "storage": "qemu-usb-storage",
                    "gadget": "dummy-hcd-acm-gadget"}[device.kind]
            (OUT / f"{name}.umockdev").write_text(guest.call("record_usb_device", serial=device.serial))
            print(f"recorded {name}", file=sys.stderr)
        guest.require_qmp().execute("device_add", {"driver": "usb-hub", "id": "rechub", "bus": BUS, "port": "5"})
        guest.call("wait_event", query={"source": "udev", "action": "add", "subsystem": "usb",
                                        "devtype": "usb_device", "properties": {"ID_VENDOR_ID": "0409"}}, timeout=60)
        (OUT / "qemu-usb-hub.umockdev").write_text(guest.call("record_usb_device", vendor_product=HUB_IDS))
        print("recorded qemu-usb-hub", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
