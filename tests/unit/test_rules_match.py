"""The matcher: each condition, first-match-wins, ignore rules, and what a Match carries."""

from __future__ import annotations

import textwrap

import pytest
from rules_factories import make_child, make_device

from discovery.model import Interface, UsbDevice
from discovery.rules.loader import parse_rules
from discovery.rules.matching import HealthCheck, Mount, StatsCommand
from discovery.rules.model import AttrValue, GroupKey
from discovery.rules.ruleset import RuleSet

GROUP = "{vendor: v, type: t, name: n}"


def one_rule(match: str, extra: str = "") -> RuleSet:
    """A rule set with a single rule: ``match`` is the flow mapping of its conditions."""
    text = f"rules:\n  - match: {match}\n    group: {GROUP}\n"
    if extra:
        text += textwrap.indent(textwrap.dedent(extra), "    ")
    return parse_rules(text)


CONDITIONS = [
    # (match mapping, device overrides, matches?)
    ("{vendor_id: 0x18d1}", {}, True),
    ("{vendor_id: 18d1}", {}, True),
    ('{vendor_id: "18D1"}', {}, True),
    ("{vendor_id: 0x0403}", {}, False),
    ("{vendor_id: 2341}", {"vendor_id": 0x2341}, True),
    ("{vendor_id: 2341}", {"vendor_id": 2341}, False),
    ("{vendor_id: [0403, 18d1]}", {}, True),
    ("{product_id: [4ee7, '0x4ee2']}", {"product_id": 0x4EE2}, True),
    ("{product_id: [4ee7, '0x4ee2']}", {"product_id": 0x4EE1}, False),
    ("{serial: '1A2B*'}", {}, True),
    ("{serial: '1a2b*'}", {}, False),
    ("{serial: '*'}", {"serial": None}, False),
    ("{serial: ['X*', '1A?B*']}", {}, True),
    ("{manufacturer: 'Goo*'}", {}, True),
    ("{product: 'Pixel [67]'}", {}, True),
    ("{product: 'Pixel [!67]'}", {}, False),
    ("{product: 'Pixel*'}", {"product": None}, False),
    ("{properties: {ID_MODEL: 'Pixel_7*'}}", {}, True),
    ("{properties: {ID_MODEL: 'Pixel_8*'}}", {}, False),
    ("{properties: {ID_MISSING: '*'}}", {}, False),
    ("{properties: {ID_MODEL: 'Pixel*', ID_VENDOR: 'Google'}}", {}, True),
    ("{properties: {ID_MODEL: 'Pixel*', ID_VENDOR: 'Apple'}}", {}, False),
    ("{subsystem: tty}", {"children": (make_child("tty", "ttyACM0"),)}, True),
    ("{subsystem: [hidraw, tty]}", {"children": (make_child("tty", "ttyACM0"),)}, True),
    ("{subsystem: tty}", {"children": (make_child("hidraw", "hidraw0"),)}, False),
    ("{subsystem: tty}", {}, False),
    ("{device_class: 0x00}", {}, True),
    ("{device_class: 09}", {"device_class": 0x09}, True),
    ("{device_class: 0x02}", {}, False),
    ("{interface_class: 0xff}", {}, True),
    ("{interface_class: [02, 0a]}", {}, False),
    ("{interface_class: 06}", {}, True),
    ("{interface: {class: 0xff, subclass: 0x42, protocol: 0x01}}", {}, True),
    ("{interface: {class: 0xff, subclass: 0x42, protocol: 0x02}}", {}, False),
    ("{interface: {subclass: 0x42}}", {}, True),
    # class and subclass must hold on the same interface
    ("{interface: {class: 0x06, subclass: 0x42}}", {}, False),
    ("{port: '1-2'}", {}, True),
    ("{port: 'pci-*-usb-0:2'}", {}, True),
    ("{port: '1-3*'}", {}, False),
    ("{driver: usb}", {}, True),
    ("{driver: 'ftdi*'}", {}, False),
    (
        "{driver: 'ftdi*'}",
        {"interfaces": (Interface(0, 0xFF, driver="ftdi_sio"),)},
        True,
    ),
    ("{}", {}, True),
    ("{vendor_id: 18d1, product_id: 4ee7, serial: '1A*', interface_class: ff}", {}, True),
    ("{vendor_id: 18d1, product_id: 4ee7, serial: 'ZZ*', interface_class: ff}", {}, False),
]


@pytest.mark.parametrize(
    ("match", "overrides", "expected"), CONDITIONS, ids=[f"{i}:{c[0]}" for i, c in enumerate(CONDITIONS)]
)
def test_match_condition_table(match: str, overrides: dict[str, object], expected: bool) -> None:
    """Each condition accepts exactly the devices it describes."""
    rules = one_rule(match)
    assert (rules.match(make_device(**overrides)) is not None) is expected


def test_match_rule_without_match_key_takes_every_device() -> None:
    """A rule with no ``match:`` matches any device."""
    rules = parse_rules(f"rules:\n  - group: {GROUP}\n")
    assert rules.match(make_device(vendor_id=0x1234, serial=None)) is not None


def test_match_first_matching_rule_wins() -> None:
    """With two matching rules the earlier one in the file decides."""
    rules = parse_rules(
        """
        rules:
          - match: {vendor_id: 18d1}
            group: {vendor: first, type: t, name: n}
          - match: {vendor_id: 18d1, product_id: 4ee7}
            group: {vendor: second, type: t, name: n}
        """
    )
    match = rules.match(make_device())
    assert match is not None and match.group.vendor == "first" and match.rule.index == 0


def test_match_ignore_rule_that_wins_excludes_device() -> None:
    """A matching ignore rule before a group rule means "no match"."""
    rules = parse_rules(
        f"""
        rules:
          - match: {{serial: '1A*'}}
            ignore: true
          - match: {{vendor_id: 18d1}}
            group: {GROUP}
        """
    )
    assert rules.match(make_device()) is None
    assert rules.match(make_device(serial="ZZZ")) is not None


def test_match_ignore_rule_after_winner_changes_nothing() -> None:
    """An ignore rule only excludes devices that no earlier rule took."""
    rules = parse_rules(
        f"""
        rules:
          - match: {{vendor_id: 18d1}}
            group: {GROUP}
          - ignore: true
        """
    )
    assert rules.match(make_device()) is not None
    assert rules.match(make_device(vendor_id=0x0403)) is None


def test_match_missing_group_placeholder_passes_device_to_next_rule() -> None:
    """A device without the serial a group name needs falls through to the next rule."""
    rules = parse_rules(
        """
        rules:
          - match: {vendor_id: 18d1}
            group: {vendor: google, type: phone, name: "pixel-{serial}"}
          - match: {vendor_id: 18d1}
            group: {vendor: google, type: phone, name: pixel-unknown}
        """
    )
    with_serial = rules.match(make_device())
    without = rules.match(make_device(serial=None))
    empty = rules.match(make_device(serial=""))
    assert with_serial is not None and with_serial.group == GroupKey("google", "phone", "pixel-1A2B3C4D")
    assert without is not None and without.group.name == "pixel-unknown"
    assert empty is not None and empty.group.name == "pixel-unknown"


@pytest.mark.parametrize(
    ("template", "overrides", "name"),
    [
        ("{product}", {"product": "Pixel 7 Pro"}, "Pixel-7-Pro"),
        ("{product}", {"product": "a/b\tc"}, "a-b-c"),
        ("{manufacturer}_{vendor_id}", {}, "Google_18d1"),
        ("{vendor_id}-{product_id}", {"vendor_id": 0x403, "product_id": 0x6001}, "0403-6001"),
        ("{port}", {}, "pci-0000:00:14.0-usb-0:2"),
        ("{sys_name}.{busnum}.{devnum}", {}, "1-2.1.5"),
        ("{ID_MODEL}", {}, "Pixel_7"),
        ("{bcdDevice}", {}, "0440"),
        ("{{literal}}", {}, "{literal}"),
    ],
    ids=["spaces", "slash-and-tab", "manufacturer", "ids", "port", "numbers", "property", "sysfs", "escapes"],
)
def test_match_group_name_is_rendered_and_sanitised(template: str, overrides: dict[str, object], name: str) -> None:
    """Group names are rendered per device, with '/' and whitespace replaced by '-'."""
    rules = parse_rules(f'rules:\n  - group: {{vendor: v, type: t, name: "{template}"}}\n')
    match = rules.match(make_device(**overrides))
    assert match is not None and match.group.name == name


def test_match_id_placeholder_uses_the_given_device_id() -> None:
    """``{id}`` is the id passed to match; without one the rule cannot name the group."""
    rules = parse_rules('rules:\n  - group: {vendor: v, type: t, name: "dev-{id}"}\n')
    match = rules.match(make_device(), "usb-1A2B")
    assert match is not None and match.group.name == "dev-usb-1A2B" and match.device_id == "usb-1A2B"
    assert rules.match(make_device()) is None


def test_match_renders_typed_attributes() -> None:
    """Static and templated attributes come out with their types and units."""
    rules = one_rule(
        "{}",
        """
        attributes:
          model: "{ID_MODEL}"
          android: true
          cores: 8
          ghz: 2.85
          ram: {value: 8, unit: GiB}
          hw_rev: {value: "{bcdDevice}", type: int}
          hw_hex: {value: "{bcdDevice}", type: hex}
          speed: {value: "{speed}", type: float, unit: MB/s}
          usb2: {value: "{speed}", type: bool}
          vendor: {value: "{vendor_id}", type: hex}
          quoted: "8"
        """,
    )
    match = rules.match(make_device(attributes={"bcdDevice": "0440", "speed": "480"}))
    assert match is not None
    assert dict(match.attributes) == {
        "model": AttrValue("Pixel_7"),
        "android": AttrValue(True),
        "cores": AttrValue(8),
        "ghz": AttrValue(2.85),
        "ram": AttrValue(8, "GiB"),
        "hw_rev": AttrValue(440),
        "hw_hex": AttrValue(0x440),
        "speed": AttrValue(480.0, "MB/s"),
        "vendor": AttrValue(0x18D1),
        "quoted": AttrValue("8"),
    }
    # "480" is no bool: that attribute is left out, and the note says so
    assert match.notes == ('attributes.usb2: "480" is not true or false (type bool); left out',)


def test_match_missing_placeholder_renders_empty_in_env_and_string_attributes() -> None:
    """Outside the group name a missing value renders as "" (typed attributes are left out)."""
    rules = one_rule(
        "{}",
        """
        attributes:
          model: "{ID_NOPE}"
          rev: {value: "{ID_NOPE}", type: int}
        env: {ANDROID_SERIAL: "{serial}", OTHER: "x{ID_NOPE}y"}
        """,
    )
    match = rules.match(make_device(serial=None))
    assert match is not None
    assert match.attributes == {"model": AttrValue("")}
    assert match.env == {"ANDROID_SERIAL": "", "OTHER": "xy"}
    assert match.notes == ('attributes.rev: "" is not a whole number (type int); left out',)


def test_match_carries_reservation_settings() -> None:
    """env, mounts, health and stats argv, children, permissions, reset and require_driver reach the Match."""
    rules = one_rule(
        "{}",
        """
        children: [tty, hidraw]
        permissions: wr
        env: {ANDROID_SERIAL: "{serial}"}
        mounts:
          - {host_path: /dev/serial/by-id, task_path: /dev/serial/by-id, read_only: true}
          - {host_path: "/dev/serial/by-id/usb-{ID_SERIAL_SHORT}", task_path: /dev/board, read_only: false}
          - {host_path: /sys/class/tty}
        health: {command: ["/usr/bin/adb", "-s", "{serial}", "get-state"], interval: 1m, timeout: 1.5s}
        stats: {command: ["/usr/local/bin/battery", "{serial}"], interval: 5s, timeout: 2s, summary: level}
        reset: true
        require_driver: true
        """,
    )
    match = rules.match(make_device())
    assert match is not None
    assert match.children == frozenset({"tty", "hidraw"})
    assert match.permissions == "rw"
    assert match.env == {"ANDROID_SERIAL": "1A2B3C4D"}
    assert match.mounts == (
        Mount("/dev/serial/by-id", "/dev/serial/by-id", True),
        Mount("/dev/serial/by-id/usb-1A2B3C4D", "/dev/board", False),
        Mount("/sys/class/tty", "/sys/class/tty", True),
    )
    assert match.health == HealthCheck(("/usr/bin/adb", "-s", "1A2B3C4D", "get-state"), 60.0, 1.5)
    assert match.stats == StatsCommand(("/usr/local/bin/battery", "1A2B3C4D"), 5.0, 2.0, "level")
    assert match.reset is True and match.require_driver is True


def test_match_defaults() -> None:
    """Without those keys: every child, rw, no env, no mounts, no health, no stats, no reset, no driver needed."""
    match = one_rule("{}").match(make_device())
    assert match is not None and match.stats is None
    assert (match.children, match.permissions, dict(match.env), match.mounts, match.health) == (
        None,
        "rw",
        {},
        (),
        None,
    )
    assert (match.reset, match.require_driver, dict(match.attributes), match.notes) == (False, False, {}, ())


@pytest.mark.parametrize(
    "serial",
    ["../../etc", "a/../../../etc", ".."],
    ids=["dotdot", "nested-dotdot", "bare-dotdot"],
)
def test_match_mount_path_that_escapes_dev_is_left_out(serial: str) -> None:
    """A device value that would move a templated mount outside /dev drops that mount, with a note."""
    rules = one_rule("{}", 'mounts: [{host_path: "/dev/serial/by-id/{serial}", task_path: /dev/x}]\n')
    match = rules.match(make_device(serial=serial))
    assert match is not None
    assert match.mounts == ()
    assert len(match.notes) == 1 and match.notes[0].startswith("mounts[0]:")


def test_match_result_is_equal_for_equal_input() -> None:
    """Two matches of the same device under the same rules compare equal (snapshot diffing relies on it)."""
    rules = one_rule("{}", 'attributes: {model: "{ID_MODEL}"}\nenv: {A: "{serial}"}\n')
    assert rules.match(make_device(), "x") == rules.match(make_device(), "x")
    assert rules.match(make_device(), "x") != rules.match(make_device(properties={"ID_MODEL": "P8"}), "x")


def test_match_group_key_is_a_plain_tuple() -> None:
    """GroupKey compares equal to (vendor, type, name) and prints as vendor/type/name."""
    match = one_rule("{}").match(make_device())
    assert match is not None
    assert match.group == ("v", "t", "n")
    assert str(match.group) == "v/t/n"


def test_match_does_not_change_the_device() -> None:
    """Matching is pure: the device record is the same afterwards."""
    device = make_device()
    before = (device, dict(device.properties), dict(device.attributes))
    one_rule("{}", 'env: {A: "{serial}"}\n').match(device)
    assert (device, dict(device.properties), dict(device.attributes)) == before
    assert isinstance(device, UsbDevice)
