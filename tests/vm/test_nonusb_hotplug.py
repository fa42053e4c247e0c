"""VM tier, beyond USB: QEMU's PCI serial card hot-plugged through ACPI, its ttyS ports seen by udev and by the plugin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vm.hotplug import PCI_SERIAL_VENDOR
from vm.machine import Guest
from vm.testing import Devices, Report

pytestmark = pytest.mark.vm

RULES_FILE = "/etc/nomad-device-usb/rules-nonusb.yaml"
RULES = (Path(__file__).parent / "rules-nonusb.yaml").read_text()
GROUP = ["qemu", "serial", "pci-serial"]
PLUGIN_CONFIG = {"rules_file": RULES_FILE, "unplugged_grace": "10m", "log_level": "debug"}
TTY_MAJOR = 4  # ttyS
WAIT = 60.0


def udevadm_info(guest: Guest, node: str) -> dict[str, str]:
    """``udevadm info`` of a node as the guest's udev database has it: P (sysfs path) and E (properties)."""
    out = guest.exec("udevadm", "info", node)["stdout"]
    info = {}
    for line in out.splitlines():
        tag, _, value = line.partition(": ")
        if tag == "P":
            info["P"] = value
        elif tag == "E":
            key, _, prop = value.partition("=")
            info[key] = prop
    return info


# --- the kernel and udev alone ------------------------------------------------------------------

@pytest.mark.parametrize("ports", [1, 2])
def test_pci_card_hotplug_announces_ttys_below_it(ports: int, devices: Devices, guest: Guest) -> None:
    """device_add gives the PCI function (bound to 8250's serial driver) and one ttyS node per port below it;
    device_del removes them, and the freed ttyS numbers go back to the legacy serial8250 ports."""
    card = devices.make_card(ports)
    plugged = devices.plug_card(card)
    props = plugged.pci["properties"]
    assert props["PCI_ID"] == f"{PCI_SERIAL_VENDOR:04X}:{card.device_id:04X}"
    assert props["DRIVER"] == "serial"
    assert props["ID_PATH"] == f"pci-{card.slot_name}"
    assert len(plugged.nodes) == ports and all(node.startswith("/dev/ttyS") for node in plugged.nodes)
    stat = guest.call("stat", paths=plugged.nodes)
    assert all(stat[node] is not None and (stat[node]["kind"], stat[node]["major"]) == ("char", TTY_MAJOR)
               for node in plugged.nodes), stat
    for tty in plugged.ttys:
        info = udevadm_info(guest, tty["device_node"])
        assert info["P"] == f"{card.devpath}/tty/{tty['sys_name']}"
        assert info["ID_VENDOR_ID"] == f"0x{PCI_SERIAL_VENDOR:04x}"  # 60-serial.rules, from the PCI parent

    devices.unplug_card(plugged)
    sys_paths = [f"/sys{tty['devpath']}" for tty in plugged.ttys]
    assert set(guest.call("stat", paths=[f"/sys{card.devpath}", *sys_paths]).values()) == {None}
    for node in plugged.nodes:
        assert udevadm_info(guest, node)["P"].startswith("/devices/platform/serial8250/")


def test_pci_card_replug_keeps_slot_path_and_port_names(devices: Devices) -> None:
    """The same card in the same slot again: the same ID_PATH and the same ttyS names."""
    card = devices.make_card(2)
    first = devices.plug_card(card)
    devices.unplug_card(first)
    second = devices.plug_card(card)
    assert second.pci["properties"]["ID_PATH"] == first.pci["properties"]["ID_PATH"]
    assert second.nodes == first.nodes


# --- the plugin, with a kind: udev rule ---------------------------------------------------------

@pytest.fixture(scope="module")
def plugin(guest: Guest, report: Report) -> Iterator[dict[str, Any]]:
    """The plugin pip-installed in the guest (once per guest) and started with the non-USB rules."""
    if "install_plugin" not in guest.timings:
        report.timings["pip install of the plugin in the guest"] = guest.install_plugin()
    guest.call("write_file", path=RULES_FILE, content=RULES)
    started = guest.call("plugin_start", config=PLUGIN_CONFIG, host_timeout=400)
    yield started
    stopped = guest.call("plugin_stop", host_timeout=120)
    assert stopped["exit_code"] == 0, stopped


def wait_fingerprint(guest: Guest, **query: Any) -> dict[str, Any]:
    """The first Fingerprint message since the last mark that satisfies ``query``."""
    return guest.call("plugin_wait", query={"group": GROUP, **query}, timeout=WAIT)  # type: ignore[no-any-return]


def healthy_ids(seen: dict[str, Any]) -> list[str]:
    return sorted(d["id"] for g in seen["groups"] if [g["vendor"], g["type"], g["name"]] == GROUP
                  for d in g["devices"] if d["healthy"])


def test_plugin_offers_each_card_port_as_a_udev_device(
    plugin: dict[str, Any], devices: Devices, guest: Guest, report: Report
) -> None:
    """Each port of the plugged card is a healthy device in the rule's group, with an ID from its slot and
    kernel name; the guest's other ttyS (console, legacy ports) are not offered."""
    card = devices.make_card(2)
    plugged = devices.plug_card(card)  # sets the mark the Fingerprint wait is timed from
    seen = wait_fingerprint(guest, healthy=True, min_count=2)
    ids = healthy_ids(seen)
    assert len(ids) == 2, ids
    for device_id, tty in zip(ids, plugged.ttys, strict=True):
        assert device_id.startswith("tty-pci-") and device_id.endswith(f"-{tty['sys_name']}"), ids
        assert f"{card.slot:02x}" in device_id and "," not in device_id
    assert seen["group"]["attributes"]["emulated"] is True
    report.latency(card.kind, {"Fingerprint healthy": seen["dt"]}, "plug → ")


def test_reserve_hands_over_the_port_node_with_kind_neutral_env(
    plugin: dict[str, Any], devices: Devices, guest: Guest, report: Report
) -> None:
    """Reserve of one port names its /dev/ttyS node (a real char device in the guest) and sets DEVICE_*,
    no USB_* names."""
    card = devices.make_card(2)
    plugged = devices.plug_card(card)
    tty = plugged.ttys[0]
    seen = wait_fingerprint(guest, healthy=True, min_count=2)
    (device_id,) = [i for i in healthy_ids(seen) if i.endswith(f"-{tty['sys_name']}")]
    answer = guest.call("plugin_reserve_until", device_ids=[device_id], node=tty["device_node"], timeout=WAIT)
    assert "error" not in answer, answer
    assert answer["nodes"].get(tty["device_node"]) is not None, answer
    assert answer["nodes"][tty["device_node"]]["char"] and answer["nodes"][tty["device_node"]]["major"] == TTY_MAJOR
    missing = [path for path, node in answer["nodes"].items() if node is None]
    assert not missing, f"Reserve named nodes that do not exist in the guest: {missing}"
    assert plugged.ttys[1]["device_node"] not in answer["nodes"], "the card's other port was handed over too"
    envs = answer["envs"]
    assert (envs["DEVICE_IDS"], envs["DEVICE_0_ID"], envs["DEVICE_0_NODE"]) == (
        device_id, device_id, tty["device_node"])
    assert not [name for name in envs if name.startswith("USB_")], envs
    for spec in answer["devices"]:
        assert spec["permissions"] and set(spec["permissions"]) <= set("rwm")
    report.latency(card.kind, {"Reserve lists the node": answer["seconds"]}, "healthy → ")


def test_unplugged_card_ports_go_and_come_back_with_the_same_ids(
    plugin: dict[str, Any], devices: Devices, guest: Guest, report: Report
) -> None:
    """device_del takes the ports out of service (gone or unhealthy, although /dev/ttyS1 lives on as a legacy
    port); the card plugged into the same slot again brings the same IDs back healthy."""
    card = devices.make_card(2)
    first = devices.plug_card(card)
    ids = healthy_ids(wait_fingerprint(guest, healthy=True, min_count=2))
    devices.unplug_card(first)
    for device_id in ids:
        seen = wait_fingerprint(guest, device_id=device_id, healthy=True, present=False)
    report.latency(card.kind, {"Fingerprint not healthy": seen["dt"]}, "unplug → ")
    stats = guest.call("stat", paths=first.nodes)
    assert all(stats[node] is not None for node in first.nodes), stats  # the nodes stay; the devices went

    devices.plug_card(card)
    seen = wait_fingerprint(guest, healthy=True, min_count=2)
    assert healthy_ids(seen) == ids
    report.latency(card.kind, {"Fingerprint healthy": seen["dt"]}, "replug → ")
