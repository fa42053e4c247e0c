"""`suggest DEVICE`: a starter rule for an attached device that loads and takes that device."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import RULES, golden, run_cli, world  # noqa: F401  (world is a fixture)

from discovery.state.inventory import take_inventory
from discovery.rules.loader import parse_rules
from discovery.fake.testbed import Testbed
from discovery.sources.udev import UdevSource


def _ids(world: Testbed) -> list[str]:
    return [d["id"] for d in json.loads(run_cli("list", "--json").out)["devices"]]


def test_suggest_every_fixture_matches_golden(world: Testbed) -> None:
    """The suggestion for each fixture device (vendor, type, name, children guessed from the device)."""
    text = "".join(run_cli("suggest", dev_id).out + "\n" for dev_id in _ids(world))
    golden("suggest.yaml", text)


def test_suggest_rule_loads_and_takes_its_device(world: Testbed) -> None:
    """Pasted under `rules:`, every suggestion is a valid rule whose first verdict on its device wins."""
    inventory = take_inventory(parse_rules("rules: []"), UdevSource().enumerate())
    for entry in inventory.entries:
        item = run_cli("suggest", entry.id).out
        rules = parse_rules("rules:\n" + item, "pasted.yaml")
        verdict = rules.explain(entry.device, entry.id)[0]
        assert verdict.winner, (entry.id, verdict.reason)


def test_suggest_standalone_is_a_whole_file_validate_accepts(world: Testbed, tmp_path: Path) -> None:
    """--standalone output saved as a file passes validate."""
    path = tmp_path / "rules.yaml"
    path.write_text(run_cli("suggest", "--standalone", "/dev/ttyUSB0").out)
    assert run_cli("validate", str(path)).code == 0


def test_suggest_says_which_rule_takes_the_device_now(world: Testbed) -> None:
    """With --rules, a comment names the rule that takes the device today and where to put the new one."""
    out = run_cli("suggest", "0403:6001", "--rules", RULES).out
    assert ('# Now ftdi/serial/ft232r by rules[2] "ftdi" in tests/golden/rules.yaml: put this rule before '
            'rules[2] "ftdi"') in out


def test_suggest_serial_adapter(world: Testbed) -> None:
    """An FTDI adapter: matched by ids, group ftdi/serial/..., its tty handed over, a driver required."""
    out = run_cli("suggest", "/dev/ttyUSB0").out
    body = "\n".join(line for line in out.splitlines() if not line.startswith("#"))
    assert body.splitlines() == [
        '  - name: "FTDI FT232R USB UART"',
        "    match:",
        "      vendor_id: 0x0403",
        "      product_id: 0x6001",
        "      # serial: A50285BI    # add to take only this unit",
        "    group: {vendor: ftdi, type: serial, name: ft232r-usb-uart}",
        "    children: [tty]",
        "    require_driver: true    # unhealthy until the kernel driver made the tty",
    ]


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("18d1:4ee7", "group: {vendor: google, type: phone, name: pixel-7}"),
        ("1050:0407", "group: {vendor: yubico, type: security-key, name: yubikey-otp-fido-ccid}"),
        ("1-5.1", "group: {vendor: qinheng, type: serial, name: usb-serial}"),
        ("1-5", "ignore: true"),
    ],
    ids=["adb-phone", "fido-key", "no-manufacturer", "hub"],
)
def test_suggest_guesses_from_the_device(world: Testbed, device: str, expected: str) -> None:
    """adb interface -> phone, FIDO hidraw -> security-key, hwdb names when strings are missing, hubs ignored."""
    assert expected in run_cli("suggest", device).out


def test_suggest_json_has_the_yaml(world: Testbed) -> None:
    """--json wraps the same text with the device ID."""
    item = run_cli("suggest", "2341:0043").out
    as_json = json.loads(run_cli("suggest", "2341:0043", "--json").out)
    assert as_json == {"id": "usb-2341-0043-85736323838351F0E1D1", "yaml": item}


def test_suggest_for_the_pi_uart_is_a_udev_rule_that_validate_accepts_and_explain_shows_matching(
    world: Testbed, tmp_path: Path
) -> None:
    """`suggest /dev/ttyAMA0` in a world with the Pi HAT: a kind: udev rule; saved, it validates and takes the UART."""
    suggested = run_cli("suggest", "--standalone", "/dev/ttyAMA0")
    assert suggested.code == 0, suggested.err
    assert "    kind: udev\n" in suggested.out and "      subsystem: tty\n" in suggested.out
    path = tmp_path / "rules.yaml"
    path.write_text(suggested.out)
    validated = run_cli("validate", str(path))
    assert validated.code == 0, validated.out + validated.err
    assert "(1 kind: udev)" in validated.out.splitlines()[-1] and "warning" not in validated.out
    explained = json.loads(run_cli("explain", "/dev/ttyAMA0", "--rules", str(path), "--json").out)
    assert explained["device"]["id"] == "tty-platform-fe201000.serial-ttyAMA0"
    assert [(v["kind"], v["winner"]) for v in explained["verdicts"]] == [("udev", True)]
    assert explained["reservation"]["devices"] == [
        {"host_path": "/dev/ttyAMA0", "task_path": "/dev/ttyAMA0", "permissions": "rw"}]
