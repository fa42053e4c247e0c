"""``python -m vm.record_fixtures [NAME...]``: record real-kernel fixtures of QEMU's devices into fixtures/kernel/.

Boots a guest (as the VM tier does), plugs one of each emulated USB kind, a usb-hub, a configfs ACM
gadget and a two-port PCI serial card, and writes each as a umockdev recording: a usb_device with
its interfaces, or the PCI function with its ttys; udev's properties, every readable attribute and
the binary ``descriptors``/``config`` exactly as the guest's kernel shows them. Names (the files'
stems, e.g. ``qemu-pci-serial-2x``) record only those. Run as root, like scripts/vm-test; about a
minute. tests/unit/test_descriptors.py checks our descriptor parsing against the USB files.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vm.hotplug import BUS, EmulatedDevice, GadgetDevice, PciSerialCard, plug_and_wait, plug_card_and_wait
from vm.machine import Guest
from vm.testing import Report, running_guest

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "kernel"
HUB_IDS = "0409:55aa"  # QEMU's usb-hub
USB_NAMES = {"serial": "qemu-usb-serial", "keyboard": "qemu-usb-kbd", "storage": "qemu-usb-storage",
             "gadget": "dummy-hcd-acm-gadget"}
HUB_NAME = "qemu-usb-hub"
PCI_NAME = "qemu-pci-serial-2x"
NAMES = (*USB_NAMES.values(), HUB_NAME, PCI_NAME)


def record_usb(guest: Guest, wanted: set[str]) -> None:
    devices = [EmulatedDevice(kind, f"rec{kind}", f"NDUREC{kind[:3].upper()}", port)
               for port, kind in enumerate(("serial", "keyboard", "storage"), start=1)]
    for device in [*devices, GadgetDevice(name="recacm", serial="NDURECACM")]:
        name = USB_NAMES[device.kind]
        if name not in wanted:
            continue
        plug_and_wait(guest, device)
        (OUT / f"{name}.umockdev").write_text(guest.call("record_usb_device", serial=device.serial))
        print(f"recorded {name}", file=sys.stderr)
    if HUB_NAME in wanted:
        guest.require_qmp().execute("device_add", {"driver": "usb-hub", "id": "rechub", "bus": BUS, "port": "5"})
        guest.call("wait_event", query={"source": "udev", "action": "add", "subsystem": "usb",
                                        "devtype": "usb_device", "properties": {"ID_VENDOR_ID": "0409"}}, timeout=60)
        (OUT / f"{HUB_NAME}.umockdev").write_text(guest.call("record_usb_device", vendor_product=HUB_IDS))
        print(f"recorded {HUB_NAME}", file=sys.stderr)


def record_pci(guest: Guest) -> None:
    card = PciSerialCard(id="recpciser", slot=0x10, ports=2)
    plug_card_and_wait(guest, card)
    (OUT / f"{PCI_NAME}.umockdev").write_text(guest.call("record_pci_device", slot_name=card.slot_name))
    print(f"recorded {PCI_NAME}", file=sys.stderr)


def main(argv: list[str]) -> int:
    wanted = set(argv) or set(NAMES)
    unknown = wanted - set(NAMES)
    if unknown:
        print(f"unknown recordings {sorted(unknown)}; known: {', '.join(NAMES)}", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    report = Report()
    with running_guest(report, with_plugin=True) as guest:
        guest.install_plugin()
        record_usb(guest, wanted)
        if PCI_NAME in wanted:
            record_pci(guest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
