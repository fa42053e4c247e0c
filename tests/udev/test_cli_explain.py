"""`explain DEVICE`: each rule's verdict with actual and expected values, the result and the reservation."""

from __future__ import annotations

import json

import pytest
from cli_support import RULES, golden, run_cli, world  # noqa: F401  (world is a fixture)

from discovery.fake.testbed import Testbed

FTDI = "usb-0403-6001-A50285BI"


@pytest.mark.parametrize(
    ("device", "name"),
    [(FTDI, "ftdi"), ("/dev/ttyACM0", "arduino"), ("1-5", "hub"), ("0483:374b", "stlink")],
    ids=["matched", "mounts", "ignored", "no-rule"],
)
def test_explain_text_matches_golden(world: Testbed, device: str, name: str) -> None:
    """The device, every rule's conditions, the result and the reservation, for each kind of outcome."""
    run = run_cli("explain", device, "--rules", RULES)
    assert (run.code, run.err) == (0, "")
    golden(f"explain-{name}.txt", run.out)


def test_explain_json_matches_golden(world: Testbed) -> None:
    """--json has the device, the verdicts with their conditions, details and the reservation."""
    run = run_cli("explain", "/dev/ttyACM0", "--rules", RULES, "--json")
    assert run.code == 0
    golden("explain-arduino.json", run.out)


@pytest.mark.parametrize(
    "query",
    [FTDI, "0403:6001", "0x0403:0x6001", "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2",
     "/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0", "/dev/ttyUSB0", "/dev/bus/usb/001/006",
     "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0", "1-2", "pci-0000:00:14.0-usb-0:2"],
    ids=["id", "vid-pid", "vid-pid-0x", "sysfs", "sysfs-below", "tty", "bus-node", "by-id-link", "port",
         "id-path"],
)
def test_explain_finds_device_by_every_kind_of_name(world: Testbed, query: str) -> None:
    """Any of ID, VID:PID, sysfs path, /dev node or link, or port names the same device."""
    run = run_cli("explain", query, "--rules", RULES, "--json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["device"]["id"] == FTDI


def test_explain_device_behind_hub_by_sysfs_path(world: Testbed) -> None:
    """A sysfs path below a hub's child names the child, not the hub."""
    run = run_cli("explain", "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-5/1-5.2/1-5.2:1.2", "--json")
    assert json.loads(run.out)["device"]["vid_pid"] == "0483:374b"


def test_explain_verdicts_agree_with_list(world: Testbed) -> None:
    """The winner explain reports is the rule list shows for every device."""
    listed = json.loads(run_cli("list", "--rules", RULES, "--json").out)["devices"]
    for device in listed:
        explained = json.loads(run_cli("explain", device["id"], "--rules", RULES, "--json").out)
        winners = [v["rule"]["name"] for v in explained["verdicts"] if v["winner"]]
        expected = [device["match"]["rule"]["name"]] if device["match"]["rule"] else []
        assert winners == expected, device["id"]


def test_explain_reservation_is_the_plugins(world: Testbed) -> None:
    """The FTDI's reservation hands over its USB node and tty with rw, and the plugin's env variables."""
    reservation = json.loads(run_cli("explain", FTDI, "--rules", RULES, "--json").out)["reservation"]
    assert reservation["ok"]
    assert [d["host_path"] for d in reservation["devices"]] == ["/dev/bus/usb/001/006", "/dev/ttyUSB0"]
    assert {d["permissions"] for d in reservation["devices"]} == {"rw"}
    assert reservation["envs"]["USB_DEVICE_IDS"] == FTDI
    assert reservation["envs"]["USB_DEVICE_0_NODE"] == "/dev/ttyUSB0"


def test_explain_unhealthy_device_says_why_there_is_no_reservation(testbed: Testbed) -> None:
    """A matched but unhealthy device gets no reservation, and explain gives the plugin's reason."""
    from cli_support import ROOT

    from discovery.fake.testbed import load_fixture

    handle = testbed.plug(load_fixture("ftdi-ft232r"))
    testbed.unbind(handle, 0)
    run = run_cli("explain", FTDI, "--rules", str(ROOT / RULES))
    assert run.code == 0
    assert "unhealthy: no driver bound" in run.out
    assert f"none now: device {FTDI} is unhealthy: no driver bound" in run.out


def test_explain_ambiguous_device_lists_candidates(world: Testbed) -> None:
    """A VID:PID three boards share is refused in one line naming all three, exit 1."""
    run = run_cli("explain", "1a86:7523", "--rules", RULES)
    assert run.code == 1 and run.out == ""
    assert run.err.count("\n") == 1 and run.err.startswith("nomad-device-usb: error: '1a86:7523' matches 3 ")
    for port in ("1-5.1", "1-7", "1-8"):
        assert f"usb-1a86-7523-port-00:14.0-{port[2:]} (port {port})" in run.err


@pytest.mark.parametrize("query", ["dead:beef", "usb-nope", "/dev/ttyUSB9", "9-9", "/sys/devices/nowhere"])
def test_explain_unknown_device_is_one_line_exit_1(world: Testbed, query: str) -> None:
    """A DEVICE that names nothing attached: one line pointing at list, exit 1."""
    run = run_cli("explain", query)
    assert run.code == 1 and run.out == ""
    assert run.err == (f"nomad-device-usb: error: no attached device matches {query!r} (11 USB and 9 other devices attached; "
                       "'nomad-device-usb list --all' shows their IDs, VID:PIDs and ports)\n")


def test_explain_shows_the_rules_stats_command(world: Testbed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The winning rule's stats command is rendered for the device in the text and in --json details."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - match: {vendor_id: '0403'}\n    group: {vendor: ftdi, type: serial, name: ft232r}\n"
                     "    stats: {command: [/usr/local/bin/board-status, '{serial}'], interval: 5s, timeout: 2s,"
                     " summary: vbus}\n")
    run = run_cli("explain", FTDI, "--rules", str(rules))
    assert "  stats      /usr/local/bin/board-status A50285BI (every 5s, timeout 2s, summary vbus)" in run.out.splitlines()
    details = json.loads(run_cli("explain", FTDI, "--rules", str(rules), "--json").out)["details"]
    assert details["stats"] == {"command": ["/usr/local/bin/board-status", "A50285BI"], "interval": 5.0,
                                "timeout": 2.0, "summary": "vbus"}


@pytest.mark.parametrize("command", ["explain", "suggest"])
@pytest.mark.parametrize("query", ["zz:1", "0403:60011", "0xg403:6001", "12345:1"])
def test_malformed_vid_pid_gets_its_own_error(world: Testbed, command: str, query: str) -> None:
    """A DEVICE written like VID:PID but not hex (or too long) says so, instead of "no device matches"."""
    run = run_cli(command, query)
    assert (run.code, run.out) == (1, "")
    assert run.err == (f"nomad-device-usb: error: {query!r} is not a VID:PID: write two hex numbers of up to 4 "
                       "digits each, as lsusb prints them (e.g. 0403:6001)\n")
