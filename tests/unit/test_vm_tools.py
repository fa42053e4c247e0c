"""The VM tier's own tools, checked without booting anything: image inputs, module selection, QMP, queries."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.rules.loader import load_rules
from vm import build, machine, nomad
from vm.guest.nomad_queries import devices_from_node, find_instance, item_matches, wall_from_hclog
from vm.guest.queries import find
from vm.guest.udevlog import Event
from vm.hotplug import PciSerialCard
from vm.qmp import QMP, QMPError
from vm.testing import Report


def write_modules(root: Path) -> Path:
    """A tiny /lib/modules/<release> with a dependency chain and an unrelated module."""
    modules = root / "lib" / "modules" / "6.1.0-test"
    modules.mkdir(parents=True)
    (modules / "modules.dep").write_text(
        "kernel/drivers/usb/serial/ftdi_sio.ko: kernel/drivers/usb/serial/usbserial.ko\n"
        "kernel/drivers/usb/serial/usbserial.ko:\n"
        "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko\n"
        "kernel/net/9p/9pnet.ko:\n"
        "kernel/fs/netfs/netfs.ko:\n"
        "kernel/sound/snd.ko:\n"
    )
    (modules / "modules.builtin").write_text("kernel/fs/configfs/configfs.ko\n")
    return modules


def test_select_modules_follows_dependencies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Named modules come with their dependencies, trees come whole, built-ins are accepted, the rest stays out."""
    monkeypatch.setattr(build, "MODULE_TREES", ("kernel/drivers/usb",))
    monkeypatch.setattr(build, "MODULES", ("9p", "configfs"))
    chosen = build.select_modules(write_modules(tmp_path))
    assert chosen == {
        "kernel/drivers/usb/serial/ftdi_sio.ko",
        "kernel/drivers/usb/serial/usbserial.ko",
        "kernel/fs/9p/9p.ko",
        "kernel/net/9p/9pnet.ko",
        "kernel/fs/netfs/netfs.ko",
    }


def test_select_modules_rejects_unknown_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A module name the kernel has neither as a module nor built in stops the build, naming it."""
    monkeypatch.setattr(build, "MODULES", ("no_such_driver",))
    with pytest.raises(build.BuildError, match="no_such_driver"):
        build.select_modules(write_modules(tmp_path))


def test_input_key_changes_with_init_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Editing the guest's /init makes a new cache key, so the image is rebuilt."""
    init = tmp_path / "init"
    init.write_text("#!/bin/sh\necho one\n")
    monkeypatch.setattr(build, "INIT_SCRIPT", init)
    first = build.input_key()
    assert build.input_key() == first
    init.write_text("#!/bin/sh\necho two\n")
    assert build.input_key() != first


def test_runtime_requirements_come_from_pyproject(tmp_path: Path) -> None:
    """The guest venv gets exactly [project].dependencies."""
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["grpcio>=1.60", "pyudev"]\n')
    assert build.runtime_requirements(pyproject) == ["grpcio>=1.60", "pyudev"]


def test_check_host_tools_names_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without debootstrap the build fails at once, saying which package to install and how."""
    monkeypatch.setattr(build.shutil, "which", lambda tool: None if tool == "debootstrap" else f"/usr/bin/{tool}")
    with pytest.raises(build.BuildError, match=r"debootstrap.*vm/setup-host"):
        build.check_host_tools()


def test_check_qemu_names_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without qemu-system-x86_64 starting a guest fails at once, naming the package."""
    monkeypatch.setattr(machine.shutil, "which", lambda tool: None)
    with pytest.raises(machine.GuestError, match="qemu-system-x86"):
        machine.check_qemu()


class FakeQemu:
    """The QEMU end of a QMP socket: a greeting, then scripted replies per command."""

    def __init__(self, sock: socket.socket, replies: dict[str, list[dict]]) -> None:
        self.sock = sock
        self.replies = replies
        self.commands: list[dict] = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        stream = self.sock.makefile("rwb")
        stream.write(b'{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}}\n')
        stream.flush()
        for line in stream:
            command = json.loads(line)
            self.commands.append(command)
            for reply in self.replies.get(command["execute"], [{"return": {}}]):
                stream.write(json.dumps(reply).encode() + b"\n")
            stream.flush()
        stream.close()


@pytest.fixture
def qmp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_qmp_keeps_events_that_arrive_before_a_reply(qmp_pair: tuple[socket.socket, socket.socket]) -> None:
    """An event QEMU sends while a command runs is kept for wait_event; the command still gets its return."""
    ours, theirs = qmp_pair
    fake = FakeQemu(theirs, {"device_del": [{"event": "DEVICE_DELETED", "data": {"device": "ser1"}}, {"return": {}}]})
    fake.thread.start()
    qmp = QMP(ours, timeout=10)
    assert qmp.execute("device_del", {"id": "ser1"}, timeout=10) == {}
    event = qmp.wait_event("DEVICE_DELETED", lambda data: data["device"] == "ser1", timeout=10)
    assert event["data"] == {"device": "ser1"}
    assert [c["execute"] for c in fake.commands] == ["qmp_capabilities", "device_del"]


def test_qmp_error_reply_raises_with_qemu_text(qmp_pair: tuple[socket.socket, socket.socket]) -> None:
    """QEMU's error class and description end up in the exception."""
    ours, theirs = qmp_pair
    error = {"error": {"class": "GenericError", "desc": "Duplicate device ID 'ser1'"}}
    FakeQemu(theirs, {"device_add": [error]}).thread.start()
    qmp = QMP(ours, timeout=10)
    with pytest.raises(QMPError, match="Duplicate device ID 'ser1'"):
        qmp.execute("device_add", {"driver": "usb-serial", "id": "ser1"}, timeout=10)


@pytest.mark.parametrize(
    ("ports", "driver", "links"),
    [(1, "pci-serial", {"chardev": "card-chr1"}),
     (2, "pci-serial-2x", {"chardev1": "card-chr1", "chardev2": "card-chr2"})],
    ids=["one-port", "two-port"],
)
def test_pci_serial_card_plugs_into_a_root_bus_slot_and_unplugs_after_the_guest_ejects(
    ports: int, driver: str, links: dict, qmp_pair: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    """A chardev per port, device_add into the slot on pci.0 with QEMU's port property names; device_del waits
    for DEVICE_DELETED before the chardevs go."""
    ours, theirs = qmp_pair
    fake = FakeQemu(theirs, {"device_del": [{"return": {}}, {"event": "DEVICE_DELETED", "data": {"device": "card"}}]})
    fake.thread.start()
    guest = machine.Guest(build.Image(tmp_path, tmp_path / "vmlinuz", tmp_path / "initrd", {}), tmp_path)
    guest.qmp = QMP(ours, timeout=10)
    card = PciSerialCard(id="card", slot=0x11, ports=ports)
    card.prepare(guest)
    card.plug(guest)
    card.unplug(guest)
    chardevs = [f"card-chr{n}" for n in range(1, ports + 1)]
    assert [(c["execute"], c.get("arguments", {}).get("id")) for c in fake.commands[1:]] == [
        *(("chardev-add", c) for c in chardevs), ("device_add", "card"), ("device_del", "card"),
        *(("chardev-remove", c) for c in chardevs)]
    device_add = fake.commands[1 + ports]["arguments"]
    assert device_add == {"driver": driver, "id": "card", "bus": "pci.0", "addr": "0x11", **links}
    assert (card.slot_name, card.devpath) == ("0000:00:11.0", "/devices/pci0000:00/0000:00:11.0")


def test_pci_serial_card_refuses_a_port_count_qemu_or_the_guest_cannot_give() -> None:
    """Four ports would need a fourth free ttyS slot in the guest; three QEMU has no card for."""
    for ports in (3, 4):
        with pytest.raises(ValueError, match="ports"):
            PciSerialCard(id="card", slot=0x10, ports=ports)


def make_event(**overrides: object) -> Event:
    fields: dict = dict(
        t=1.0, source="udev", action="add", subsystem="tty", devtype=None, sys_name="ttyUSB0",
        devpath="/devices/pci0000:00/0000:00:02.0/usb1/1-1/1-1:1.0/ttyUSB0/tty/ttyUSB0",
        device_node="/dev/ttyUSB0", properties={"ID_VENDOR_ID": "0403"},
    )
    fields.update(overrides)
    return Event(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"source": "udev", "action": "add", "subsystem": "tty"}, True),
        ({"source": "kernel"}, False),
        ({"devpath_prefix": "/devices/pci0000:00/0000:00:02.0/usb1/1-1/"}, True),
        ({"devpath_prefix": "/devices/pci0000:00/0000:00:02.0/usb1/1-2/"}, False),
        ({"properties": {"ID_VENDOR_ID": "0403"}}, True),
        ({"properties": {"ID_VENDOR_ID": "1209"}}, False),
    ],
    ids=["fields", "wrong-source", "under-device", "other-device", "property", "wrong-property"],
)
def test_event_matches_query(query: dict, expected: bool) -> None:
    """Guest event queries match on fields, sysfs ancestry and properties."""
    assert make_event().matches(query) is expected


GROUPS = [
    {
        "vendor": "ftdi", "type": "serial", "name": "ft232r", "attributes": {},
        "devices": [
            {"id": "usb-0403-6001-A", "healthy": True, "health": "healthy"},
            {"id": "usb-0403-6001-B", "healthy": False, "health": "unplugged"},
        ],
    }
]


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ({"group": ["ftdi", "serial", "ft232r"], "healthy": False}, "usb-0403-6001-B"),
        ({"group": ["ftdi", "serial", "ft232r"], "id_contains": "-A", "healthy": True}, "usb-0403-6001-A"),
        ({"group": ["ftdi", "serial", "ft232r"], "device_id": "usb-0403-6001-A", "healthy": False}, None),
        ({"group": ["ftdi", "serial", "other"]}, None),
        ({"group": ["ftdi", "serial", "ft232r"], "device_id": "usb-0403-6001-C", "present": False}, "absent"),
        ({"group": ["ftdi", "serial", "ft232r"], "device_id": "usb-0403-6001-A", "present": False}, None),
        ({"group": ["ftdi", "serial", "ft232r"], "min_count": 2}, "usb-0403-6001-A"),
        ({"group": ["ftdi", "serial", "ft232r"], "healthy": True, "min_count": 2}, None),
    ],
    ids=["unhealthy", "by-serial", "wrong-health", "other-group", "absent-ok", "absent-but-there", "count",
         "too-few"],
)
def test_fingerprint_query_finds_device(query: dict, found: str | None) -> None:
    """Fingerprint queries select by group, ID and health; ``present: False`` asks for absence."""
    hit = find(GROUPS, query)
    if found is None:
        assert hit is None
    elif found == "absent":
        assert hit == {"group": None, "device": None}
    else:
        assert hit is not None and hit["device"]["id"] == found


def test_report_lists_steps_in_time_order() -> None:
    """The latency table lists plug steps before unplug steps, each with min, median and max."""
    report = Report()
    report.latency("serial", {"udev_remove": 0.05}, "unplug → ")
    report.latency("serial", {"kernel_add": 0.4, "udev_add": 0.45}, "plug → ")
    report.latency("serial", {"kernel_add": 0.6, "udev_add": 0.65}, "plug → ")
    rows = [line.split() for line in report.lines()[1:]]
    assert [r[1:4] for r in rows] == [["plug", "→", "kernel_add"], ["plug", "→", "udev_add"], ["unplug", "→", "udev_remove"]]
    assert rows[0][4:7] == ["0.400", "0.600", "0.600"] and rows[0][7] == "n=2"


def test_report_lists_phases_per_scenario() -> None:
    """Scenario phases are listed under their scenario in the order recorded, with min, median and max over runs."""
    report = Report()
    report.phase("nomad", {"plug → Fingerprint": 1.0, "Fingerprint → node": 2.0})
    report.phase("nomad", {"plug → Fingerprint": 3.0, "Fingerprint → node": 1.5})
    lines = report.lines()
    assert lines[0].startswith("nomad, seconds per phase")
    assert [line.split()[-4:] for line in lines[1:3]] == [
        ["1.000", "3.000", "3.000", "n=2"], ["1.500", "2.000", "2.000", "n=2"],
    ]
    assert lines[1].split()[:3] == ["plug", "→", "Fingerprint"]
    assert report.as_json()["phases"][0] == ["nomad", "plug → Fingerprint", 1.0]


NODE = {
    "NodeResources": {
        "Devices": [
            {
                "Vendor": "ftdi", "Type": "serial", "Name": "ft232r", "Attributes": {"emulated": {"Bool": True}},
                "Instances": [
                    {"ID": "usb-0403-6001-A", "Healthy": False, "HealthDescription": "unplugged"},
                    {"ID": "usb-0403-6001-B", "Healthy": True, "HealthDescription": ""},
                ],
            }
        ]
    }
}


@pytest.mark.parametrize(
    ("group", "id_contains", "healthy", "found"),
    [
        pytest.param(["ftdi", "serial", "ft232r"], "6001-B", True, "usb-0403-6001-B", id="healthy"),
        pytest.param(["ftdi", "serial", "ft232r"], "6001-A", False, "usb-0403-6001-A", id="unhealthy"),
        pytest.param(["ftdi", "serial", "ft232r"], "6001-A", True, None, id="wrong-health"),
        pytest.param(["ftdi", "serial", "other"], "6001-B", True, None, id="other-group"),
    ],
)
def test_node_devices_find_instance(group: list[str], id_contains: str, healthy: bool, found: str | None) -> None:
    """A node's device groups come out as plain data, and an instance is found by group, ID part and health."""
    groups = devices_from_node(NODE)
    hit = find_instance(groups, group, id_contains, healthy)
    assert (hit["instance"]["id"] if hit else None) == found
    assert devices_from_node({"NodeResources": {"Devices": None}}) == []


def test_nomad_item_match_and_hclog_time() -> None:
    """Log lines and API items match on equal fields (a list: one of them); both hclog time formats parse."""
    line = {"@message": "device added", "device_id": "usb-1", "groups": 1}
    assert item_matches(line, {"@message": ["device added", "device healthy"], "device_id": "usb-1"})
    assert not item_matches(line, {"@message": "device healthy"})
    assert not item_matches(line, {"missing": "x"})
    assert wall_from_hclog("2021-05-18T10:00:00.250Z") == wall_from_hclog("2021-05-18T10:00:00.250000Z")
    assert wall_from_hclog("2021-05-18T10:00:01.000000+00:00") - wall_from_hclog("2021-05-18T10:00:00.250Z") == 0.75


def test_find_nomad_says_why_without_a_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a usable binary the Nomad scenario gets no path and a reason naming where it looked."""
    monkeypatch.setenv(nomad.NOMAD_ENV, str(tmp_path / "nomad"))
    missing = nomad.find_nomad()
    assert missing.path is None and str(tmp_path / "nomad") in missing.reason
    (tmp_path / "nomad").write_text("not a program")
    (tmp_path / "nomad").chmod(0o644)
    assert "not executable" in nomad.find_nomad().reason


def test_guest_rules_file_loads() -> None:
    """The rules file the VM tier installs in the guest passes the plugin's own loader, one rule per kind."""
    rules = load_rules(Path(__file__).resolve().parents[1] / "vm" / "rules.yaml")
    assert len(list(rules)) == 5


def test_guest_non_usb_rules_file_loads() -> None:
    """The PCI serial card's rules file (tests/vm/rules-nonusb.yaml) passes the loader as one kind: udev rule."""
    rules = list(load_rules(Path(__file__).resolve().parents[1] / "vm" / "rules-nonusb.yaml"))
    assert [(rule.kind, str(rule.group.static_key) if rule.group else None) for rule in rules] == [
        ("udev", "qemu/serial/pci-serial")
    ]
