"""VM tier at scale: as many usb-serial adapters as QEMU's xHCI and hubs take, read by the plugin on a real kernel.

Seven usb-hubs on root ports 1-7 with an adapter on each of their 8 ports: 56 FT232R adapters, as
the umockdev benchmarks plug. The tier prints the figures (enumerate + match against the minimal
scan, the burst, one device's hotplug with the rest attached) beside the umockdev ones; it asserts
only what the plugin shows, and that our own reading of sysfs and udev's database is libudev's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
import pytest

from vm.hotplug import BUS, EmulatedDevice, Plugged, plug_and_wait, unplug_and_wait
from vm.machine import Guest
from vm.testing import Report

pytestmark = pytest.mark.vm

HUB_PORTS = range(1, 8)  # root port 8 stays free
PORTS_PER_HUB = 8  # QEMU's usb-hub
RULES_FILE = "/etc/nomad-device-usb/rules.yaml"
RULES = (Path(__file__).parent / "rules.yaml").read_text()
GROUP = ["ftdi", "serial", "ft232r"]
BURST_TIMEOUT = 600.0  # 56 enumerations under software emulation, on a loaded machine
WAIT = 120.0
REPLUGS = 3


def _hub_id(port: int) -> str:
    return f"scalehub{port}"


@pytest.fixture(scope="module")
def fleet(guest: Guest, report: Report) -> Iterator[list[EmulatedDevice]]:
    """The plugin running with 56 adapters behind 7 hubs, plugged at once; everything removed after."""
    guest.install_plugin()
    guest.call("write_file", path=RULES_FILE, content=RULES)
    guest.call("plugin_start", config={"rules_file": RULES_FILE, "unplugged_grace": "10m"}, host_timeout=400)
    qmp = guest.require_qmp()
    adapters = [
        EmulatedDevice(kind="serial", id=f"scale{hub}x{port}", serial=f"NDUSCALE{hub}{port}", port=f"{hub}.{port}")
        for hub in HUB_PORTS for port in range(1, PORTS_PER_HUB + 1)
    ]
    hubs: list[str] = []
    plugged: list[EmulatedDevice] = []
    try:
        guest.call("mark")
        started = time.monotonic()
        for port in HUB_PORTS:
            qmp.execute("device_add", {"driver": "usb-hub", "id": _hub_id(port), "bus": BUS, "port": str(port)})
            hubs.append(_hub_id(port))
        for adapter in adapters:
            adapter.prepare(guest)
            adapter.plug(guest)
            plugged.append(adapter)
        requested = time.monotonic() - started
        seen = guest.call("plugin_wait", query={"group": GROUP, "healthy": True, "min_count": len(adapters)},
                          timeout=BURST_TIMEOUT)
        report.phase(f"{len(adapters)} usb-serial adapters behind {len(hubs)} hubs, plugged at once", {
            "device_add of every hub and adapter (host)": requested,
            "mark -> all of them healthy in one Fingerprint (guest)": seen["dt"],
        })
        yield adapters
    finally:
        guest.call("plugin_stop", host_timeout=120)
        for adapter in reversed(plugged):
            adapter.unplug(guest)
        for hub in reversed(hubs):
            qmp.execute("device_del", {"id": hub})
            qmp.wait_event("DEVICE_DELETED", lambda data, hub=hub: data.get("device") == hub, timeout=WAIT)


def test_scale_every_adapter_healthy_in_one_fingerprint(fleet: list[EmulatedDevice], guest: Guest) -> None:
    """With at least 50 adapters attached, one Fingerprint message lists each of them healthy, once."""
    assert len(fleet) >= 50
    latest = guest.call("plugin_latest")
    ids = [d["id"] for g in latest if [g["vendor"], g["type"], g["name"]] == GROUP for d in g["devices"]
           if d["healthy"]]
    for adapter in fleet:
        assert sum(adapter.serial in i for i in ids) == 1, adapter.serial


def test_scale_enumerate_and_match_on_real_sysfs(fleet: list[EmulatedDevice], guest: Guest, report: Report) -> None:
    """Discovery.start() and the minimal scan both find every adapter; their times go into the report."""
    timings = guest.call("scale_enumerate", rules_file=RULES_FILE, runs=5, host_timeout=600)
    assert timings["scan_found"] == len(fleet)
    assert timings["ours_healthy"] >= len(fleet)
    report.phase(f"enumerate + match with {len(fleet)} adapters (+ hubs) attached, median of 5 (guest)", {
        "ours: Discovery.start() (rules, monitor, enumerate, IDs, match)": timings["ours_ms"] / 1000.0,
        "ours: enumerate() alone": timings["enumerate_ms"] / 1000.0,
        "minimal pyudev scan (benchmarks/baselines.py)": timings["scan_ms"] / 1000.0,
    })


def test_scale_one_replug_with_the_rest_attached(fleet: list[EmulatedDevice], guest: Guest, report: Report) -> None:
    """Single adapters unplugged and plugged back among the rest: unhealthy, then healthy again, same ID."""
    for adapter in fleet[:REPLUGS]:
        device_id = guest.call("plugin_wait", query={"group": GROUP, "id_contains": adapter.serial, "healthy": True},
                               since_mark=False, timeout=WAIT)["device"]["id"]
        found = guest.call("find_usb_device", serial=adapter.serial, child_subsystem="tty")
        gone = unplug_and_wait(guest, Plugged(adapter, found["usb"], found["child"]))
        unhealthy = guest.call("plugin_wait", query={"group": GROUP, "device_id": device_id, "healthy": False},
                               timeout=WAIT)
        back = plug_and_wait(guest, adapter)
        healthy = guest.call("plugin_wait", query={"group": GROUP, "device_id": device_id, "healthy": True},
                             timeout=WAIT)
        kind = f"serial, {len(fleet)} attached"
        report.latency(kind, {"udev remove": gone["udev_remove"], "Fingerprint unhealthy": unhealthy["dt"]}, "unplug → ")
        report.latency(kind, {**back.latency, "Fingerprint healthy": healthy["dt"]}, "plug → ")


def test_scale_our_reads_are_libudevs_on_real_udev(fleet: list[EmulatedDevice], guest: Guest) -> None:
    """On a real kernel with udevd's database, our one-read properties equal libudev's for every device,
    and enumerate() reads every USB device exactly as device_at() does."""
    properties = guest.call("compare_properties", host_timeout=300)
    assert properties["differ"] == [], properties
    assert properties["checked"] > 2 * len(fleet) and properties["with_database"] > len(fleet)
    reads = guest.call("compare_reads", host_timeout=300)
    assert reads["differ"] == [] and reads["devices"] > len(fleet) and reads["children"] >= len(fleet)
