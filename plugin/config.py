"""The plugin's ``config {}`` block: its schema as data, and the decoding of Nomad's MessagePack into PluginConfig.

Nomad decodes the operator's HCL against CONFIG_SPEC and sends the result as go-cty MessagePack in
every SetConfig. Decoding is lenient where Nomad is (numbers may arrive as strings, absent values as
None, absent blocks as empty lists) and strict about meaning: every problem is collected and
reported at once as a ConfigError naming the key, and nothing is applied unless all of it is good.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from discovery.durations import DurationError, parse_duration
from discovery.rules.schema.keys import (
    ATTR_SPEC_KEYS,
    DECLARED_DEVICE_KEYS,
    GROUP_KEYS,
    HEALTH_KEYS,
    INTERFACE_KEYS,
    MATCH_KEYS,
    MOUNT_KEYS,
    PCI_KEYS,
    RULE_KEYS,
    STATS_KEYS,
)

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")


class ConfigError(ValueError):
    """The config block is wrong; the message names every bad key and what was expected."""


# -- the schema, as data ---------------------------------------------------------------------
# Each node is (kind, options). plugin/schema.py turns this into hclspec protobufs; keeping it as
# plain data lets tests and docs read the same source of truth.
def attr(type_expr: str, required: bool = False) -> tuple[str, dict[str, Any]]:
    return ("attr", {"type": type_expr, "required": required})


def default(name: str, type_expr: str, literal: str) -> tuple[str, dict[str, Any]]:
    # An Attr under a Default gets no implied name from its parent, so it carries its own.
    return ("default", {"name": name, "type": type_expr, "literal": literal})


def block(nested: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("block", {"nested": nested})


def block_list(nested: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("block_list", {"nested": nested})


def block_attrs(type_expr: str) -> tuple[str, dict[str, Any]]:
    # Never ``any`` here: Nomad panics (and the agent dies) when the values' types differ.
    return ("block_attrs", {"type": type_expr})


# The inline ``rule {}`` block is the rules-file schema written in HCL: it is built from the key
# tables of discovery.rules.schema.keys, which the YAML validator reads too. Only how a key is
# written in HCL is said here: a new match key is offered as one string, and a new rule-level key
# without an HCL form below stops the plugin at import (tests/unit/test_config.py checks both).
#
# Only concrete types: an ``any`` attribute inside a list of blocks makes Nomad's decoder panic (and
# the agent die) as soon as two blocks give it values of different types, e.g. a string in one rule
# and a list in the next. Lists of ids are therefore written as one comma-separated string.
LIST_KEYS = ("vendor_id", "product_id", "subsystem", "device_class", "interface_class")
PCI_LIST_KEYS = ("vendor_id", "device_id", "subsystem_vendor_id", "subsystem_device_id", "class")

# match: keys that are not one string ("18d1", "18d1,2a70", a glob) in HCL. The block offers the
# match keys of every kind; the rules validator says which ones a rule's kind takes.
_MATCH_FORMS: dict[str, Any] = {
    "interface": block({key: attr("string") for key in INTERFACE_KEYS}),
    "properties": block_attrs("string"),
    "attributes": block_attrs("string"),  # kind: udev, sysfs attributes of the device (ATTR{})
    "parent_attributes": block_attrs("string"),  # kind: udev, of the device or one parent (ATTRS{})
    "pci": block({key: attr("string") for key in PCI_KEYS}),
}
MATCH_SPEC: dict[str, Any] = {key: _MATCH_FORMS.get(key, attr("string")) for key in MATCH_KEYS}

_MOUNT_SPEC = block_list(
    {key: attr("bool") if key == "read_only" else attr("string", key == "host_path") for key in MOUNT_KEYS}
)
_HEALTH_SPEC = block({key: attr("list(string)", True) if key == "command" else attr("string") for key in HEALTH_KEYS})

# One ``devices { }`` block of a declared rule: the rules file's device keys, mounts as ``mount { }``.
_DECLARED_DEVICE_FORMS: dict[str, dict[str, Any]] = {
    "id": {"id": attr("string", True)},
    "values": {"values": block_attrs("string")},
    "nodes": {"nodes": attr("list(string)")},
    "env": {"env": block_attrs("string")},
    "mounts": {"mount": _MOUNT_SPEC},
    "health": {"health": _HEALTH_SPEC},
}
assert set(_DECLARED_DEVICE_FORMS) == set(DECLARED_DEVICE_KEYS), "every declared-device key needs its HCL form"
DECLARED_DEVICE_SPEC: dict[str, Any] = {
    name: node for key in DECLARED_DEVICE_KEYS for name, node in _DECLARED_DEVICE_FORMS[key].items()
}

# Each rules-file key of a rule and its HCL form, under the HCL name(s) it has there. Repeated
# blocks get singular names (``mount { }`` for ``mounts``), and typed attributes have a block of
# their own beside the plain ``attributes { k = "v" }``: rule_dict_from_hcl() maps them back.
_RULE_FORMS: dict[str, dict[str, Any]] = {
    "name": {"name": attr("string")},
    "kind": {"kind": attr("string")},
    "match": {"match": block(MATCH_SPEC)},
    "ignore": {"ignore": attr("bool")},
    "group": {"group": block({key: attr("string") for key in GROUP_KEYS})},
    "attributes": {
        "attributes": block_attrs("string"),  # string values (templates allowed)
        # A typed attribute: the value arrives as text; ``type`` says what it is (int, float, bool,
        # string, hex), inferred from the text when left out.
        "attribute": block_list(
            {"name": attr("string", True)} | {key: attr("string", key == "value") for key in ATTR_SPEC_KEYS}
        ),
    },
    "children": {"children": attr("list(string)")},
    "nodes": {"nodes": attr("list(string)")},
    "permissions": {"permissions": attr("string")},
    "env": {"env": block_attrs("string")},
    "mounts": {"mount": _MOUNT_SPEC},
    "health": {"health": _HEALTH_SPEC},
    "stats": {
        "stats": block(
            {key: attr("list(string)", True) if key == "command" else attr("string") for key in STATS_KEYS}
        )
    },
    "reset": {"reset": attr("bool")},
    "require_driver": {"require_driver": attr("bool")},
    "devices": {"devices": block_list(DECLARED_DEVICE_SPEC)},
}
assert set(_RULE_FORMS) == set(RULE_KEYS), "every rules-file key needs its HCL form, and only those"
RULE_SPEC: dict[str, Any] = {name: node for key in RULE_KEYS for name, node in _RULE_FORMS[key].items()}

CONFIG_SPEC: dict[str, Any] = {
    "rules_file": attr("string"),
    "rule": block_list(RULE_SPEC),
    "debounce": default("debounce", "string", '"200ms"'),
    "unplugged_grace": default("unplugged_grace", "string", '"60s"'),
    "log_level": default("log_level", "string", '"info"'),
    # Off only on purpose: then a rules file anyone can write may run commands as root (logged at every start).
    "strict_rules_permissions": default("strict_rules_permissions", "bool", "true"),
    # Where the IDs given to devices are kept between runs; unset: $NOMAD_DEVICE_USB_STATE_DIR, else
    # /var/lib/nomad-device-usb (discovery.state.idstore). A plain attribute: its default is not a literal.
    "state_dir": attr("string"),
}

DEFAULTS: dict[str, Any] = {"debounce": "200ms", "unplugged_grace": "60s", "log_level": "info",
                            "strict_rules_permissions": True}


@dataclass(frozen=True)
class PluginConfig:
    """What the operator configured, typed and checked."""

    rules_file: str | None = None
    inline_rules: tuple[Mapping[str, Any], ...] = ()  # rule dicts in the rules-file schema
    debounce: float = 0.2
    unplugged_grace: float = 60.0
    log_level: str = "info"
    strict_rules_permissions: bool = True  # as root, refuse a rules file anyone but root could change
    state_dir: str | None = None  # None: the environment's or the default (discovery.state.idstore.state_dir_from)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)


def decode_config(data: bytes) -> PluginConfig:
    """Decode SetConfig's msgpack_config; empty bytes mean no config block (all defaults)."""
    if not data:
        return config_from_mapping({})
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ConfigError(f"config is not valid MessagePack: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"config must be a map, got {type(value).__name__}")
    return config_from_mapping(value)


def config_from_mapping(value: Mapping[str, Any]) -> PluginConfig:
    errors: list[str] = []
    # Keys may be anything MessagePack can hold (numbers, bytes, true): sorted and shown by their repr.
    unknown = sorted((key for key in value if key not in CONFIG_SPEC), key=repr)
    for key in unknown:
        shown = key if isinstance(key, str) else repr(key)
        errors.append(f"{shown:.80}: unknown key (expected one of {', '.join(sorted(CONFIG_SPEC))})")

    def text(key: str) -> str | None:
        v = value.get(key)
        if v is None:
            return DEFAULTS.get(key)
        if isinstance(v, str):
            return v
        errors.append(f"{key}: expected a string, got {type(v).__name__} {v!r:.80}")
        return None

    def duration(key: str) -> float:
        raw = text(key)
        try:
            seconds = parse_duration(raw if raw is not None else DEFAULTS[key])
        except DurationError as exc:
            errors.append(f"{key}: {exc}")
            return 0.0
        if seconds < 0:
            errors.append(f"{key}: must not be negative, got {raw!r:.80}")
        return seconds

    rules_file = text("rules_file")
    if rules_file is not None:
        if not rules_file.strip():
            errors.append("rules_file: expected a path, got an empty string")
        elif not os.path.isabs(rules_file):
            errors.append(f"rules_file: expected an absolute path, got {rules_file!r:.200}")
        elif not os.path.isfile(rules_file):
            errors.append(f"rules_file: {rules_file:.4200} does not exist or is not a file")
        elif not os.access(rules_file, os.R_OK):
            errors.append(f"rules_file: {rules_file} is not readable")

    def flag(key: str) -> bool:
        v = value.get(key)
        if v is None:
            return bool(DEFAULTS[key])
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.strip().lower() in ("true", "false"):  # HCL1 may hand a bool over as text
            return v.strip().lower() == "true"
        errors.append(f"{key}: expected true or false, got {type(v).__name__} {v!r:.60}")
        return bool(DEFAULTS[key])

    state_dir = text("state_dir")
    if state_dir is not None and (not os.path.isabs(state_dir) or "\x00" in state_dir):
        errors.append(f"state_dir: expected an absolute path, got {state_dir!r:.200}")

    debounce = duration("debounce")
    grace = duration("unplugged_grace")
    strict = flag("strict_rules_permissions")
    log_level = (text("log_level") or "info").strip().lower()
    if log_level not in LOG_LEVELS:
        errors.append(f"log_level: expected one of {', '.join(LOG_LEVELS)}, got {log_level!r:.80}")

    rules_raw = value.get("rule")
    inline: list[Mapping[str, Any]] = []
    if rules_raw is None:
        rules_raw = []
    if not isinstance(rules_raw, list):
        errors.append(f"rule: expected a list of rule blocks, got {type(rules_raw).__name__}")
        rules_raw = []
    for i, item in enumerate(rules_raw):
        if not isinstance(item, dict):
            errors.append(f"rule[{i}]: expected a block, got {type(item).__name__}")
            continue
        try:
            inline.append(rule_dict_from_hcl(item))
        except ConfigError as exc:
            errors.append(f"rule[{i}].{exc}")

    if errors:
        raise ConfigError("invalid plugin config: " + "; ".join(errors))
    return PluginConfig(
        rules_file=rules_file,
        inline_rules=tuple(inline),
        debounce=debounce,
        unplugged_grace=grace,
        log_level=log_level,
        strict_rules_permissions=strict,
        state_dir=state_dir,
        raw=dict(value),
    )


def rule_dict_from_hcl(item: Mapping[str, Any]) -> dict[str, Any]:
    """An HCL ``rule`` block as a rules-file rule: nulls dropped, repeated ``mount`` blocks as ``mounts``."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    def split_lists(block: dict[str, Any], keys: tuple[str, ...]) -> None:
        for key in keys:  # "18d1,2a70" is how HCL writes a list of ids (see LIST_KEYS)
            value = block.get(key)
            if isinstance(value, str) and "," in value:
                block[key] = [part.strip() for part in value.split(",")]

    out = clean(dict(item))
    match = out.get("match")
    if isinstance(match, dict):
        split_lists(match, LIST_KEYS)
        pci = match.get("pci")
        if isinstance(pci, dict):
            split_lists(pci, PCI_LIST_KEYS)
    mounts = out.pop("mount", None)
    if mounts:
        out["mounts"] = mounts
    devices = out.pop("devices", None)
    if devices:  # Nomad sends an absent block list as []: only a rule that has devices gets the key
        # Nomad sends a list of blocks; another client may send anything: the validator says what is wrong.
        out["devices"] = [_declared_device_from_hcl(e) for e in devices] if isinstance(devices, list) else devices
    typed = out.pop("attribute", None)
    if typed:  # attribute { name = "ram", value = "8", unit = "GiB" } joins the plain string attributes
        attributes = out.get("attributes", {})
        # Nomad's decoder gives only these shapes; another client may send anything: say so, do not crash.
        if not isinstance(typed, list) or not all(isinstance(entry, dict) for entry in typed):
            raise ConfigError(f"attribute: expected attribute blocks, got {type(typed).__name__}")
        if not isinstance(attributes, dict):
            raise ConfigError(f"attributes: expected a block of name = value, got {type(attributes).__name__}")
        attributes = dict(attributes)
        for entry in typed:
            spec = dict(entry)
            name = str(spec.pop("name", ""))
            spec.setdefault("type", infer_type(str(spec.get("value", ""))))
            attributes[name] = spec
        out["attributes"] = attributes
    return out


def _declared_device_from_hcl(entry: Any) -> Any:
    """A ``devices { }`` block as a rules-file device: repeated ``mount`` blocks as ``mounts``."""
    if not isinstance(entry, dict):
        return entry  # the rules validator says what is wrong with it
    device = dict(entry)
    mounts = device.pop("mount", None)
    if mounts:
        device["mounts"] = mounts
    return device


def infer_type(text: str) -> str:
    """What an untyped attribute value means: HCL hands every value over as text."""
    for kind, convert in (("int", int), ("float", float)):
        try:
            convert(text)
        except ValueError:
            continue
        return kind
    return "bool" if text in ("true", "false") else "string"


def encode_config(value: Mapping[str, Any]) -> bytes:
    """MessagePack as Nomad sends it: used by tests, the demo and benchmarks to play the agent's part."""
    full: dict[str, Any] = {key: None for key in CONFIG_SPEC}
    full["rule"] = []
    full.update(DEFAULTS)
    full.update(value)
    return msgpack.packb(dict(sorted(full.items())), use_bin_type=False)
