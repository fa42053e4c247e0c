"""VM tier, the real plugin: installed in the guest with pip, run by the go-plugin test client, driven by real hotplug."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vm.machine import Guest
from vm.testing import KINDS, Devices, Report

pytestmark = pytest.mark.vm

RULES_FILE = "/etc/nomad-device-usb/rules.yaml"
RULES = (Path(__file__).parent / "rules.yaml").read_text()
# Group and the attributes its rule in rules.yaml gives, per device kind.
EXPECTED = {
    "serial": (["ftdi", "serial", "ft232r"], {"emulated": True, "product_id": 0x6001}),
    "keyboard": (["qemu", "hid", "keyboard"], {"emulated": True}),
    "storage": (["qemu", "storage", "usb-disk"], {"emulated": True}),
    "gadget": (["pidcodes", "board", "acm-test"], {"emulated": False, "model": "ACM test board"}),
}
PLUGIN_CONFIG = {
    "rules_file": RULES_FILE,
    "unplugged_grace": "10m",  # every unplug in the session stays visible as unhealthy
    "log_level": "debug",
}
WAIT = 60.0


@pytest.fixture(scope="module")
def plugin(guest: Guest, report: Report) -> Iterator[dict[str, Any]]:
    """The plugin pip-installed into the guest's venv (once per guest) and started under the test client."""
    if "install_plugin" not in guest.timings:
        report.timings["pip install of the plugin in the guest"] = guest.install_plugin()
    guest.call("write_file", path=RULES_FILE, content=RULES)
    started = guest.call("plugin_start", config=PLUGIN_CONFIG, host_timeout=400)
    report.timings["plugin start to handshake (guest)"] = started["handshake_s"]
    report.timings["plugin start to first Fingerprint (guest)"] = started["first_fingerprint_s"]
    yield started
    stopped = guest.call("plugin_stop", host_timeout=120)
    assert stopped["exit_code"] == 0, stopped


def wait_fingerprint(guest: Guest, **query: Any) -> dict[str, Any]:
    """The first Fingerprint message since the last mark that satisfies ``query``."""
    return guest.call("plugin_wait", query=query, timeout=WAIT)  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", KINDS)
def test_fingerprint_reports_plugged_device(
    kind: str, plugin: dict[str, Any], devices: Devices, guest: Guest, report: Report
) -> None:
    """A plugged device appears healthy in its rule's group, with the rule's attributes."""
    group, attributes = EXPECTED[kind]
    device = devices.make(kind)
    devices.plug(device)  # sets the mark the Fingerprint wait below is timed from
    seen = wait_fingerprint(guest, group=group, id_contains=device.serial, healthy=True)
    assert seen["device"]["id"].startswith("usb-")
    assert attributes.items() <= seen["group"]["attributes"].items()
    report.latency(kind, {"Fingerprint healthy": seen["dt"]}, "plug → ")


@pytest.mark.parametrize("kind", KINDS)
def test_fingerprint_marks_unplugged_device_unhealthy(
    kind: str, plugin: dict[str, Any], devices: Devices, guest: Guest, report: Report
) -> None:
    """Pulling a device out keeps its ID in the stream, marked unhealthy, until the grace period ends."""
    group, _ = EXPECTED[kind]
    device = devices.make(kind)
    plugged = devices.plug(device)
    device_id = wait_fingerprint(guest, group=group, id_contains=device.serial, healthy=True)["device"]["id"]
    devices.unplug(plugged)
    seen = wait_fingerprint(guest, group=group, device_id=device_id, healthy=False)
    assert seen["device"]["health"] != "healthy"
    report.latency(kind, {"Fingerprint unhealthy": seen["dt"]}, "unplug → ")


@pytest.mark.parametrize("kind", KINDS)
def test_replug_keeps_stable_id_with_new_devnum(
    kind: str, plugin: dict[str, Any], devices: Devices, guest: Guest, report: Report
) -> None:
    """The same device plugged in again gets a new device number but the same ID, healthy again."""
    group, _ = EXPECTED[kind]
    device = devices.make(kind)
    first = devices.plug(device)
    device_id = wait_fingerprint(guest, group=group, id_contains=device.serial, healthy=True)["device"]["id"]
    devices.unplug(first)
    wait_fingerprint(guest, group=group, device_id=device_id, healthy=False)
    second = devices.plug(device)
    assert second.devnum != first.devnum
    seen = wait_fingerprint(guest, group=group, device_id=device_id, healthy=True)
    ids = [d["id"] for g in seen["groups"] for d in g["devices"] if device.serial in d["id"]]
    assert ids == [device_id]
    report.latency(kind, {"Fingerprint healthy": seen["dt"]}, "replug → ")


@pytest.mark.parametrize("kind", KINDS)
def test_reserve_returns_nodes_present_in_guest_dev(
    kind: str, plugin: dict[str, Any], devices: Devices, guest: Guest, report: Report
) -> None:
    """Reserve hands over the device's /dev nodes, every one of them a real device node in the guest."""
    group, _ = EXPECTED[kind]
    device = devices.make(kind)
    plugged = devices.plug(device)
    device_id = wait_fingerprint(guest, group=group, id_contains=device.serial, healthy=True)["device"]["id"]
    answer = guest.call("plugin_reserve_until", device_ids=[device_id], node=plugged.node, timeout=WAIT)
    assert "error" not in answer, answer
    assert answer["nodes"], answer
    missing = [path for path, node in answer["nodes"].items() if node is None]
    assert not missing, f"Reserve named nodes that do not exist in the guest: {missing}"
    assert plugged.node in answer["nodes"], answer
    assert plugged.usb["properties"]["DEVNAME"] in answer["nodes"], answer
    wanted = "block" if kind == "storage" else "char"
    assert answer["nodes"][plugged.node][wanted]
    for spec in answer["devices"]:
        assert set(spec["permissions"]) <= set("rwm") and spec["permissions"]
    report.latency(kind, {"Reserve lists the node": answer["seconds"]}, "healthy → ")


@pytest.mark.parametrize("write", ["rename", "in-place"])
def test_rules_file_edit_takes_effect(
    write: str, plugin: dict[str, Any], devices: Devices, guest: Guest, report: Report
) -> None:
    """Editing the rules file in the guest moves a plugged device to its new group without a restart."""
    old_group, _ = EXPECTED["keyboard"]
    new_group = ["qemu", "hid", f"keyboard-{write}"]
    device = devices.make("keyboard")
    devices.plug(device)
    device_id = wait_fingerprint(guest, group=old_group, id_contains=device.serial, healthy=True)["device"]["id"]
    edited = RULES.replace("name: keyboard}", f"name: {new_group[2]}}}")
    assert edited != RULES
    guest.call("mark")
    try:
        guest.call("write_file", path=RULES_FILE, content=edited, atomic=write == "rename")
        seen = wait_fingerprint(guest, group=new_group, device_id=device_id, healthy=True)
        assert device_id not in [
            d["id"] for g in seen["groups"] if [g["vendor"], g["type"], g["name"]] == old_group for d in g["devices"]
        ]
        report.latency("rules", {f"Fingerprint regrouped ({write})": seen["dt"]}, "edit → ")
    finally:
        guest.call("mark")
        guest.call("write_file", path=RULES_FILE, content=RULES, atomic=write == "rename")
        wait_fingerprint(guest, group=old_group, device_id=device_id, healthy=True)
