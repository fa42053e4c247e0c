"""`list`: every attached device with its stable ID, nodes and the rule that takes it, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import ROOT, RULES, golden, run_cli, world  # noqa: F401  (world is a fixture)

from discovery.state.inventory import take_inventory
from discovery.rules.loader import load_rules
from discovery.fake import usb_devices
from discovery.fake.testbed import Testbed, load_fixture
from discovery.sources.udev import UdevSource


def test_list_table_matches_golden(world: Testbed) -> None:
    """The table at 100 columns: rows in port order, narrow columns dropped, the footer counts."""
    run = run_cli("list", "--rules", RULES, columns=100)
    assert (run.code, run.err) == (0, "")
    golden("list.txt", run.out)


def test_list_wide_table_matches_golden(world: Testbed) -> None:
    """--wide shows every column uncut whatever the width."""
    run = run_cli("list", "--rules", RULES, "--wide", columns=60)
    assert run.code == 0
    golden("list-wide.txt", run.out)


def test_list_json_matches_golden(world: Testbed) -> None:
    """--json gives every device with ids, strings, nodes and its match."""
    run = run_cli("list", "--rules", RULES, "--json")
    assert run.code == 0
    golden("list.json", run.out)


def test_list_fits_the_terminal_width(world: Testbed) -> None:
    """No line is longer than COLUMNS, for narrow and wide terminals alike."""
    for columns in (60, 80, 100, 140):
        run = run_cli("list", "--rules", RULES, columns=columns)
        table = run.out.split("\n\n")[0].splitlines()
        assert max(len(line) for line in table) <= columns, columns


def test_list_without_rules_says_no_rule(world: Testbed) -> None:
    """Without a rules file every device is listed, each with "no rule", and the footer says how to give one."""
    run = run_cli("list", "--wide")
    assert run.code == 0
    rows = run.out.splitlines()[1:12]
    assert len(rows) == 11 and all("no rule" in row for row in rows)
    assert "no rules file: give --rules FILE" in run.out


def test_list_rules_from_environment(world: Testbed) -> None:
    """$NOMAD_DEVICE_USB_RULES stands in for --rules."""
    run = run_cli("list", "--json", environ={"NOMAD_DEVICE_USB_RULES": RULES})
    assert json.loads(run.out)["rules_file"] == RULES


def test_list_ids_and_matches_are_the_plugins(world: Testbed) -> None:
    """Every row's ID and group are what the plugin's DeviceTable snapshot gives (serial-less twins by port)."""
    rules = load_rules(RULES)
    inventory = take_inventory(rules, UdevSource().enumerate())
    expected = {e.id: ("/".join(e.state.group) if e.state else None) for e in inventory.entries}
    devices = json.loads(run_cli("list", "--rules", RULES, "--json").out)["devices"]
    listed = {d["id"]: d["match"]["group"] for d in devices}
    assert listed == expected
    twins = [i for i in listed if i.startswith("usb-1a86-7523-port-")]
    assert len(twins) == 3


def test_list_statuses_cover_matched_ignored_and_unmatched(world: Testbed) -> None:
    """The hub and keyboard are ignored by their rule, the ST-Link has no rule, the rest are matched."""
    devices = {d["vid_pid"] + "@" + d["sys_name"]: d["match"]
               for d in json.loads(run_cli("list", "--rules", RULES, "--json").out)["devices"]}
    assert devices["05e3:0610@1-5"]["status"] == "ignored" and devices["05e3:0610@1-5"]["rule"]["name"] == "hubs"
    assert devices["046d:c31c@1-9"]["rule"]["name"] == "keyboards and mice"
    assert devices["0483:374b@1-5.2"] == {"status": "unmatched", "group": None, "rule": None, "healthy": None,
                                          "reason": None}
    assert devices["0403:6001@1-2"]["group"] == "ftdi/serial/ft232r" and devices["0403:6001@1-2"]["healthy"]


def test_list_empty_world_says_so(testbed: Testbed) -> None:
    """With nothing attached the table is replaced by one sentence, and JSON has an empty list."""
    assert run_cli("list").out == "no USB devices attached\n"
    assert json.loads(run_cli("list", "--json").out)["devices"] == []


def test_list_marks_unhealthy_devices(testbed: Testbed) -> None:
    """A device whose rule requires a driver shows the reason when its driver is unbound."""
    handle = testbed.plug(load_fixture("ftdi-ft232r"))
    testbed.unbind(handle, 0)
    run = run_cli("list", "--rules", str(ROOT / RULES), "--json")
    ftdi = json.loads(run.out)["devices"][0]["match"]
    assert (ftdi["healthy"], ftdi["reason"]) == (False, "no driver bound")


def test_color_always_paints_the_table(world: Testbed) -> None:
    """--color=always puts escape codes in the table (bold headers, dim/yellow results)."""
    out = run_cli("--color=always", "list", "--rules", RULES).out
    assert "\x1b[1mID\x1b[0m" in out and "\x1b[2mignored\x1b[0m" in out and "\x1b[33mno rule\x1b[0m" in out


@pytest.mark.parametrize(
    ("args", "painted"),
    [
        (["list", "--color", "always"], True),
        (["list", "--color=always", "--rules", RULES], True),
        (["--color=always", "list", "--color", "never"], False),
        (["--color=never", "list"], False),
    ],
    ids=["after", "after-with-equals", "after-wins", "before"],
)
def test_color_option_works_after_the_command_too(world: Testbed, args: list[str], painted: bool) -> None:
    """`list --color never` is accepted like `--color never list`; given twice, the later one counts."""
    run = run_cli(*args)
    assert run.code == 0, run.err
    assert ("\x1b[" in run.out) is painted


def test_list_all_adds_node_devices_with_their_kind(world: Testbed) -> None:
    """--all lists the USB devices as before, then every device with a node outside USB, with a KIND column."""
    plain = run_cli("list", "--rules", RULES, "--wide")
    run = run_cli("list", "--rules", RULES, "--wide", "--all")
    assert (run.code, run.err) == (0, "")
    lines = run.out.splitlines()
    assert lines[0].split()[:3] == ["ID", "KIND", "DEVICE"]
    rows = {line.split()[0]: line.split() for line in lines[1:] if line and not line.startswith(("held", "2"))}
    usb_ids = [line.split()[0] for line in plain.out.splitlines()[1:12]]
    assert all(rows[i][1] == "usb" for i in usb_ids)
    assert rows["tty-platform-fe201000.serial-ttyAMA0"][1:4] == ["udev", "tty", "ttyAMA0"]
    assert rows["tty-pci-03_00.0-ttyS5"][1:5] == ["udev", "tty", "ttyS5", "-"]
    assert "20 devices:" in run.out and "11 devices:" in plain.out


def test_list_all_json_gives_kind_subsystem_node_and_parents(world: Testbed) -> None:
    """--all --json: every device says its kind; a udev device its subsystem, node, driver, port and parents."""
    devices = json.loads(run_cli("list", "--all", "--json").out)["devices"]
    assert {d["kind"] for d in devices} == {"usb", "udev"}
    cros = next(d for d in devices if d["id"] == "misc-platform-AMDI0020_01-cros_fp")
    assert (cros["subsystem"], cros["node"], cros["driver"], cros["port_path"]) == \
        ("misc", "/dev/cros_fp", "cros-ec-chardev", "platform-AMDI0020:01")
    assert [p["sys_name"] for p in cros["parents"]][:2] == ["cros-ec-chardev.3.auto", "cros-ec-dev.1.auto"]
    assert cros["match"]["status"] == "unmatched"
    assert all("kind" not in d for d in json.loads(run_cli("list", "--json").out)["devices"])


def test_list_shows_the_devices_outside_usb_that_the_udev_rules_would_take(world: Testbed) -> None:
    """Without --all, list shows what the plugin would look at: with the example's kind: udev rules (tty,
    gpio, i2c-dev, spidev), the Pi HAT's and the PCIe card's nodes beside the USB devices, not the capture
    card or cros_fp (no rule names their subsystems); with USB rules only, USB devices alone."""
    run = run_cli("list", "--rules", "examples/rules.yaml", "--wide")
    assert (run.code, run.err) == (0, "")
    rows = {f[0]: f for f in map(str.split, run.out.splitlines()[1:]) if len(f) > 1 and f[1] in ("usb", "udev")}
    udev = sorted(dev_id for dev_id, row in rows.items() if row[1] == "udev")
    assert udev == [
        "gpio-platform-fe200000.gpio-gpiochip0", "i2c-dev-platform-fe804000.i2c-i2c-1",
        "spidev-platform-fe204000.spi-spidev0.0", "tty-pci-03_00.0-ttyS4", "tty-pci-03_00.0-ttyS5",
        "tty-platform-fe201000.serial-ttyAMA0",
    ]
    assert "raspberrypi/serial/pl011" in rows["tty-platform-fe201000.serial-ttyAMA0"]
    assert "17 devices:" in run.out
    assert "11 devices:" in run_cli("list", "--rules", RULES).out


def test_list_names_twins_as_the_plugin_remembers_them(testbed: Testbed, own_state_dir: Path) -> None:
    """Two boards sharing a serial: alone, each would get its port's ID; the unit the plugin remembered (its
    saved ids.json) keeps its serial ID in list, as it does in Nomad. The file is only read, never changed."""
    testbed.plug(usb_devices.make_cp210x(serial="TWIN01", port="1-4", devnum=8))
    testbed.plug(usb_devices.make_cp210x(tty=2, serial="TWIN01", port="1-6", devnum=9))
    fresh = {d["id"] for d in json.loads(run_cli("list", "--json").out)["devices"]}
    assert fresh == {"usb-10c4-ea60-port-00:14.0-4", "usb-10c4-ea60-port-00:14.0-6"}

    saved = own_state_dir / "ids.json"
    port_path = next(d["port_path"] for d in json.loads(run_cli("list", "--json").out)["devices"]
                     if d["id"].endswith("-4"))
    saved.write_text(json.dumps({"version": 1, "ids": [
        {"vendor_id": "10c4", "product_id": "ea60", "serial": "TWIN01", "port": port_path, "id": "usb-10c4-ea60-TWIN01"}
    ]}))
    before = saved.read_bytes()
    remembered = {d["id"] for d in json.loads(run_cli("list", "--json").out)["devices"]}
    assert remembered == {"usb-10c4-ea60-TWIN01", "usb-10c4-ea60-port-00:14.0-6"}
    assert saved.read_bytes() == before
