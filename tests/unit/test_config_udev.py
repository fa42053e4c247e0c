"""Inline ``rule {}`` blocks of kind: udev: the HCL spec offers its keys, and they decode into the same rules as YAML."""

from __future__ import annotations

from typing import Any

from node_factories import pcie_serial_port, pi_uart

from discovery.rules.loader import rules_from_dicts
from discovery.rules.ruleset import RuleSet
from discovery.rules.schema.keys import PCI_KEYS
from plugin.config import RULE_SPEC, decode_config, encode_config


def test_hcl_rule_spec_offers_kind_nodes_and_the_udev_match_blocks() -> None:
    """kind and nodes at the rule level; pci, attributes, parent_attributes as blocks under match."""
    assert RULE_SPEC["kind"] == ("attr", {"type": "string", "required": False})
    assert RULE_SPEC["nodes"] == ("attr", {"type": "list(string)", "required": False})
    match = RULE_SPEC["match"][1]["nested"]
    assert set(match["pci"][1]["nested"]) == set(PCI_KEYS)
    assert match["attributes"] == match["parent_attributes"] == ("block_attrs", {"type": "string"})


def test_inline_udev_rule_as_nomad_sends_it() -> None:
    """A udev rule block, with Nomad's nulls for absent keys and a comma list of PCI ids, takes the card's ports."""
    pci: dict[str, Any] = dict.fromkeys(PCI_KEYS) | {"vendor_id": "1415, 8086", "class": "0x0700"}
    block = {
        "name": "pcie serial", "kind": "udev", "nodes": ["/dev/ttyS0"], "ignore": None, "children": None,
        "match": {"subsystem": "tty", "kernel": "ttyS*", "pci": pci, "attributes": {"type": "4"},
                  "parent_attributes": {"subsystem_vendor": "0x1415"}, "vendor_id": None},
        "group": {"vendor": "oxford", "type": "serial", "name": "{pci.device_id}"},
        "env": {"PORT": "{devnode}"},
    }  # fmt: skip
    config = decode_config(encode_config({"rule": [block]}))
    rules = RuleSet(tuple(rules_from_dicts([dict(r) for r in config.inline_rules], "plugin config", "rule")))
    match = rules.match(pcie_serial_port(5), "tty-pci-03_00.0-ttyS5")
    assert match is not None and str(match.group) == "oxford/serial/c158"
    assert (dict(match.env), match.nodes) == ({"PORT": "/dev/ttyS5"}, ("/dev/ttyS0",))
    assert rules.match(pi_uart()) is None
