"""Host side: plug and unplug devices in the guest, and time what the guest's udev sees.

Three ways to plug:

- ``EmulatedDevice``: QEMU's own devices through QMP ``device_add``/``device_del`` on the xHCI bus.
  Their ids are fixed by QEMU: usb-serial is FTDI 0403:6001 (ftdi_sio, /dev/ttyUSB*), usb-kbd is
  0627:0001 (usbhid, /dev/hidraw*), usb-storage is 46f4:0001 (usb-storage, /dev/sdX). Only
  ``serial`` (ID_SERIAL_SHORT in the guest) and ``port`` (the root port, so the port path) can be
  chosen. Each device gets its own backend (a null chardev, a null block node), removed after
  QEMU reports DEVICE_DELETED; a usb-serial may write to a host file instead (``chardev_out``), so
  the host can read what the guest sent to the device.
- ``GadgetDevice``: any VID:PID, made inside the guest with configfs and plugged into dummy_hcd by
  binding it to a UDC (see vm/guest/gadget.py).
- ``PciSerialCard``: not USB at all. QEMU's ``pci-serial``/``pci-serial-2x`` (16550A ports, Red Hat
  1b36:0002/0003) hot-plugged into a slot of the i440fx root bus, which the guest's ACPI PCI
  hotplug (acpiphp, built into Debian's kernel) takes; 8250_pci gives each port a ``ttyS<n>`` below
  the PCI device. Unplugging needs the guest's cooperation (it ejects the slot), which it gives.

``prepare`` does the untimed set-up (a backend, loading dummy_hcd, the configfs tree), so that
``plug`` is the one act being timed. ``plug_and_wait``/``unplug_and_wait`` (``plug_card_and_wait``/
``unplug_card_and_wait`` for a PCI card) set a mark in the guest, plug, and wait for the udev events;
the seconds since the mark are the guest's hotplug latencies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from vm.machine import Guest

BUS = "xhci.0"
EVENT_TIMEOUT = 60.0  # emulation speed depends on the load on the other core


class Device(Protocol):
    """Something the tests can plug into and pull out of the guest."""

    kind: str
    serial: str

    @property
    def vendor_id(self) -> int: ...
    @property
    def product_id(self) -> int: ...
    @property
    def child_subsystem(self) -> str: ...
    @property
    def child_devtype(self) -> str | None: ...
    def prepare(self, guest: Guest) -> None: ...
    def plug(self, guest: Guest) -> None: ...
    def unplug(self, guest: Guest) -> None: ...


@dataclass(frozen=True)
class Kind:
    """What QEMU emulates for one ``driver``, as the guest sees it."""

    driver: str
    vendor_id: int
    product_id: int
    child_subsystem: str  # where the node the plugin hands over appears
    child_devtype: str | None = None


KINDS = {
    "serial": Kind("usb-serial", 0x0403, 0x6001, "tty"),
    "keyboard": Kind("usb-kbd", 0x0627, 0x0001, "hidraw"),
    "storage": Kind("usb-storage", 0x46F4, 0x0001, "block", "disk"),
}


@dataclass(frozen=True)
class EmulatedDevice:
    """One QEMU device: ``kind`` from KINDS, a unique QOM ``id``, its serial and root port.

    ``chardev_out``: for a usb-serial, a host file that gets every byte the guest writes to it
    (QEMU's ``file`` chardev backend) instead of a null backend.
    """

    kind: str
    id: str
    serial: str
    port: int | str  # a root port, or "root.hub" for a port of a usb-hub plugged there ("3.5")
    chardev_out: str | None = None

    @property
    def vendor_id(self) -> int:
        return KINDS[self.kind].vendor_id

    @property
    def product_id(self) -> int:
        return KINDS[self.kind].product_id

    @property
    def child_subsystem(self) -> str:
        return KINDS[self.kind].child_subsystem

    @property
    def child_devtype(self) -> str | None:
        return KINDS[self.kind].child_devtype

    def prepare(self, guest: Guest) -> None:
        """Create the device's backend (before the timed plug)."""
        qmp = guest.require_qmp()
        if self.kind == "serial":
            backend = (
                {"type": "file", "data": {"out": self.chardev_out}} if self.chardev_out
                else {"type": "null", "data": {}}
            )
            qmp.execute("chardev-add", {"id": f"{self.id}-chr", "backend": backend})
        elif self.kind == "storage":
            qmp.execute(
                "blockdev-add",
                {"driver": "null-co", "node-name": f"{self.id}-blk", "size": 64 * 1024 * 1024, "read-zeroes": True},
            )

    def plug(self, guest: Guest) -> None:
        """device_add on the xHCI bus, at the device's root port."""
        props: dict[str, Any] = {
            "driver": KINDS[self.kind].driver, "id": self.id, "bus": BUS, "port": str(self.port),
            "serial": self.serial,
        }
        if self.kind == "serial":
            # usb-serial attaches only while its chardev is open; null and file chardevs never open.
            props.update({"chardev": f"{self.id}-chr", "always-plugged": True})
        elif self.kind == "storage":
            props.update(drive=f"{self.id}-blk", removable=True)
        guest.require_qmp().execute("device_add", props)

    def unplug(self, guest: Guest) -> None:
        """device_del, wait for DEVICE_DELETED (no guest cooperation needed), then drop the backend."""
        qmp = guest.require_qmp()
        qmp.execute("device_del", {"id": self.id})
        qmp.wait_event("DEVICE_DELETED", lambda data: data.get("device") == self.id, timeout=EVENT_TIMEOUT)
        if self.kind == "serial":
            qmp.execute("chardev-remove", {"id": f"{self.id}-chr"})
        elif self.kind == "storage":
            qmp.execute("blockdev-del", {"node-name": f"{self.id}-blk"})


@dataclass(frozen=True)
class GadgetDevice:
    """A configfs gadget in the guest with a VID:PID of our choosing (default: an ACM board)."""

    name: str
    serial: str
    vendor_id: int = 0x1209  # pid.codes, the open-hardware vendor id
    product_id: int = 0x0001
    manufacturer: str = "nomad-device-usb"
    product: str = "ACM test board"
    function: str = "acm"
    kind: str = "gadget"

    @property
    def child_subsystem(self) -> str:
        return "tty"

    @property
    def child_devtype(self) -> str | None:
        return None

    def prepare(self, guest: Guest) -> None:
        """Load dummy_hcd and describe the gadget in configfs (once)."""
        guest.call(
            "gadget_prepare", name=self.name, vendor_id=self.vendor_id, product_id=self.product_id,
            serial=self.serial, manufacturer=self.manufacturer, product=self.product, function=self.function,
        )

    def plug(self, guest: Guest) -> None:
        """Bind the gadget to the first free dummy UDC."""
        guest.call("gadget_plug", name=self.name)

    def unplug(self, guest: Guest) -> None:
        """Unbind from the UDC."""
        guest.call("gadget_unplug", name=self.name)


PCI_BUS = "pci.0"  # i440fx's root bus: ACPI PCI hotplug, which the guest's built-in acpiphp serves
PCI_SERIAL_VENDOR = 0x1B36  # Red Hat, Inc.: QEMU's own PCI devices
# ports -> QEMU driver and PCI device id. pci-serial-4x is left out: the guest's 8250 driver has
# four ttyS slots (ttyS0 is the console), so a fourth port would find none.
PCI_SERIAL_MODELS = {1: ("pci-serial", 0x0002), 2: ("pci-serial-2x", 0x0003)}


@dataclass(frozen=True)
class PciSerialCard:
    """QEMU's PCI 16550A card with ``ports`` ports, in ``slot`` of the root bus (0x10-0x1f are free).

    Each port gets a null chardev. The guest names the ports' ttys with the first free ttyS numbers
    (ttyS1, ttyS2 when nothing else took them); their sysfs paths are below the PCI function's.
    """

    id: str
    slot: int
    ports: int = 2
    kind: str = "pci-serial"

    def __post_init__(self) -> None:
        if self.ports not in PCI_SERIAL_MODELS:
            raise ValueError(f"a QEMU PCI serial card has {sorted(PCI_SERIAL_MODELS)} ports, not {self.ports}")

    @property
    def driver(self) -> str:
        return PCI_SERIAL_MODELS[self.ports][0]

    @property
    def vendor_id(self) -> int:
        return PCI_SERIAL_VENDOR

    @property
    def device_id(self) -> int:
        return PCI_SERIAL_MODELS[self.ports][1]

    @property
    def slot_name(self) -> str:
        """The PCI address the guest gives it: ``0000:00:10.0``."""
        return f"0000:00:{self.slot:02x}.0"

    @property
    def devpath(self) -> str:
        """Its sysfs path in the guest (below /sys)."""
        return f"/devices/pci0000:00/{self.slot_name}"

    def _chardevs(self) -> list[str]:
        return [f"{self.id}-chr{n}" for n in range(1, self.ports + 1)]

    def prepare(self, guest: Guest) -> None:
        """A null chardev per port (before the timed plug)."""
        for chardev in self._chardevs():
            guest.require_qmp().execute("chardev-add", {"id": chardev, "backend": {"type": "null", "data": {}}})

    def plug(self, guest: Guest) -> None:
        """device_add into the slot; the guest's ACPI hotplug handler scans it."""
        chardevs = self._chardevs()
        # pci-serial names its one port "chardev"; the multi-port cards number theirs from 1.
        links = {"chardev": chardevs[0]} if self.ports == 1 else {f"chardev{n}": c for n, c in enumerate(chardevs, 1)}
        guest.require_qmp().execute(
            "device_add", {"driver": self.driver, "id": self.id, "bus": PCI_BUS, "addr": hex(self.slot), **links}
        )

    def unplug(self, guest: Guest) -> None:
        """device_del, then DEVICE_DELETED (sent once the guest has ejected the slot), then the chardevs go."""
        qmp = guest.require_qmp()
        qmp.execute("device_del", {"id": self.id})
        qmp.wait_event("DEVICE_DELETED", lambda data: data.get("device") == self.id, timeout=EVENT_TIMEOUT)
        for chardev in self._chardevs():
            qmp.execute("chardev-remove", {"id": chardev})


@dataclass
class Plugged:
    """A device the guest has seen arrive: its udev events and node, and how long each step took."""

    device: Device
    usb: dict[str, Any]  # udev "add" of the usb_device
    child: dict[str, Any]  # udev "add" of the tty/hidraw/block child
    latency: dict[str, float] = field(default_factory=dict)
    requested_at: float = 0.0  # the host's time.time() just before the plug request

    @property
    def devpath(self) -> str:
        return str(self.usb["devpath"])

    @property
    def node(self) -> str:
        return str(self.child["device_node"])

    @property
    def devnum(self) -> int:
        return int(self.usb["properties"]["DEVNUM"])


def plug_and_wait(guest: Guest, device: Device, timeout: float = EVENT_TIMEOUT) -> Plugged:
    """Mark, plug, and wait until udev has announced the device and its node child.

    Latencies (seconds since the mark): ``kernel_add`` (the kernel's uevent for the usb_device),
    ``udev_add`` (udevd's, after its rules), ``node`` (udevd's event for the tty/hidraw/block child,
    by then the /dev node and its links exist).
    """
    device.prepare(guest)
    guest.call("mark")
    requested_at = time.time()
    device.plug(guest)
    usb = guest.call(
        "wait_event",
        query={
            "source": "udev", "action": "add", "subsystem": "usb", "devtype": "usb_device",
            "properties": {
                "ID_VENDOR_ID": f"{device.vendor_id:04x}", "ID_MODEL_ID": f"{device.product_id:04x}",
                "ID_SERIAL_SHORT": device.serial,
            },
        },
        timeout=timeout,
    )
    kernel = guest.call(
        "wait_event", query={"source": "kernel", "action": "add", "devpath": usb["devpath"]}, timeout=timeout
    )
    child_query: dict[str, Any] = {
        "source": "udev", "action": "add", "subsystem": device.child_subsystem,
        "devpath_prefix": usb["devpath"] + "/",
    }
    if device.child_devtype:
        child_query["devtype"] = device.child_devtype
    child = guest.call("wait_event", query=child_query, timeout=timeout)
    latency = {"kernel_add": kernel["dt"], "udev_add": usb["dt"], "node": child["dt"]}
    return Plugged(device, usb, child, latency, requested_at)


def unplug_and_wait(guest: Guest, plugged: Plugged, timeout: float = EVENT_TIMEOUT) -> dict[str, float]:
    """Mark, unplug, and wait for udev's ``remove`` of the usb_device and for the node to go.

    Latencies: ``kernel_remove``, ``udev_remove``, ``node_gone`` (seconds since the mark).
    """
    guest.call("mark")
    plugged.device.unplug(guest)
    udev = guest.call(
        "wait_event", query={"source": "udev", "action": "remove", "devpath": plugged.devpath}, timeout=timeout
    )
    kernel = guest.call(
        "wait_event", query={"source": "kernel", "action": "remove", "devpath": plugged.devpath}, timeout=timeout
    )
    gone = guest.call("wait_path", path=plugged.node, exists=False, timeout=timeout)
    return {"kernel_remove": kernel["dt"], "udev_remove": udev["dt"], "node_gone": gone}


@dataclass
class CardPlugged:
    """A PCI card the guest has seen arrive: the udev ``bind`` of its PCI function and its ports' ttys."""

    card: PciSerialCard
    pci: dict[str, Any]  # udev "bind" of the PCI function: DRIVER, PCI_ID, PCI_SLOT_NAME, ID_PATH
    ttys: list[dict[str, Any]]  # udev "add" of each port's tty, by kernel name
    latency: dict[str, float] = field(default_factory=dict)

    @property
    def nodes(self) -> list[str]:
        return [str(tty["device_node"]) for tty in self.ttys]


def plug_card_and_wait(guest: Guest, card: PciSerialCard, timeout: float = EVENT_TIMEOUT) -> CardPlugged:
    """Mark, plug, and wait until udev has announced the PCI function, its driver and every port's tty.

    Latencies (seconds since the mark): ``kernel_add`` and ``udev_add`` of the PCI function, ``node``
    (udevd's ``add`` of the last port's tty: its /dev node exists), ``bound`` (udevd's ``bind`` of the
    PCI function, 8250_pci having probed it).
    """
    card.prepare(guest)
    guest.call("mark")
    card.plug(guest)
    function = {"subsystem": "pci", "devpath": card.devpath}
    kernel = guest.call("wait_event", query={"source": "kernel", "action": "add", **function}, timeout=timeout)
    added = guest.call("wait_event", query={"source": "udev", "action": "add", **function}, timeout=timeout)
    # udevd holds an event back until earlier events of the device's children are done, so by the
    # parent's "bind" every port's tty "add" has arrived.
    bound = guest.call("wait_event", query={"source": "udev", "action": "bind", **function}, timeout=timeout)
    ttys = sorted(
        (
            event for event in guest.call("events")
            if (event["source"], event["action"], event["subsystem"]) == ("udev", "add", "tty")
            and event["devpath"].startswith(card.devpath + "/")
        ),
        key=lambda event: event["sys_name"],
    )
    if len(ttys) != card.ports:
        raise RuntimeError(f"{card.driver} in {card.slot_name}: {card.ports} ports, but udev added {ttys}")
    latency = {
        "kernel_add": kernel["dt"], "udev_add": added["dt"], "node": max(tty["dt"] for tty in ttys),
        "bound": bound["dt"],
    }
    return CardPlugged(card, bound, ttys, latency)


def unplug_card_and_wait(guest: Guest, plugged: CardPlugged, timeout: float = EVENT_TIMEOUT) -> dict[str, float]:
    """Mark, unplug, and wait for udev's ``remove`` of each port's tty and of the PCI function.

    The /dev/ttyS<n> nodes need not go: the 8250 driver gives a freed port number back to its
    legacy platform device (serial8250), which udev announces as a new tty with the same node.
    Latencies: ``tty_remove`` (the last port's), ``kernel_remove``, ``udev_remove`` (of the function).
    """
    guest.call("mark")
    plugged.card.unplug(guest)
    tty_removed = [
        guest.call("wait_event", query={"source": "udev", "action": "remove", "devpath": tty["devpath"]},
                   timeout=timeout)["dt"]
        for tty in plugged.ttys
    ]
    function = {"subsystem": "pci", "devpath": plugged.card.devpath}
    udev = guest.call("wait_event", query={"source": "udev", "action": "remove", **function}, timeout=timeout)
    kernel = guest.call("wait_event", query={"source": "kernel", "action": "remove", **function}, timeout=timeout)
    return {"tty_remove": max(tty_removed), "kernel_remove": kernel["dt"], "udev_remove": udev["dt"]}
