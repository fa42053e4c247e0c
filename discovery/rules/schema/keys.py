"""The rules schema as data: which keys a rule, its ``match`` and each of its blocks take.

The YAML validator reads these tables, and the plugin's HCL spec for inline ``rule {}`` blocks
(``plugin.config``) is built from them, so a key added here is offered in both or fails a test.
"""

from __future__ import annotations

RULE_KEYS = (
    "name", "match", "ignore", "group", "attributes", "children", "permissions",
    "env", "mounts", "health", "stats", "reset", "require_driver", "kind", "devices",
)  # fmt: skip
MATCH_KEYS = (
    "vendor_id", "product_id", "serial", "manufacturer", "product", "properties",
    "subsystem", "device_class", "interface_class", "interface", "port", "driver",
)  # fmt: skip
IGNORE_RULE_KEYS = frozenset({"name", "match", "ignore", "kind"})
# What a rule's ``kind:`` may say; absent means "usb". Keys that only one kind takes are refused on the others.
RULE_KINDS = ("usb", "declared")
DEFAULT_KIND = "usb"
KIND_ONLY_KEYS = {
    "usb": frozenset({"match", "ignore", "children", "reset", "require_driver"}),
    "declared": frozenset({"devices"}),
}
# One entry of a declared rule's ``devices:`` list.
DECLARED_DEVICE_KEYS = ("id", "values", "nodes", "env", "mounts", "health")
GROUP_KEYS = ("vendor", "type", "name")
ATTR_SPEC_KEYS = ("value", "type", "unit")
MOUNT_KEYS = ("host_path", "task_path", "read_only")
HEALTH_KEYS = ("command", "interval", "timeout")
STATS_KEYS = ("command", "interval", "timeout", "summary")
INTERFACE_KEYS = ("class", "subclass", "protocol")

# Where a key written at the wrong level belongs, for the "unknown key" message.
MISPLACED_IN_RULE = dict.fromkeys(MATCH_KEYS, "under 'match:'") | {
    "vendor": "under 'group:'",
    "type": "under 'group:'",
}
MISPLACED_IN_MATCH = {key: "at the rule level, beside 'match:'" for key in RULE_KEYS if key != "name"}
