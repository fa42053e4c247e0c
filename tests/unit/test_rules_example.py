"""examples/rules.yaml loads, sorts the devices it describes into the groups it claims, and warns of nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rules_factories import (
    arduino_uno,
    ch340,
    cp210x,
    ft232r,
    keyboard,
    make_child,
    make_device,
    pixel_7,
    root_hub,
    stlink_v2_1,
    yubikey_5,
)

from discovery.model import Interface, UsbDevice
from discovery.rules.loader import load_rules, parse_rules
from discovery.rules.matching import HealthCheck, Mount, StatsCommand
from discovery.rules.model import AttrValue
from discovery.rules.ruleset import RuleSet

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "rules.yaml"
DOCS = ROOT / "docs" / "rules.md"

ADB = Interface(1, 0xFF, 0x42, 0x01, sys_name="1-2:1.1")

CLAIMS: list[tuple[str, UsbDevice, str | None]] = [
    ("pixel-7", pixel_7(), "google/phone/pixel-7"),
    ("other-android", make_device(vendor_id=0x04E8, product_id=0x6860, manufacturer="SAMSUNG", interfaces=(ADB,)),
     "android/phone/04e8-6860"),
    ("pixel-7-without-adb", pixel_7(interfaces=(Interface(0, 0x06, 0x01, 0x01),)), None),
    ("arduino-uno-r3", arduino_uno(), "arduino/board/uno"),
    ("arduino-uno-original", arduino_uno(product_id=0x0001), "arduino/board/uno"),
    ("arduino-mega", arduino_uno(product_id=0x0042), "arduino/board/arduino-0042"),
    ("ftdi-ft232r", ft232r(), "ftdi/serial/ft232r"),
    ("cp210x", cp210x(), "silabs/serial/cp210x"),
    ("ch340", ch340(), "wch/serial/ch340"),
    ("st-link-v2-1", stlink_v2_1(), "st/debugger/stlink-v2-1"),
    ("yubikey-5", yubikey_5(), "yubico/security-key/yubikey-5"),
    ("keyboard", keyboard(), None),
    ("root-hub", root_hub(), None),
    ("usb-stick", make_device(vendor_id=0x0781, product_id=0x5567, interfaces=(Interface(0, 0x08, 0x06, 0x50),),
                              children=(make_child("block", "sdb"),)), None),
]  # fmt: skip


@pytest.fixture(scope="module")
def example() -> RuleSet:
    return load_rules(EXAMPLE)


@pytest.mark.parametrize(("device", "group"), [c[1:] for c in CLAIMS], ids=[c[0] for c in CLAIMS])
def test_example_sorts_devices_into_claimed_groups(example: RuleSet, device: UsbDevice, group: str | None) -> None:
    """Each device lands in the group the example file's comments promise (or is left out)."""
    match = example.match(device, "usb-test")
    assert (str(match.group) if match else None) == group
    if match is not None:
        assert match.notes == ()


def test_example_pixel_gets_adb_settings(example: RuleSet) -> None:
    """The Pixel rule renders its env, health check and typed attributes for the device."""
    match = example.match(pixel_7())
    assert match is not None
    assert match.env == {"ANDROID_SERIAL": "1A2B3C4D"}
    assert match.health == HealthCheck(("/usr/bin/adb", "-s", "1A2B3C4D", "get-state"), 30.0, 5.0)
    assert dict(match.attributes) == {"adb": AttrValue(True), "ram": AttrValue(8, "GiB")}
    assert match.stats == StatsCommand(("/opt/src/nomad-device-usb/examples/readings/android-battery", "1A2B3C4D"),
                                       30.0, 10.0, "battery_level")


def test_example_stats_commands_are_shipped_scripts(example: RuleSet) -> None:
    """Every stats command of the example names a script in examples/readings/, as installed under /opt/src."""
    for rule in example.rules:
        if rule.stats is not None:
            program = rule.stats.command[0].literal_text
            shipped = program.removeprefix("/opt/src/nomad-device-usb/")
            assert shipped.startswith("examples/readings/") and (ROOT / shipped).is_file(), program


def test_example_boards_and_adapters_hand_over_their_ttys(example: RuleSet) -> None:
    """Serial devices hand over only tty children; the adapters need their driver; the ST-Link is reset."""
    uno, ftdi, stlink, yubikey = (example.match(d) for d in (arduino_uno(), ft232r(), stlink_v2_1(), yubikey_5()))
    assert uno is not None and ftdi is not None and stlink is not None and yubikey is not None
    assert uno.children == ftdi.children == stlink.children == frozenset({"tty"})
    assert uno.mounts == (Mount("/dev/serial/by-id", "/dev/serial/by-id", True),)
    assert ftdi.require_driver and not uno.require_driver
    assert stlink.reset and not ftdi.reset
    assert yubikey.children == frozenset({"hidraw"})


def test_example_excluded_devices_are_ignored_by_the_right_rule(example: RuleSet) -> None:
    """Hubs and keyboards are excluded by their ignore rules, not merely unmatched."""
    for device, label in ((root_hub(), "hubs"), (keyboard(), "keyboards and mice")):
        (winner,) = [v for v in example.explain(device) if v.winner]
        assert winner.excluded and winner.rule.label == label


def test_example_has_no_warnings(example: RuleSet) -> None:
    """The example has no dead rules, typos or group disagreements for the devices it describes."""
    assert example.static_warnings() == []
    devices = [device for _, device, _ in CLAIMS]
    assert example.warnings_for(devices) == []


def yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", text, re.S)


def test_docs_yaml_examples_load() -> None:
    """Every complete rules file shown in docs/rules.md (a ```yaml block starting with rules:) is valid."""
    blocks = [b for b in yaml_blocks(DOCS.read_text()) if b.startswith("rules:")]
    assert len(blocks) >= 5
    for block in blocks:
        parse_rules(block, "docs/rules.md")
