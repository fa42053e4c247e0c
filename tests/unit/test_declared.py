"""Declared devices: the schema with positions, matching by ID only, the table across reloads, the reservation."""

from __future__ import annotations

import pytest

from discovery.declared import declared_devices
from discovery.checks.health import HealthResult
from discovery.reservation import DeviceUnavailableError, UnknownDeviceError, plan_reservation
from discovery.rules.errors import RuleIssue, RulesError
from discovery.rules.loader import parse_rules, rules_from_dicts
from discovery.rules.ruleset import RuleSet
from discovery.state.table import DeviceTable
from rules_factories import ft232r

# The generic device plugin's example (two phones and a car), in our schema.
FARM = """\
rules:
  - name: usb adapters
    match: {vendor_id: '0403'}
    group: {vendor: ftdi, type: serial, name: ft232r}
  - name: nebula phones
    kind: declared
    group: {vendor: woogle, type: phone, name: nebula10}
    attributes: {model: nebula10}
    env: {PHONE_ADDRESS: "{address}", PHONE_ID: "{id}"}
    health: {command: [/usr/bin/test, -e, "/run/{address}"], interval: 10s}
    devices:
      - id: nebula10-a
        values: {address: 10.0.0.21, serial: NB-A}
        env: {PHONE_SLOT: "1"}
      - id: nebula10-b
        values: {address: 10.0.0.22}
        nodes: [/dev/null]
  - name: mango phones
    kind: declared
    group: {vendor: mango, type: phone, name: mphone12-ultra}
    devices:
      - id: mphone12-1
  - name: cars
    kind: declared
    group: {vendor: doyota, type: car, name: mius}
    devices:
      - id: mius-1
        values: {address: 10.0.1.5}
        health: {command: [/usr/bin/test, -e, "/run/{address}"], interval: 1s, timeout: 1s}
"""


def issues_of(text: str) -> list[RuleIssue]:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "rules.yaml")
    return list(caught.value.issues)


def rule_text(devices: str, extra: str = "") -> str:
    return (
        "rules:\n  - kind: declared\n    group: {vendor: v, type: t, name: n}\n" + extra + "    devices:\n" + devices
    )


def test_declared_rules_load_and_declare_their_devices_in_order() -> None:
    """Every declared ID becomes a device at declared:<id>, with its values and rendered nodes."""
    devices = declared_devices(parse_rules(FARM))
    assert [(d.device_id, d.sys_path) for d in devices] == [
        ("nebula10-a", "declared:nebula10-a"),
        ("nebula10-b", "declared:nebula10-b"),
        ("mphone12-1", "declared:mphone12-1"),
        ("mius-1", "declared:mius-1"),
    ]
    assert devices[0].serial == "NB-A" and dict(devices[0].values) == {"address": "10.0.0.21", "serial": "NB-A"}
    assert devices[1].nodes == ("/dev/null",) and devices[1].device_node == "/dev/null"


# (id, rules text, field, message fragment, line)
ERRORS = [
    ("match-on-declared", rule_text("      - id: a\n", "    match: {vendor_id: '0403'}\n"),
     "rules[0].match", "a declared rule matches nothing", 4),
    ("usb-only-key", rule_text("      - id: a\n", "    children: [tty]\n"),
     "rules[0].children", "is for 'kind: usb' rules only", 4),
    ("devices-without-kind", "rules:\n  - match: {vendor_id: '0403'}\n    group: {vendor: v, type: t, name: n}\n"
     "    devices: [{id: a}]\n", "rules[0].devices", "needs 'kind: declared'", 4),
    ("unknown-kind", "rules:\n  - kind: usbb\n    group: {vendor: v, type: t, name: n}\n",
     "rules[0].kind", '"usbb" is not a kind of rule', 2),
    ("no-devices", "rules:\n  - kind: declared\n    group: {vendor: v, type: t, name: n}\n",
     "rules[0].devices", "lists its devices under 'devices:'", 2),
    ("missing-id", rule_text("      - values: {address: x}\n"), "rules[0].devices[0].id", "missing", 5),
    ("bad-id", rule_text("      - id: 'two words'\n"), "rules[0].devices[0].id", "is not a device ID", 5),
    ("numeric-id", rule_text("      - id: 42\n"), "rules[0].devices[0].id", "is not a device ID", 5),
    ("usb-prefix", rule_text("      - id: usb-phone\n"), "rules[0].devices[0].id", "belong to discovered USB", 5),
    ("duplicate-id", rule_text("      - id: a\n      - id: a\n"), "rules[0].devices[1].id", "already declared at "
     "rules[0].devices[0] (rules.yaml:5)", 6),
    ("unknown-placeholder", rule_text("      - id: a\n        values: {addr: x}\n",
                                      "    env: {ADDRESS: '{address}'}\n"),
     "rules[0].devices[0]", "rules[0].env.ADDRESS uses {address}, which device \"a\" has no value for", 6),
    ("usb-placeholder", rule_text("      - id: a\n        env: {V: '{vendor_id}'}\n"),
     "rules[0].devices[0]", "uses {vendor_id}", 5),
    ("builtin-value-name", rule_text("      - id: a\n        values: {port: x}\n"),
     "rules[0].devices[0].values.port", "is a built-in placeholder", 6),
    ("node-outside-dev", rule_text("      - id: a\n        nodes: [/sys/class/x]\n"),
     "rules[0].devices[0].nodes[0]", "must be under /dev", 6),
    ("unknown-device-key", rule_text("      - id: a\n        adress: x\n"),
     "rules[0].devices[0].adress", 'unknown key "adress" (valid keys: id, values', 6),
    ("health-shell-string", rule_text("      - id: a\n        health: {command: 'ping x'}\n"),
     "rules[0].devices[0].health.command", "an argv list, not a shell string", 6),
]


@pytest.mark.parametrize(("text", "field", "fragment", "line"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_declared_rule_errors_name_field_and_line(text: str, field: str, fragment: str, line: int) -> None:
    """Each mistake in a declared rule is reported with its field and line."""
    issues = issues_of(text)
    found = [i for i in issues if i.field == field]
    assert found, issues
    assert fragment in found[0].message and found[0].line == line, found[0]


def test_declared_ids_must_be_unique_across_inline_and_file_rules() -> None:
    """An inline rule and the rules file declaring the same ID are refused together."""
    inline = rules_from_dicts(
        [{"kind": "declared", "group": {"vendor": "v", "type": "t", "name": "n"}, "devices": [{"id": "car-1"}]}],
        "plugin config",
    )
    with pytest.raises(RulesError, match="car-1"):
        RuleSet.from_parts(inline, parse_rules(rule_text("      - id: car-1\n")))


def test_declared_rule_takes_only_its_devices_and_a_usb_rule_none_of_them() -> None:
    """A declared rule has no conditions, yet matches no USB device; a catch-all USB rule takes no declared one."""
    rules = parse_rules(FARM.replace("match: {vendor_id: '0403'}", "match: {}"))
    usb = ft232r(serial="A1")
    match = rules.match(usb)
    assert match is not None and match.group == ("ftdi", "serial", "ft232r")
    car = next(d for d in declared_devices(rules) if d.device_id == "mius-1")
    car_match = rules.match(car, car.device_id)
    assert car_match is not None and car_match.group == ("doyota", "car", "mius")
    assert [v.matched for v in rules.explain(car, car.device_id)] == [False, False, False, True]


def test_declared_device_env_is_merged_over_the_rule_and_health_replaced() -> None:
    """Per-device env joins the rule's, templates read {id} and values; a device's health replaces the rule's."""
    rules = parse_rules(FARM)
    by_id = {d.device_id: d for d in declared_devices(rules)}
    phone = rules.match(by_id["nebula10-a"], "nebula10-a")
    assert phone is not None
    assert dict(phone.env) == {"PHONE_ADDRESS": "10.0.0.21", "PHONE_ID": "nebula10-a", "PHONE_SLOT": "1"}
    assert phone.health is not None and phone.health.argv == ("/usr/bin/test", "-e", "/run/10.0.0.21")
    car = rules.match(by_id["mius-1"], "mius-1")
    assert car is not None and car.health is not None and car.health.interval == 1.0


def test_declared_rules_make_no_static_warnings() -> None:
    """A declared rule has no conditions, but shadows nothing and is not 'matching no attached device'."""
    rules = parse_rules(FARM)
    assert rules.static_warnings() == []
    assert rules.warnings_for([ft232r(serial="A1")]) == []


def declared_table(text: str) -> DeviceTable:
    table = DeviceTable(unplugged_grace=60.0, node_check=lambda path: None)
    reload(table, text, 1.0)
    return table


def reload(table: DeviceTable, text: str, now: float) -> None:
    rules = parse_rules(text)
    table.set_rules(rules)
    table.set_declared(declared_devices(rules), now)


def test_table_reload_adds_and_removes_declared_devices_at_once() -> None:
    """A reload that drops a declared device makes it gone (no unplugged grace); one that adds it shows it."""
    table = declared_table(FARM)
    assert set(table.build(1).devices) == {"nebula10-a", "nebula10-b", "mphone12-1", "mius-1"}
    reload(table, FARM.replace("      - id: mphone12-1\n", "      - id: mphone12-1\n      - id: mphone12-2\n"), 2.0)
    snap = table.build(2)
    assert set(snap.devices) == {"nebula10-a", "nebula10-b", "mphone12-1", "mphone12-2", "mius-1"}
    assert snap.group_of(("mango", "phone", "mphone12-ultra")).device_ids == ("mphone12-1", "mphone12-2")
    reload(table, FARM.replace("      - id: mphone12-1\n", "      - id: mphone12-2\n"), 3.0)
    snap = table.build(3)
    assert "mphone12-1" not in snap.devices and snap.devices["mphone12-2"].plugged_at == 2.0


def test_table_declared_device_health_follows_its_check_and_nodes() -> None:
    """Healthy without a failing check; a failed check or a missing node makes it unhealthy, with the reason."""
    missing = {"/dev/null"}
    table = DeviceTable(unplugged_grace=60.0, node_check=lambda p: f"node {p} missing" if p in missing else None)
    reload(table, FARM, 1.0)
    snap = table.build(1)
    assert snap.devices["nebula10-b"].reason == "node /dev/null missing"
    assert snap.devices["mius-1"].healthy
    table.set_health("mius-1", HealthResult(False, 1, "exit status 1", 0.01, 2.0))
    snap = table.build(2)
    assert (snap.devices["mius-1"].healthy, snap.devices["mius-1"].reason) == (False, "exit status 1")
    group = snap.group_of(("doyota", "car", "mius"))
    assert group is not None and group.attributes["healthy_count"].value == 0
    # A reload that changes the car's values judges it anew.
    reload(table, FARM.replace("10.0.1.5", "10.0.1.6"), 3.0)
    assert table.build(3).devices["mius-1"].healthy


def test_reservation_of_declared_devices_gives_kind_neutral_env_and_their_nodes() -> None:
    """DEVICE_* and the rule env; no USB_* names; the nodes under /dev; unknown IDs stay NOT_FOUND."""
    table = declared_table(FARM)
    snap = table.build(1)
    reservation = plan_reservation(["nebula10-b", "nebula10-a"], snap)
    assert reservation.envs == {
        "DEVICE_IDS": "nebula10-a,nebula10-b",
        "DEVICE_0_ID": "nebula10-a", "DEVICE_0_NODE": "", "DEVICE_0_SERIAL": "NB-A",
        "DEVICE_1_ID": "nebula10-b", "DEVICE_1_NODE": "/dev/null", "DEVICE_1_SERIAL": "",
        "PHONE_ADDRESS": "10.0.0.21,10.0.0.22", "PHONE_ID": "nebula10-a,nebula10-b", "PHONE_SLOT": "1,",
    }  # fmt: skip
    assert [d.host_path for d in reservation.devices] == ["/dev/null"]
    with pytest.raises(UnknownDeviceError, match="'mius-2'"):
        plan_reservation(["mius-2"], snap)


def test_reservation_refuses_a_declared_node_that_resolves_outside_dev() -> None:
    """A node under /dev that is a symlink to /sys is not handed over."""
    snap = declared_table(FARM).build(1)
    with pytest.raises(DeviceUnavailableError, match="outside /dev"):
        plan_reservation(["nebula10-b"], snap, realpath=lambda p: "/sys/devices/x")
