"""Rules of ``kind: udev``: the kind key, per-kind match keys and placeholders, udev conditions, ``nodes:``, explain."""

from __future__ import annotations

import pytest
from node_factories import PCIE_BRIDGE, PCIE_CARD, node_device, pcie_serial_port, pi_gpiochip, pi_uart
from rules_factories import ft232r, make_device

from discovery.attributes import builtin_attributes
from discovery.model import Device
from discovery.rules.errors import RuleIssue, RulesError
from discovery.rules.explain import ConditionResult
from discovery.rules.loader import parse_rules, rules_from_dicts
from discovery.rules.matching import Match
from discovery.rules.model import AttrValue
from discovery.rules.ruleset import RuleSet

G = "group: {vendor: v, type: t, name: n}"


def issues_of(text: str) -> list[RuleIssue]:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "rules.yaml")
    return list(caught.value.issues)


def one_rule(match: str, extra: str = "") -> RuleSet:
    return parse_rules(f"rules:\n  - kind: udev\n    match: {match}\n    {G}\n{extra}", "rules.yaml")


def matched(rules: RuleSet, device: Device) -> Match | None:
    return rules.match(device, "dev-id")


def test_kind_defaults_to_usb_and_udev_is_read() -> None:
    """A rule without ``kind`` is a USB rule as before; ``kind: udev`` makes a udev rule."""
    rules = parse_rules(f"rules:\n  - match: {{vendor_id: 18d1}}\n    {G}\n  - kind: udev\n    {G}\n")
    assert [rule.kind for rule in rules] == ["usb", "udev"]


@pytest.mark.parametrize(
    ("text", "field", "message", "line", "column"),
    [
        pytest.param(f"rules:\n  - kind: serial\n    {G}\n", "rules[0].kind",
                     '"serial" is not a kind of rule: write one of usb, udev, declared', 2, 11, id="unknown-kind"),
        pytest.param(f"rules:\n  - kind: declared\n    {G}\n", "rules[0].devices",
                     "missing: a declared rule lists its devices under 'devices:'", 2, 5, id="declared-without-devices"),
        pytest.param(f"rules:\n  - kind: udev\n    match: {{vendor_id: 1415}}\n    {G}\n",
                     "rules[0].match.vendor_id", "\"vendor_id\" is not a match key of a 'kind: udev' rule: "
                     "a device that is not USB has no USB ids: write 'pci: {vendor_id: ...}'", 3, 13,
                     id="usb-key-under-udev"),
        pytest.param(f"rules:\n  - kind: udev\n    match: {{interface: {{class: 2}}}}\n    {G}\n",
                     "rules[0].match.interface", "only USB devices have interfaces", 3, 13, id="interface-under-udev"),
        pytest.param(f"rules:\n  - match: {{kernel: ttyAMA*}}\n    {G}\n",
                     "rules[0].match.kernel", "\"kernel\" is not a match key of a 'kind: usb' rule (the default "
                     "kind): it is a 'kind: udev' key (add 'kind: udev'", 2, 13, id="udev-key-under-usb"),
        pytest.param(f"rules:\n  - match: {{pci: {{vendor_id: 1415}}}}\n    {G}\n",
                     "rules[0].match.pci", "it is a 'kind: udev' key", 2, 13, id="pci-under-usb"),
        pytest.param(f"rules:\n  - kind: udev\n    children: [tty]\n    {G}\n", "rules[0].children",
                     "'children' is for 'kind: usb' rules only: a 'kind: udev' rule hands over the device's own node",
                     3, 5, id="children-on-udev"),
        pytest.param(f"rules:\n  - kind: udev\n    reset: true\n    {G}\n", "rules[0].reset",
                     "only a USB device can be reset", 3, 5, id="reset-on-udev"),
        pytest.param(f"rules:\n  - kind: udev\n    {G}\n    env: {{BOARD: \"{{vendor_id}}\"}}\n",
                     "rules[0].env.BOARD", "{vendor_id} is a USB placeholder and this is a 'kind: udev' rule", 4, 18,
                     id="usb-placeholder-on-udev"),
        pytest.param(f"rules:\n  - {G}\n    env: {{CARD: \"{{pci.vendor_id}}\"}}\n",
                     "rules[0].env.CARD", "{pci.vendor_id} is a 'kind: udev' placeholder and this is a 'kind: usb' "
                     "rule", 3, 17, id="udev-placeholder-on-usb"),
        pytest.param(f"rules:\n  - kind: udev\n    {G}\n    nodes: [/sys/class/gpio]\n",
                     "rules[0].nodes[0]", '"/sys/class/gpio" must be under /dev (a device node)', 4, 13,
                     id="node-outside-dev"),
        pytest.param(f"rules:\n  - kind: udev\n    {G}\n    nodes: [\"/dev/{{sys_name}}/../mem\"]\n",
                     "rules[0].nodes[0]", "must be normalised", 4, 13, id="node-dotdot"),
        pytest.param(f"rules:\n  - kind: udev\n    match: {{pci: {{class: 0x7}}}}\n    {G}\n",
                     "rules[0].match.pci.class", "not a PCI class code: write 2, 4 or 6 hex digits", 3, 26,
                     id="pci-class-digits"),
        pytest.param(f"rules:\n  - kind: udev\n    match: {{pci: {{vendor: 1415}}}}\n    {G}\n",
                     "rules[0].match.pci.vendor", 'unknown key "vendor"', 3, 19, id="pci-unknown-key"),
        pytest.param(f"rules:\n  - kind: udev\n    match: {{parent_attributes: {{}}}}\n    {G}\n",
                     "rules[0].match.parent_attributes", "give at least one attribute", 3, 32, id="attrs-empty"),
    ],
)
def test_udev_rule_errors(text: str, field: str, message: str, line: int, column: int) -> None:
    """Each wrong-kind key or value is one error naming the kind, the field, and where it is."""
    issues = issues_of(text)
    assert len(issues) == 1, [str(i) for i in issues]
    issue = issues[0]
    assert issue.field == field
    assert message in issue.message
    assert (issue.line, issue.column) == (line, column)


@pytest.mark.parametrize(
    ("match", "pi", "pcie"),
    [
        ("{subsystem: tty}", True, True),
        ("{subsystem: [gpio, i2c-dev]}", False, False),
        ("{kernel: 'ttyAMA*'}", True, False),
        ("{kernel: 'ttyS[45]'}", False, True),
        ("{devnode: /dev/serial0}", True, False),  # a udev link counts
        ("{devnode: '/dev/ttyS*'}", False, True),
        ("{port: 'platform-*'}", True, False),
        ("{port: pci-0000:03:00.0}", False, True),
        ("{properties: {ID_MODEL_FROM_DATABASE: 'OXPCIe952*'}}", False, True),
        ("{attributes: {uartclk: '48000000'}}", True, False),
        ("{attributes: {vendor: '0x1415'}}", False, False),  # ATTR{} is the device's own only
        ("{parent_attributes: {vendor: '0x1415', device: '0xc158'}}", False, True),  # on the card
        ("{parent_attributes: {vendor: '0x1415', class: '0x060400'}}", False, False),  # split across two parents
        ("{parent_attributes: {uartclk: '62500000'}}", False, True),  # the device itself is in the chain
        ("{driver: uart-pl011}", True, False),
        ("{driver: pcieport}", False, True),  # DRIVERS: any parent's driver
        ("{platform: fe201000.serial}", True, False),
        ("{platform: '*.gpio'}", False, False),
        ("{pci: {vendor_id: 0x1415, device_id: c158}}", False, True),
        ("{pci: {vendor_id: 8086}}", False, False),  # the bridge is a PCI parent too, but not the nearest
        ("{pci: {subsystem_vendor_id: 1415, subsystem_device_id: 0}}", False, True),
        ("{pci: {class: 0x07}}", False, True),
        ("{pci: {class: '0700'}}", False, True),
        ("{pci: {class: 0x070002}}", False, True),
        ("{pci: {class: 0x0604}}", False, False),
        ("{pci: {slot: '0000:03:*'}}", False, True),
        ("{serial: '*'}", False, False),  # neither has a serial
    ],
)
def test_udev_conditions_on_a_pi_uart_and_a_pcie_port(match: str, pi: bool, pcie: bool) -> None:
    """Each match key of kind: udev, as udev's own rules read it, on the Pi's ttyAMA0 and the card's ttyS4."""
    rules = one_rule(match)
    assert (matched(rules, pi_uart()) is not None, matched(rules, pcie_serial_port()) is not None) == (pi, pcie)


def test_rules_only_take_devices_of_their_kind() -> None:
    """A USB rule never takes a NodeDevice and a udev rule never takes a USB device, even without conditions."""
    rules = parse_rules(f"rules:\n  - {G}\n  - kind: udev\n    group: {{vendor: u, type: t, name: n}}\n")
    usb, udev = matched(rules, ft232r()), matched(rules, pi_uart())
    assert usb is not None and udev is not None
    assert (usb.rule.kind, udev.rule.kind) == ("usb", "udev")
    assert matched(parse_rules(f"rules:\n  - {G}\n"), pi_uart()) is None
    assert matched(parse_rules(f"rules:\n  - kind: udev\n    {G}\n"), make_device()) is None


def test_udev_placeholders_render_from_the_device_and_its_pci_card() -> None:
    """Built-ins of kind: udev, the nearest PCI parent's ids, and properties/attributes by name."""
    env = (
        '    env: {NODE: "{devnode}", KERNEL: "{sys_name}", SUB: "{subsystem}", DRIVER: "{driver}", '
        'PORT: "{port}", CARD: "{pci.vendor_id}:{pci.device_id}", CLASS: "{pci.class}", SLOT: "{pci.slot}", '
        'CLOCK: "{uartclk}", PATH_TAG: "{ID_PATH_TAG}", ID: "{id}"}\n'
    )
    match = matched(one_rule("{subsystem: tty}", env), pcie_serial_port(5))
    assert match is not None
    assert dict(match.env) == {
        "NODE": "/dev/ttyS5", "KERNEL": "ttyS5", "SUB": "tty", "DRIVER": "serial", "PORT": "pci-0000:03:00.0",
        "CARD": "1415:c158", "CLASS": "070002", "SLOT": "0000:03:00.0", "CLOCK": "62500000",
        "PATH_TAG": "pci-0000_03_00_0", "ID": "dev-id",
    }  # fmt: skip


def test_udev_group_with_a_missing_pci_placeholder_passes_the_device_on() -> None:
    """``{pci.vendor_id}`` on a device without a PCI parent leaves the group unrendered, so the rule does not take it."""
    rules = parse_rules("rules:\n  - kind: udev\n    group: {vendor: pci, type: serial, name: '{pci.device_id}'}\n")
    assert matched(rules, pi_uart()) is None
    match = matched(rules, pcie_serial_port())
    assert match is not None and str(match.group) == "pci/serial/c158"


def test_nodes_are_rendered_per_device_and_bad_ones_are_left_out_with_a_note() -> None:
    """``nodes:`` templates render per device; one that leaves /dev after rendering is a note, not a node."""
    extra = '    nodes: [/dev/gpiochip0, "/dev/{ID_NODE_LINK}", "/dev/{sys_name}-ctl"]\n'
    device = pi_uart(properties={"ID_NODE_LINK": "../etc/shadow"})
    match = matched(one_rule("{kernel: ttyAMA0}", extra), device)
    assert match is not None
    assert match.nodes == ("/dev/gpiochip0", "/dev/ttyAMA0-ctl")
    assert match.notes == ("nodes[1]: \"/dev/../etc/shadow\" must be normalised (no '.', '..', '//' or trailing '/'); "
                           "left out",)


def test_explain_a_node_device_shows_kind_and_each_udev_condition() -> None:
    """Explain says the kind of each rule, fails USB rules on kind alone, and gives expected/actual per udev condition."""
    rules = parse_rules(
        "rules:\n"
        f"  - name: boards\n    match: {{vendor_id: 2341}}\n    {G}\n"
        "  - name: pcie card\n    kind: udev\n"
        "    match: {pci: {vendor_id: 1415}, kernel: 'ttyS*'}\n    group: {vendor: oxford, type: serial, name: c}\n"
        "  - name: pi uart\n    kind: udev\n"
        "    match: {subsystem: tty, parent_attributes: {id: '0024*'}, platform: fe201000.serial, driver: uart-*}\n"
        "    group: {vendor: pi, type: serial, name: '{sys_name}'}\n",
        "rules.yaml",
    )
    boards, card, uart = rules.explain(pi_uart(), "tty-platform-fe201000.serial-ttyAMA0")
    assert boards.conditions == (ConditionResult("kind", "usb", "udev", False),)
    assert boards.reason == "kind is udev, wanted usb"
    assert card.conditions == (
        ConditionResult("kind", "udev", "udev", True),
        ConditionResult("match.kernel", "'ttyS*'", "'ttyAMA0'", False),
        ConditionResult("match.pci.vendor_id", "0x1415", "(no PCI parent)", False),
    )
    assert uart.winner and str(uart.group) == "pi/serial/ttyAMA0"
    assert uart.conditions[1:] == (
        ConditionResult("match.subsystem", "tty", "'tty'", True),
        ConditionResult("match.driver", "'uart-*'", "uart-pl011", True),
        ConditionResult("match.platform", "'fe201000.serial'", "'fe201000.serial'", True),
        ConditionResult("match.parent_attributes", "id='0024*' on one device", "on fe201000.serial: id='00241011'",
                        True),
    )
    assert uart.lines()[0] == 'rules[2] "pi uart" (rules.yaml:9): WINNER -> pi/serial/ttyAMA0'
    # A USB device under the same rules: the udev rules fail on kind, USB rules read as before (no kind line).
    on_usb = rules.explain(make_device(vendor_id=0x2341))
    assert on_usb[0].winner and on_usb[0].conditions[0].field == "match.vendor_id"
    assert on_usb[1].conditions == (ConditionResult("kind", "udev", "usb", False),)


def test_parent_attributes_actual_shows_near_misses_per_device() -> None:
    """When no one device has all the keys, explain shows which device has which of them."""
    (verdict,) = one_rule("{parent_attributes: {vendor: '0x1415', class: '0x060400'}}").explain(pcie_serial_port())
    assert verdict.conditions[-1].actual == (
        "0000:03:00.0: vendor='0x1415', class='0x070002'; 0000:00:1c.0: vendor='0x8086', class='0x060400'"
    )


def test_shadowing_is_judged_within_a_kind() -> None:
    """A broad udev rule does not make a later USB rule unreachable (nor the other way round)."""
    rules = parse_rules(
        f"rules:\n  - kind: udev\n    {G}\n  - {G}\n  - kind: udev\n    match: {{subsystem: tty}}\n    {G}\n"
    )
    warnings = [str(w) for w in rules.static_warnings()]
    assert len(warnings) == 1 and "rules[2]" in warnings[0] and "can never win: rules[0]" in warnings[0]


def test_validate_warns_per_kind_about_rules_that_match_nothing() -> None:
    """A udev rule that matches none of the attached devices counts only devices of its kind."""
    rules = parse_rules(f"rules:\n  - kind: udev\n    match: {{kernel: ttyUSB9}}\n    {G}\n")
    (warning,) = rules.warnings_for([pi_uart(), pcie_serial_port(), ft232r()])
    assert warning.message == "matches none of the 2 attached kind: udev devices"


def test_builtin_attributes_of_a_node_device() -> None:
    """Subsystem and driver, plus the PCI card's ids as integers; nothing per unit."""
    assert builtin_attributes(pcie_serial_port()) == {
        "subsystem": AttrValue("tty"), "driver": AttrValue("serial"),
        "pci_vendor_id": AttrValue(0x1415), "pci_device_id": AttrValue(0xC158), "pci_class": AttrValue(0x070002),
    }  # fmt: skip
    assert builtin_attributes(pi_gpiochip()) == {"subsystem": AttrValue("gpio"), "driver": AttrValue("pinctrl-bcm2835")}


def test_inline_rules_take_the_udev_keys() -> None:
    """Plain-data rules (the plugin config's) read kind, nodes and the udev match keys like the file does."""
    (rule,) = rules_from_dicts([{
        "kind": "udev", "match": {"subsystem": "tty", "pci": {"vendor_id": ["1415", "8086"]}},
        "group": {"vendor": "oxford", "type": "serial", "name": "{sys_name}"}, "nodes": ["/dev/ttyS0"],
    }], "plugin config")  # fmt: skip
    assert rule.kind == "udev" and [n.text for n in rule.nodes] == ["/dev/ttyS0"]
    match = RuleSet((rule,)).match(pcie_serial_port())
    assert match is not None and match.nodes == ("/dev/ttyS0",)


def test_parents_are_nearest_first_in_the_factories() -> None:
    """The factories' PCI chain is card, then bridge: what 'nearest PCI parent' relies on."""
    assert pcie_serial_port().parents[:2] == (PCIE_CARD, PCIE_BRIDGE)
    assert node_device().parents[0].subsystem == "amba"
