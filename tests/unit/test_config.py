"""The config block: schema Nomad accepts, MessagePack as Nomad 1.1.0 really encoded it, errors that name the key.

fixtures/nomad/setconfig-*.msgpack were captured from Nomad's own plugin launcher (v1.1.0), which
decodes the matching .hcl file against our ConfigSchema exactly as an agent does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from discovery.rules.loader import rules_from_dicts
from discovery.rules.ruleset import RuleSet
from discovery.declared import declared_devices
from discovery.rules.schema.keys import (
    DECLARED_DEVICE_KEYS,
    GROUP_KEYS,
    HEALTH_KEYS,
    INTERFACE_KEYS,
    MATCH_KEYS,
    MOUNT_KEYS,
    RULE_KEYS,
    STATS_KEYS,
)
from plugin.config import CONFIG_SPEC, RULE_SPEC, ConfigError, decode_config, encode_config
from rules_factories import cp210x as cp210x_device
from rules_factories import pixel_7

NOMAD = Path(__file__).resolve().parents[2] / "fixtures" / "nomad"


def nomad_bytes(name: str) -> bytes:
    return (NOMAD / f"setconfig-{name}.msgpack").read_bytes()


def spec_types(spec: dict[str, Any]) -> Iterator[str]:
    for _kind, opts in spec.values():
        if "type" in opts:
            yield opts["type"]
        if "nested" in opts:
            yield from spec_types(opts["nested"])


def test_config_spec_has_no_any_type() -> None:
    """No ``any`` in the schema: Nomad's decoder panics (killing the agent) on mixed types in block lists."""
    types = list(spec_types(CONFIG_SPEC))
    assert types and not [t for t in types if "any" in t]


def test_inline_rule_spec_has_every_rules_file_key() -> None:
    """The HCL ``rule {}`` spec offers exactly the keys the YAML validator takes, at every level."""
    hcl_to_yaml = {"mount": "mounts", "attribute": "attributes"}  # HCL's singular block names
    assert {hcl_to_yaml.get(name, name) for name in RULE_SPEC} == set(RULE_KEYS)
    nested = {name: opts["nested"] for name, (_kind, opts) in RULE_SPEC.items() if "nested" in opts}
    assert set(nested["match"]) == set(MATCH_KEYS)
    assert set(nested["match"]["interface"][1]["nested"]) == set(INTERFACE_KEYS)
    assert set(nested["group"]) == set(GROUP_KEYS)
    assert set(nested["mount"]) == set(MOUNT_KEYS)
    assert set(nested["health"]) == set(HEALTH_KEYS)
    assert set(nested["stats"]) == set(STATS_KEYS)
    devices = nested["devices"]
    assert {hcl_to_yaml.get(name, name) for name in devices} == set(DECLARED_DEVICE_KEYS)
    assert set(devices["mount"][1]["nested"]) == set(MOUNT_KEYS)
    assert set(devices["health"][1]["nested"]) == set(HEALTH_KEYS)


def test_config_inline_declared_rule_with_devices_blocks() -> None:
    """``kind = "declared"`` with ``devices { }`` blocks (absent parts as Nomad sends them) declares the devices."""
    absent = {"values": None, "nodes": None, "env": None, "mount": [], "health": None}
    rule = {
        "kind": "declared",
        "group": {"vendor": "doyota", "type": "car", "name": "mius"},
        "env": {"CAR_ADDRESS": "{address}"},
        "devices": [
            {**absent, "id": "mius-1", "values": {"address": "10.0.1.5"},
             "health": {"command": ["/usr/bin/ping", "-c1", "-W1", "{address}"], "interval": "10s", "timeout": None}},
            {**absent, "id": "mius-2", "values": {"address": "10.0.1.6"},
             "mount": [{"host_path": "/dev/shm", "task_path": "/car", "read_only": None}]},
        ],
        "mount": [],
    }
    config = decode_config(encode_config({"rule": [rule]}))
    rules = RuleSet(tuple(rules_from_dicts([dict(r) for r in config.inline_rules], "plugin config", "rule")))
    first, second = declared_devices(rules)
    match = rules.match(first, first.device_id)
    assert match is not None and match.health is not None
    assert (match.group, match.env["CAR_ADDRESS"], match.health.argv[-1]) == (("doyota", "car", "mius"), "10.0.1.5",
                                                                           "10.0.1.5")
    other = rules.match(second, second.device_id)
    assert other is not None and [m.task_path for m in other.mounts] == ["/car"] and other.health is None


def test_config_defaults_from_nomad_empty_block() -> None:
    """``config {}`` arrives with Nomad's defaults applied from our Default specs."""
    config = decode_config(nomad_bytes("empty"))
    assert (config.rules_file, config.inline_rules) == (None, ())
    assert (config.debounce, config.unplugged_grace, config.log_level) == (0.2, 60.0, "info")


@pytest.mark.parametrize(
    ("value", "strict"),
    [({}, True), ({"strict_rules_permissions": True}, True), ({"strict_rules_permissions": False}, False),
     ({"strict_rules_permissions": "false"}, False)],
    ids=["default", "true", "false", "false-as-text"],
)
def test_config_strict_rules_permissions_is_on_unless_switched_off(value: dict[str, Any], strict: bool) -> None:
    """The ownership and mode check of the rules file is on by default; only an explicit false turns it off."""
    assert decode_config(encode_config(value)).strict_rules_permissions is strict
    assert decode_config(nomad_bytes("empty")).strict_rules_permissions is True  # an agent that never heard of it


def test_config_empty_bytes_mean_defaults() -> None:
    """No schema config at all (empty bytes) is the same as an empty block."""
    assert decode_config(b"") == decode_config(nomad_bytes("empty"))


def test_config_inline_rules_as_nomad_sends_them() -> None:
    """Inline rule blocks become rules with typed attributes, id lists and mounts."""
    config = decode_config(nomad_bytes("inline"))
    assert (config.debounce, config.unplugged_grace, config.log_level) == (0.15, 120.0, "debug")
    rules = rules_from_dicts([dict(r) for r in config.inline_rules], "plugin config", field_prefix="rule")
    assert [r.label for r in rules] == ["pixel phones", "cp210x", "hubs"]
    phone = pixel_7()
    match = RuleSet(tuple(rules)).match(phone, "usb-x")
    assert match is not None
    assert tuple(match.group) == ("google", "phone", f"pixel-{phone.serial}")
    assert match.attributes["ram"].value == 8 and match.attributes["ram"].unit == "GiB"
    assert match.attributes["os"].value == "android"
    cp210x = rules[1]
    adapter = RuleSet((cp210x,)).match(cp210x_device(properties={"ID_USB_DRIVER": "cp210x"}), "usb-y")
    assert adapter is not None and adapter.require_driver and adapter.children == frozenset({"tty"})
    assert [(m.host_path, m.task_path, m.read_only) for m in adapter.mounts] == [
        ("/dev/serial/by-id", "/dev/serial/by-id", True)
    ]
    assert adapter.health is not None and adapter.health.argv == ("/bin/true",) and adapter.health.interval == 30.0


@pytest.mark.parametrize(
    ("value", "named"),
    [
        pytest.param({"debounce": "fast"}, "debounce", id="bad-duration"),
        pytest.param({"unplugged_grace": 30}, "unplugged_grace", id="number-for-duration"),
        pytest.param({"log_level": "loud"}, "log_level", id="bad-level"),
        pytest.param({"rules_file": "relative/rules.yaml"}, "rules_file", id="relative-path"),
        pytest.param({"rules_file": "/nonexistent/rules.yaml"}, "rules_file", id="missing-file"),
        pytest.param({"surprise": True}, "surprise", id="unknown-key"),
        pytest.param({"rule": "not a list"}, "rule", id="rule-not-list"),
        pytest.param({"strict_rules_permissions": "no"}, "strict_rules_permissions", id="bad-flag"),
        pytest.param({"state_dir": "var/lib/x"}, "state_dir", id="relative-state-dir"),
        pytest.param({"state_dir": "/var/\x00"}, "state_dir", id="nul-in-state-dir"),
    ],
)
def test_config_errors_name_the_key(value: dict[str, Any], named: str) -> None:
    """Every rejected value is reported with its key and what was expected."""
    with pytest.raises(ConfigError) as err:
        decode_config(encode_config(value))
    assert f"{named}:" in str(err.value)


def test_config_reports_every_error_at_once() -> None:
    """Nomad's real bytes for a config with two mistakes: both are named in one error."""
    with pytest.raises(ConfigError) as err:
        decode_config(nomad_bytes("bad"))
    assert "debounce:" in str(err.value) and "rules_file:" in str(err.value)


def test_config_not_msgpack() -> None:
    """Bytes that are not MessagePack are a ConfigError, not a crash."""
    with pytest.raises(ConfigError):
        decode_config(b"\xc1\xc1\xc1")
    with pytest.raises(ConfigError):
        decode_config(msgpack.packb([1, 2, 3]))


def test_config_inline_rule_takes_a_stats_block() -> None:
    """``stats { command = [...] ... }`` in an inline rule becomes the same stats command as in a rules file."""
    rule = {
        "match": {"vendor_id": "18d1"},
        "group": {"vendor": "google", "type": "phone", "name": "pixel"},
        "stats": {"command": ["/usr/local/bin/battery", "{serial}"], "interval": "10s", "timeout": None,
                  "summary": "battery_level"},
    }
    config = decode_config(encode_config({"rule": [rule]}))
    (parsed,) = rules_from_dicts([dict(r) for r in config.inline_rules], "plugin config", field_prefix="rule")
    match = RuleSet((parsed,)).match(pixel_7(), "usb-x")
    assert match is not None and match.stats is not None
    assert (match.stats.argv[1], match.stats.interval, match.stats.timeout, match.stats.summary) == (
        pixel_7().serial, 10.0, 5.0, "battery_level"
    )


@pytest.mark.parametrize(
    ("value", "named"),
    [
        pytest.param({7: "x", "debounce": "1s"}, "7: unknown key", id="number-key"),
        pytest.param({b"k": 1, True: 2, "z": 3}, "b'k': unknown key", id="mixed-keys"),
        pytest.param({"rule": [{"attribute": "ram"}]}, "rule[0].attribute: expected attribute blocks",
                     id="attribute-text"),
        pytest.param({"rule": [{"attribute": [{"name": "a"}], "attributes": [1]}]},
                     "rule[0].attributes: expected a block", id="attributes-list"),
        pytest.param({"rules_file": "r" * 100_000}, "rules_file: expected an absolute path", id="huge-path"),
    ],
)
def test_config_shapes_nomad_never_sends_are_errors_not_crashes(value: dict[Any, Any], named: str) -> None:
    """Non-text keys and wrong block shapes (the wire fuzzer's finds) are ConfigErrors, quoting huge values in part."""
    with pytest.raises(ConfigError) as err:
        decode_config(msgpack.packb(value, use_bin_type=True))
    assert named in str(err.value) and len(str(err.value)) < 2000
