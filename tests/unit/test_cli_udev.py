"""explain, suggest and validate with devices that are not USB: NodeDevice records built by hand, no udev world.

The inventory is built by hand from snapshot_factories (what the plugin's table would publish), so
these check the CLI's own part: what it prints for a NodeDevice and the rules it suggests for one.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from node_factories import pcie_serial_port, pi_i2c, pi_spidev, pi_uart
from snapshot_factories import make_snapshot, make_state

from discovery.state.inventory import Entry, Inventory
from discovery.model import NodeDevice
from discovery.rules.loader import parse_rules
from discovery.rules.ruleset import RuleSet
from plugin.cli import explain, suggest
from plugin.cli.context import Context
from plugin.cli.holders import Holders
from plugin.cli.main import main as cli_main
from plugin.cli.table import Style

RULES = """\
rules:
  - name: boards
    match: {vendor_id: 2341}
    group: {vendor: arduino, type: board, name: uno}
  - name: pi uart
    kind: udev
    match: {subsystem: tty, platform: fe201000.serial}
    group: {vendor: pi, type: serial, name: "{sys_name}"}
    nodes: [/dev/gpiochip0]
    env: {UART: "{devnode}"}
"""
UART_ID = "tty-platform-fe201000.serial-ttyAMA0"
NO_AGENT = Holders(address="http://127.0.0.1:9", error="no agent (test)")


def context() -> tuple[Context, io.StringIO]:
    out = io.StringIO()
    ctx = Context(out=out, err=io.StringIO(), environ={}, style=Style(), width=100, open_source=_no_source)
    return ctx, out


def _no_source() -> None:
    raise AssertionError("these tests build their inventory by hand")


def inventory_of(rules: RuleSet, device: NodeDevice, device_id: str) -> tuple[Inventory, Entry]:
    """The picture the plugin would publish for one device under ``rules`` (matched by the real matcher)."""
    match = rules.match(device, device_id)
    state = make_state(device_id, device=device, match=match) if match is not None else None
    entry = Entry(device_id, device, state)
    snapshot = make_snapshot(*([state] if state else []))
    return Inventory(rules=rules, snapshot=snapshot, entries=(entry,)), entry


def test_explain_a_pi_uart_prints_kind_node_parents_and_each_rules_verdict() -> None:
    """The device block shows kind, subsystem, node and links, driver and parents; each rule says why or why not."""
    rules = parse_rules(RULES, "rules.yaml")
    inventory, entry = inventory_of(rules, pi_uart(), UART_ID)
    ctx, out = context()
    explain.report(ctx, inventory, entry, "rules.yaml", NO_AGENT)
    text = out.getvalue()
    device_block = text.split("\n\n")[0].splitlines()
    assert device_block == [
        f"DEVICE {UART_ID}",
        "  kind       udev",
        "  subsystem  tty",
        "  kernel     ttyAMA0",
        "  node       /dev/ttyAMA0  (links /dev/serial0)",
        "  serial     (none)",
        "  port       platform-fe201000.serial",
        "  sysfs      /sys/devices/platform/soc/fe201000.serial/tty/ttyAMA0",
        "  driver     uart-pl011",
        "  parents    fe201000.serial (amba, driver uart-pl011)",
        "             soc (platform)",
        "  platform   fe201000.serial",
    ]
    assert 'rules[0] "boards" (rules.yaml:2): no match: kind is udev, wanted usb\n  FAIL kind: udev (wanted usb)' in text
    assert 'rules[1] "pi uart" (rules.yaml:5): WINNER -> pi/serial/ttyAMA0' in text
    assert "  ok   match.platform: 'fe201000.serial' (wanted 'fe201000.serial')" in text
    assert "  nodes      /dev/gpiochip0" in text
    # The nodes exist nowhere here: the reservation says why it cannot be made, as it would to Nomad.
    assert "none now: node /dev/ttyAMA0 missing" in text


def test_explain_json_of_a_pcie_port_names_its_card() -> None:
    """--json: the device with its kind and parents, each verdict with its kind."""
    import json

    rules = parse_rules(RULES.replace("platform: fe201000.serial", "pci: {vendor_id: 1415}"), "rules.yaml")
    inventory, entry = inventory_of(rules, pcie_serial_port(), "tty-pci-03_00.0-ttyS4")
    ctx, out = context()
    explain.report(ctx, inventory, entry, "rules.yaml", NO_AGENT, as_json=True)
    data = json.loads(out.getvalue())
    assert data["device"]["kind"] == "udev" and data["device"]["subsystem"] == "tty"
    assert [p["sys_name"] for p in data["device"]["parents"]] == ["0000:03:00.0", "0000:00:1c.0", "pci0000:00"]
    assert [(v["kind"], v["winner"]) for v in data["verdicts"]] == [("usb", False), ("udev", True)]
    assert data["details"]["nodes"] == ["/dev/gpiochip0"]


@pytest.mark.parametrize(
    ("device", "device_id", "expected"),
    [
        pytest.param(pi_uart(), UART_ID, [
            '  - name: "tty ttyAMA0"',
            "    kind: udev",
            "    match:",
            "      subsystem: tty",
            "      kernel: ttyAMA0",
            "      platform: fe201000.serial    # the on-board controller it hangs off",
            "    group: {vendor: onboard, type: serial, name: ttyAMA0}",
        ], id="pi-uart"),
        pytest.param(pcie_serial_port(5), "tty-pci-03_00.0-ttyS5", [
            '  - name: "tty ttyS5"',
            "    kind: udev",
            "    match:",
            "      subsystem: tty",
            "      kernel: ttyS5",
            '      pci: {vendor_id: 0x1415, device_id: 0xc158}    # the card; add slot: "0000:03:00.0" '
            "to take only the one in that slot",
            "    group: {vendor: oxford, type: serial, name: oxpcie952-dual-native-950-uart}",
        ], id="pcie-port"),
        pytest.param(pi_i2c(), "i2c-dev-platform-fe804000.i2c-i2c-1", [
            '  - name: "i2c-dev i2c-1"',
            "    kind: udev",
            "    match:",
            "      subsystem: i2c-dev",
            "      kernel: i2c-1",
            "      platform: fe804000.i2c    # the on-board controller it hangs off",
            "    group: {vendor: onboard, type: i2c, name: i2c-1}",
        ], id="pi-i2c"),
    ],
)
def test_suggest_for_a_node_device_is_a_udev_rule_that_takes_it(
    device: NodeDevice, device_id: str, expected: list[str]
) -> None:
    """A kind: udev rule on subsystem and kernel name, plus platform or PCI ids; it loads and wins its device."""
    entry = Entry(device_id, device, None)
    suggestion = suggest.suggest(entry)
    assert suggestion.lines == expected
    text = suggest.render(suggestion, standalone=True)
    verdict = parse_rules(text).explain(device, device_id)[0]
    assert verdict.winner, verdict.reason
    assert not parse_rules(text).explain(pi_spidev(), "other")[0].winner  # it does not take other nodes


@pytest.fixture
def rules_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES + "  - name: spi\n    kind: udev\n    match: {subsystem: spidev}\n"
                    "    group: {vendor: pi, type: spi, name: '{vendor_id}'}\n")
    yield path


def test_validate_a_file_with_udev_rules_reports_wrong_kind_placeholders_with_position(rules_file: Path) -> None:
    """validate: a USB-only placeholder on a udev rule is an error with line and column."""
    out, err = io.StringIO(), io.StringIO()
    code = cli_main(["validate", "--no-devices", str(rules_file)], stdout=out, stderr=err, environ={})
    assert code == 1
    assert out.getvalue().splitlines()[0] == (
        f"{rules_file}:14:42: error: rules[2].group.name: \"{{vendor_id}}\": {{vendor_id}} is a USB placeholder "
        "and this is a 'kind: udev' rule (its built-ins: sys_name, subsystem, devnode, port, serial, driver, id, "
        "pci.vendor_id, pci.device_id, pci.subsystem_vendor_id, pci.subsystem_device_id, pci.class, pci.slot)"
    )


def test_validate_a_good_file_with_udev_rules_says_its_kinds(rules_file: Path) -> None:
    """validate: a valid file with udev rules counts its rules per kind."""
    rules_file.write_text(rules_file.read_text().replace("'{vendor_id}'", "'{sys_name}'"))
    out, err = io.StringIO(), io.StringIO()
    code = cli_main(["validate", "--no-devices", str(rules_file)], stdout=out, stderr=err, environ={})
    assert code == 0, out.getvalue() + err.getvalue()
    assert out.getvalue().splitlines()[-1] == (
        f"{rules_file}: valid, 3 rules (1 kind: usb, 2 kind: udev) (not checked against devices)"
    )


@pytest.mark.parametrize(
    "query", ["/dev/ttyAMA0", "/dev/serial0", "ttyAMA0", UART_ID, "platform-fe201000.serial"],
)
def test_explain_finds_a_node_device_by_node_link_kernel_name_id_or_port(query: str) -> None:
    """What a person types for a udev device names it; a VID:PID never does (and does not trip over it)."""
    from discovery.state.inventory import find_devices

    rules = parse_rules(RULES, "rules.yaml")
    inventory, entry = inventory_of(rules, pi_uart(), UART_ID)
    assert find_devices(inventory, query) == [entry]
    assert find_devices(inventory, "2341:0043") == []
