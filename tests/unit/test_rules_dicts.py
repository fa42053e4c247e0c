"""rules_from_dicts: inline rules from the plugin config (plain data, None for absent, text for numbers)."""

from __future__ import annotations

from typing import Any

import pytest
from rules_factories import make_device

from discovery.rules.errors import RulesError
from discovery.rules.loader import parse_rules, rules_from_dicts
from discovery.rules.matching import HealthCheck, Mount
from discovery.rules.model import AttrValue
from discovery.rules.ruleset import RuleSet

PIXEL: dict[str, Any] = {
    "name": "pixel",
    "match": {"vendor_id": "18d1", "product_id": ["4ee7", "0x4ee2"], "serial": None, "properties": None},
    "ignore": None,
    "group": {"vendor": "google", "type": "phone", "name": "pixel-{serial}"},
    "attributes": {"ram": {"value": "8", "unit": "GiB"}, "android": "true", "rev": {"value": "3", "type": "int"}},
    "children": ["usb", "tty"],
    "permissions": None,
    "env": {"ANDROID_SERIAL": "{serial}"},
    "mounts": [{"host_path": "/dev/serial/by-id", "task_path": None, "read_only": "false"}],
    "health": {"command": ["/usr/bin/adb", "-s", "{serial}", "get-state"], "interval": "30s", "timeout": None},
    "reset": "false",
    "require_driver": True,
}


def test_dicts_build_the_same_rule_as_yaml() -> None:
    """A rule given as plain data behaves like the YAML rule, None meaning absent."""
    (rule,) = rules_from_dicts([PIXEL], "plugin config")
    assert (rule.source, rule.line, rule.column) == ("plugin config", None, None)
    assert (rule.field, rule.label) == ("rules[0]", "pixel")
    match = RuleSet((rule,)).match(make_device(product_id=0x4EE2))
    assert match is not None
    assert str(match.group) == "google/phone/pixel-1A2B3C4D"
    assert dict(match.attributes) == {"ram": AttrValue(8, "GiB"), "android": AttrValue("true"), "rev": AttrValue(3)}
    assert match.permissions == "rw"
    assert match.mounts == (Mount("/dev/serial/by-id", "/dev/serial/by-id", False),)
    assert match.health == HealthCheck(("/usr/bin/adb", "-s", "1A2B3C4D", "get-state"), 30.0, 5.0)
    assert (match.reset, match.require_driver) == (False, True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2341, 0x2341), (2341.0, 0x2341), ("2341", 0x2341), ("0x2341", 0x2341)],
    ids=["int", "float", "text", "prefixed"],
)
def test_dicts_ids_are_hex_whatever_their_type(value: object, expected: int) -> None:
    """A number that reached us as int or float is read as the hex digits it was written with."""
    (rule,) = rules_from_dicts([{"match": {"vendor_id": value}, "ignore": True}], "plugin config")
    assert RuleSet((rule,)).explain(make_device(vendor_id=expected))[0].matched


def test_dicts_errors_name_the_field_without_a_line() -> None:
    """Problems in plain data carry the field path and no position."""
    items = [
        {"group": {"vendor": "v", "type": "t", "name": "n"}},
        {"match": {"vendor_id": "zz", "bogus": 1}, "group": {"vendor": "v", "type": "t", "name": "n"}},
    ]
    with pytest.raises(RulesError) as caught:
        rules_from_dicts(items, "plugin config", field_prefix="rule")
    assert [str(i) for i in caught.value.issues] == [
        'plugin config: rule[1].match.bogus: unknown key "bogus" (valid keys: vendor_id, product_id, serial, '
        "manufacturer, product, properties, subsystem, device_class, interface_class, interface, port, driver)",
        'plugin config: rule[1].match.vendor_id: "zz" is not a hex USB id',
    ]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ("not a list", "expected a list of rules, got text"),
        ([42], "expected a mapping, got a number"),
        ([{1: "x"}], "keys must be text"),
        ([{"ignore": True, "match": {"serial": object()}}], "unsupported value of type object"),
        ([{"ignore": True, "match": {"serial": b"\xff"}}], "unsupported bytes that are not UTF-8"),
        ([{"group": {"vendor": "v", "type": "t", "name": "n"}, "health": {"command": "adb get-state"}}],
         "an argv list, not a shell string"),
        ([{"group": {"vendor": "v", "type": "t", "name": "n"}, "attributes": {"x": float("nan")}}], "NaN"),
    ],
    ids=["not-list", "item-not-mapping", "int-key", "object-value", "bad-bytes", "shell-string", "nan"],
)  # fmt: skip
def test_dicts_bad_shapes_are_rules_errors(items: Any, message: str) -> None:
    """Whatever shape the config data has, the answer is a RulesError naming the problem."""
    with pytest.raises(RulesError) as caught:
        rules_from_dicts(items, "plugin config")
    assert message in str(caught.value)


def test_dicts_conflicting_groups_are_rejected() -> None:
    """Inline rules are checked for group conflicts among themselves, like a file."""
    group = {"vendor": "v", "type": "t", "name": "n"}
    with pytest.raises(RulesError, match=r"group v/t/n is also made by rules\[0\]"):
        rules_from_dicts([{"group": group, "attributes": {"a": 1}}, {"group": group}], "plugin config")


def test_dicts_and_file_combine_in_order_and_conflict_across() -> None:
    """from_parts puts inline rules first; combined/from_parts also catch conflicts across sources."""
    by_serial = {"match": {"serial": "1A*"}, "group": {"vendor": "cfg", "type": "t", "name": "n"}}
    inline = rules_from_dicts([by_serial], "cfg")
    file_rules = parse_rules("rules:\n  - group: {vendor: file, type: t, name: n}\n", "rules.yaml")
    merged = RuleSet.from_parts(inline, file_rules)
    assert [r.source for r in merged.rules] == ["cfg", "rules.yaml"]
    assert merged.match(make_device()).group.vendor == "cfg"  # type: ignore[union-attr]
    assert merged.match(make_device(serial="X")).group.vendor == "file"  # type: ignore[union-attr]
    assert file_rules.combined(merged).rules[0].source == "rules.yaml"
    assert RuleSet.from_parts(None, file_rules).rules == file_rules.rules
    clash = parse_rules("rules:\n  - group: {vendor: cfg, type: t, name: n}\n    attributes: {x: 1}\n", "other.yaml")
    with pytest.raises(RulesError) as caught:
        RuleSet.from_parts(inline, clash)
    (issue,) = caught.value.issues
    assert (issue.file, issue.line) == ("other.yaml", 2)
