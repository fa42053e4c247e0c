"""explain (every rule's verdict on one device) and the warnings ``validate`` prints."""

from __future__ import annotations

import pytest
from rules_factories import ft232r, make_device

from discovery.rules.explain import ConditionResult
from discovery.rules.loader import parse_rules
from discovery.rules.ruleset import RuleSet

RULES = """\
rules:
  - name: hubs
    match: {device_class: 0x09}
    ignore: true
  - name: pixels by serial
    match: {vendor_id: 18d1, serial: '1A*'}
    group: {vendor: google, type: phone, name: "pixel-{ID_NOPE}"}
  - name: pixels
    match: {vendor_id: 18d1, product_id: [4ee7, 4ee2]}
    group: {vendor: google, type: phone, name: pixel-7}
  - name: anything google
    match: {manufacturer: 'Goo*'}
    group: {vendor: google, type: any, name: "{product_id}"}
"""


def test_explain_lists_every_rule_with_each_condition() -> None:
    """Every rule gets a verdict with each condition's expected and actual value."""
    verdicts = parse_rules(RULES, "rules.yaml").explain(make_device())
    assert [v.rule.label for v in verdicts] == ["hubs", "pixels by serial", "pixels", "anything google"]
    hubs, by_serial = verdicts[:2]
    assert hubs.conditions == (ConditionResult("match.device_class", "0x09", "0x00", False),)
    assert (hubs.matched, hubs.winner, hubs.reason) == (False, False, "match.device_class is 0x00, wanted 0x09")
    assert by_serial.conditions[:2] == (
        ConditionResult("match.vendor_id", "0x18d1", "0x18d1", True),
        ConditionResult("match.serial", "'1A*'", "'1A2B3C4D'", True),
    )


def test_explain_missing_group_placeholder_says_why() -> None:
    """A rule whose conditions hold but whose group name cannot be rendered explains the missing value."""
    by_serial = parse_rules(RULES).explain(make_device())[1]
    assert not by_serial.matched and not by_serial.winner
    assert by_serial.conditions[-1] == ConditionResult("group.name", '"pixel-{ID_NOPE}"', "no ID_NOPE", False)
    assert by_serial.reason == 'group.name "pixel-{ID_NOPE}" cannot be rendered: no ID_NOPE'


def test_explain_marks_winner_and_shadowed() -> None:
    """The first matching rule wins; later matching rules are shadowed."""
    verdicts = parse_rules(RULES).explain(make_device())
    pixels, anything = verdicts[2], verdicts[3]
    assert (pixels.matched, pixels.winner, pixels.shadowed) == (True, True, False)
    assert str(pixels.group) == "google/phone/pixel-7"
    assert (anything.matched, anything.winner, anything.shadowed) == (True, False, True)
    assert str(anything.group) == "google/any/4ee7"


def test_explain_agrees_with_match() -> None:
    """The winner of explain is the rule match uses (or the ignore rule that excludes the device)."""
    rules = parse_rules(RULES)
    hub = make_device(device_class=0x09, manufacturer="Google")
    for device in (make_device(), make_device(product_id=0x1234), hub, ft232r()):
        winners = [v for v in rules.explain(device) if v.winner]
        match = rules.match(device)
        if match is None:
            assert not winners or winners[0].excluded
        else:
            assert [w.rule for w in winners] == [match.rule] and winners[0].group == match.group
    assert [v.excluded for v in rules.explain(hub)] == [True, False, False, False]


def test_explain_lines_are_readable() -> None:
    """lines() gives a heading per rule and one line per condition."""
    verdict = parse_rules(RULES, "rules.yaml").explain(make_device())[2]
    assert verdict.lines() == [
        'rules[2] "pixels" (rules.yaml:8): WINNER -> google/phone/pixel-7',
        "  ok   match.vendor_id: 0x18d1 (wanted 0x18d1)",
        "  ok   match.product_id: 0x4ee7 (wanted 0x4ee2 | 0x4ee7)",
    ]
    catch_all = parse_rules("rules:\n  - ignore: true\n", "r.yaml").explain(make_device())[0]
    assert catch_all.lines() == [
        "rules[0] (r.yaml:2): WINNER: device excluded",
        "    (no conditions: matches every device)",
    ]


@pytest.mark.parametrize(
    ("match", "overrides", "actual"),
    [
        ("{serial: x}", {"serial": None}, "(no serial)"),
        ("{properties: {ID_X: x}}", {}, "(not set)"),
        ("{subsystem: tty}", {}, "(no children)"),
        ("{interface_class: 0x02}", {}, "0x06, 0xff"),
        ("{interface: {class: 0x02}}", {"interfaces": ()}, "(no interfaces)"),
        ("{driver: x}", {"driver": None}, "(no driver bound)"),
        ("{port: x}", {}, "'pci-0000:00:14.0-usb-0:2' (sys_name '1-2')"),
    ],
    ids=["no-serial", "no-property", "no-children", "interfaces", "no-interfaces", "no-driver", "port"],
)
def test_explain_actual_values_in_words(match: str, overrides: dict[str, object], actual: str) -> None:
    """Missing and listed values are shown plainly in explain."""
    rules = parse_rules(f"rules:\n  - match: {match}\n    ignore: true\n")
    assert rules.explain(make_device(**overrides))[0].conditions[0].actual == actual


def test_warnings_static_shadowing() -> None:
    """A rule after an equal or broader rule is reported as never winning, even without devices."""
    rules = parse_rules(
        """\
rules:
  - match: {vendor_id: [18d1, 0403]}
    group: {vendor: a, type: b, name: c}
  - match: {vendor_id: 18d1, serial: 'X*'}
    group: {vendor: a, type: b, name: c}
  - match: {vendor_id: 2341}
    group: {vendor: a, type: b, name: "{serial}"}
  - match: {vendor_id: 2341}
    group: {vendor: a, type: b, name: fallback}
  - match: {serial: '*'}
    ignore: true
  - match: {serial: 'ABC'}
    group: {vendor: a, type: b, name: d}
""",
        "r.yaml",
    )
    found = [(w.line, w.message.split(":")[0]) for w in rules.static_warnings()]
    # rule 4 is a fallback for devices without a serial (rule 3's group needs one): not shadowed
    assert found == [(4, "can never win"), (12, "can never win")]


def test_warnings_for_attached_devices() -> None:
    """validate warns about unused rules, rules whose devices all go earlier, and rendering notes."""
    rules = parse_rules(
        """\
rules:
  - match: {vendor_id: 18d1}
    group: {vendor: google, type: phone, name: pixel}
    attributes: {rev: {value: "{ID_NOPE}", type: int}}
  - match: {product_id: 4ee7}
    group: {vendor: other, type: phone, name: pixel}
  - match: {vendor_id: 2341}
    group: {vendor: arduino, type: board, name: uno}
""",
        "r.yaml",
    )
    warnings = rules.warnings_for([make_device(), make_device(sys_path="/x", serial="B")], {"/x": "usb-B"})
    assert [(w.line, w.message) for w in warnings] == [
        (5, "matches 2 attached devices, but rules[0] (r.yaml:2) takes each of them first"),
        (7, "matches none of the 2 attached devices"),
        (2, 'on 1-2 (18d1:4ee7) (and 1 more): attributes.rev: "" is not a whole number (type int); left out'),
    ]


def test_warnings_name_each_earlier_rule_that_takes_a_device() -> None:
    """When different earlier rules take different devices, the warning names each one with its devices."""
    rules = parse_rules(
        """\
rules:
  - name: one serial
    match: {serial: A}
    group: {vendor: a, type: b, name: one}
  - name: other serial
    match: {serial: B}
    group: {vendor: a, type: b, name: other}
  - name: every pixel
    match: {vendor_id: 18d1}
    group: {vendor: a, type: b, name: pixel}
""",
        "r.yaml",
    )
    devices = [make_device(sys_path="/a", serial="A"), make_device(sys_path="/b", serial="B")]
    warnings = rules.warnings_for(devices, {"/a": "usb-A", "/b": "usb-B"})
    assert [(w.field, w.message) for w in warnings] == [(
        "rules[2]",
        'matches 2 attached devices, but earlier rules take each of them first: rules[0] "one serial" (r.yaml:2) '
        'takes usb-A; rules[1] "other serial" (r.yaml:5) takes usb-B',
    )]


def test_warnings_group_gets_different_attributes() -> None:
    """Devices of one group that would give it different attributes are reported."""
    rules = parse_rules(
        "rules:\n  - group: {vendor: v, type: t, name: n}\n    attributes: {model: '{ID_MODEL}'}\n", "r.yaml"
    )
    devices = [make_device(), make_device(sys_path="/y", sys_name="1-3", properties={"ID_MODEL": "Pixel_8"})]
    (warning,) = rules.warnings_for(devices)
    assert warning.field == "rules[0].attributes"
    expected = 'group v/t/n gets different attributes from its devices: "model" is "Pixel_7" on 1-2 (18d1:4ee7)'
    assert expected in warning.message
    assert rules.warnings_for(devices[:1]) == []


def test_warnings_placeholder_typo() -> None:
    """A placeholder close to a built-in name is flagged as a probable typo."""
    rules = parse_rules("rules:\n  - group: {vendor: v, type: t, name: n}\n    env: {S: '{serail}', M: '{ID_MODEL}'}\n")
    (warning,) = rules.static_warnings()
    assert warning.field == "rules[0].env.S" and "did you mean {serial}?" in warning.message


@pytest.mark.parametrize(
    ("value", "warned"),
    [("'8'", True), ("'true'", True), ("'0451'", True), ("'12W'", True), ("'2e00'", True),
     ("'0x18d1'", False), ("Pixel_7", False), ("8", False), ("true", False)],
    ids=["int-text", "bool-text", "leading-zero", "unit-text", "float-text", "hex-text", "word", "int", "bool"],
)  # fmt: skip
def test_warnings_string_attribute_nomad_cannot_match(value: str, warned: bool) -> None:
    """A string attribute that Nomad would read as a number or bool in a job is flagged."""
    rules = parse_rules(f"rules:\n  - group: {{vendor: v, type: t, name: n}}\n    attributes: {{a: {value}}}\n")
    assert bool(rules.static_warnings()) is warned


def test_warnings_empty_rule_set() -> None:
    """No rules, no devices: nothing to warn about."""
    assert RuleSet().warnings_for([]) == []
