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


# Only concrete types: an ``any`` attribute inside a list of blocks makes Nomad's decoder panic (and
# the agent die) as soon as two blocks give it values of different types, e.g. a string in one rule
# and a list in the next. Lists of ids are therefore written as one comma-separated string.
LIST_KEYS = ("vendor_id", "product_id", "subsystem", "device_class", "interface_class")

MATCH_SPEC: dict[str, Any] = {
    "vendor_id": attr("string"),  # "18d1" or "18d1,2a70"
    "product_id": attr("string"),
    "serial": attr("string"),
    "manufacturer": attr("string"),
    "product": attr("string"),
    "subsystem": attr("string"),
    "device_class": attr("string"),
    "interface_class": attr("string"),
    "interface": block({"class": attr("string"), "subclass": attr("string"), "protocol": attr("string")}),
    "port": attr("string"),
    "driver": attr("string"),
    "properties": block_attrs("string"),
}

RULE_SPEC: dict[str, Any] = {
    "name": attr("string"),
    "ignore": attr("bool"),
    "match": block(MATCH_SPEC),
    "group": block({"vendor": attr("string"), "type": attr("string"), "name": attr("string")}),
    "attributes": block_attrs("string"),  # string values (templates allowed)
    # A typed attribute: the value arrives as text; ``type`` says what it is (int, float, bool,
    # string, hex), inferred from the text when left out.
    "attribute": block_list(
        {"name": attr("string", True), "value": attr("string", True), "unit": attr("string"), "type": attr("string")}
    ),
    "children": attr("list(string)"),
    "permissions": attr("string"),
    "env": block_attrs("string"),
    "mount": block_list({"host_path": attr("string", True), "task_path": attr("string"), "read_only": attr("bool")}),
    "health": block({"command": attr("list(string)", True), "interval": attr("string"), "timeout": attr("string")}),
    "reset": attr("bool"),
    "require_driver": attr("bool"),
}

CONFIG_SPEC: dict[str, Any] = {
    "rules_file": attr("string"),
    "rule": block_list(RULE_SPEC),
    "debounce": default("debounce", "string", '"200ms"'),
    "unplugged_grace": default("unplugged_grace", "string", '"60s"'),
    "log_level": default("log_level", "string", '"info"'),
}

DEFAULTS = {"debounce": "200ms", "unplugged_grace": "60s", "log_level": "info"}


@dataclass(frozen=True)
class PluginConfig:
    """What the operator configured, typed and checked."""

    rules_file: str | None = None
    inline_rules: tuple[Mapping[str, Any], ...] = ()  # rule dicts in the rules-file schema
    debounce: float = 0.2
    unplugged_grace: float = 60.0
    log_level: str = "info"
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
    unknown = sorted(set(value) - set(CONFIG_SPEC))
    for key in unknown:
        errors.append(f"{key}: unknown key (expected one of {', '.join(sorted(CONFIG_SPEC))})")

    def text(key: str) -> str | None:
        v = value.get(key)
        if v is None:
            return DEFAULTS.get(key)
        if isinstance(v, str):
            return v
        errors.append(f"{key}: expected a string, got {type(v).__name__} {v!r}")
        return None

    def duration(key: str) -> float:
        raw = text(key)
        try:
            seconds = parse_duration(raw if raw is not None else DEFAULTS[key])
        except DurationError as exc:
            errors.append(f"{key}: {exc}")
            return 0.0
        if seconds < 0:
            errors.append(f"{key}: must not be negative, got {raw!r}")
        return seconds

    rules_file = text("rules_file")
    if rules_file is not None:
        if not rules_file.strip():
            errors.append("rules_file: expected a path, got an empty string")
        elif not os.path.isabs(rules_file):
            errors.append(f"rules_file: expected an absolute path, got {rules_file!r}")
        elif not os.path.isfile(rules_file):
            errors.append(f"rules_file: {rules_file} does not exist or is not a file")
        elif not os.access(rules_file, os.R_OK):
            errors.append(f"rules_file: {rules_file} is not readable")

    debounce = duration("debounce")
    grace = duration("unplugged_grace")
    log_level = (text("log_level") or "info").strip().lower()
    if log_level not in LOG_LEVELS:
        errors.append(f"log_level: expected one of {', '.join(LOG_LEVELS)}, got {log_level!r}")

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
        inline.append(rule_dict_from_hcl(item))

    if errors:
        raise ConfigError("invalid plugin config: " + "; ".join(errors))
    return PluginConfig(
        rules_file=rules_file,
        inline_rules=tuple(inline),
        debounce=debounce,
        unplugged_grace=grace,
        log_level=log_level,
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

    out = clean(dict(item))
    match = out.get("match")
    if isinstance(match, dict):
        for key in LIST_KEYS:
            value = match.get(key)
            if isinstance(value, str) and "," in value:
                match[key] = [part.strip() for part in value.split(",")]
    mounts = out.pop("mount", None)
    if mounts:
        out["mounts"] = mounts
    typed = out.pop("attribute", None)
    if typed:  # attribute { name = "ram", value = "8", unit = "GiB" } joins the plain string attributes
        attributes = dict(out.get("attributes", {}))
        for entry in typed:
            spec = dict(entry)
            name = str(spec.pop("name", ""))
            spec.setdefault("type", infer_type(str(spec.get("value", ""))))
            attributes[name] = spec
        out["attributes"] = attributes
    return out


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
