"""The rules schema as data: which keys a rule, its ``match`` and each of its blocks take, per kind of device.

The YAML validator reads these tables, and the plugin's HCL spec for inline ``rule {}`` blocks
(``plugin.config``) is built from them, so a key added here is offered in both or fails a test.
A rule's ``kind:`` says which devices it takes (``usb``, the default; ``udev``: any other udev
device with a node; ``declared``: devices the rules declare), and each kind has its own ``match:`` keys.
"""

from __future__ import annotations

KINDS = ("usb", "udev", "declared")
DEFAULT_KIND = "usb"

RULE_KEYS = (
    "name", "match", "kind", "ignore", "group", "attributes", "children", "permissions",
    "env", "mounts", "nodes", "health", "stats", "reset", "require_driver", "devices",
)  # fmt: skip
# Rule keys only some kinds take (every other rule key applies to every kind).
RULE_KEYS_ONLY_FOR = {
    "children": ("usb",),
    "reset": ("usb",),
    "require_driver": ("usb",),
    "ignore": ("usb", "udev"),
    "match": ("usb", "udev"),
    "devices": ("declared",),
}
USB_MATCH_KEYS = (
    "vendor_id", "product_id", "serial", "manufacturer", "product", "properties",
    "subsystem", "device_class", "interface_class", "interface", "port", "driver",
)  # fmt: skip
# kind: udev. Cheap checks on the device itself first, the walks up its parents last.
UDEV_MATCH_KEYS = (
    "subsystem", "kernel", "devnode", "serial", "port", "properties", "attributes",
    "driver", "platform", "pci", "parent_attributes",
)  # fmt: skip
MATCH_KEYS_BY_KIND: dict[str, tuple[str, ...]] = {"usb": USB_MATCH_KEYS, "udev": UDEV_MATCH_KEYS}
# Every match key of every kind: what the HCL ``match {}`` block offers (the validator checks the kind).
MATCH_KEYS = tuple(dict.fromkeys(key for keys in MATCH_KEYS_BY_KIND.values() for key in keys))
PCI_KEYS = ("vendor_id", "device_id", "subsystem_vendor_id", "subsystem_device_id", "class", "slot")
IGNORE_RULE_KEYS = frozenset({"name", "kind", "match", "ignore"})
# One entry of a declared rule's ``devices:`` list.
DECLARED_DEVICE_KEYS = ("id", "values", "nodes", "env", "mounts", "health")
GROUP_KEYS = ("vendor", "type", "name")
ATTR_SPEC_KEYS = ("value", "type", "unit")
MOUNT_KEYS = ("host_path", "task_path", "read_only")
HEALTH_KEYS = ("command", "interval", "timeout")
STATS_KEYS = ("command", "interval", "timeout", "summary")
INTERFACE_KEYS = ("class", "subclass", "protocol")

# Where a key written at the wrong level belongs, for the "unknown key" message.
MISPLACED_IN_RULE = dict.fromkeys((key for key in MATCH_KEYS if key not in RULE_KEYS), "under 'match:'") | {
    "vendor": "under 'group:'",
    "type": "under 'group:'",
}
MISPLACED_IN_MATCH = {key: "at the rule level, beside 'match:'" for key in RULE_KEYS if key != "name"}

# A match key of another kind, written in a rule of this kind: what to write instead.
WRONG_KIND_MATCH = {
    "udev": {
        "vendor_id": "a device that is not USB has no USB ids: write 'pci: {vendor_id: ...}' for a PCI card, "
                     "or 'kind: usb' for a USB device",
        "product_id": "a device that is not USB has no USB ids: write 'pci: {device_id: ...}' for a PCI card, "
                      "or 'kind: usb' for a USB device",
        "device_class": "write 'pci: {class: ...}' for a PCI card, or 'kind: usb' for a USB device",
        "manufacturer": "write 'properties: {ID_VENDOR_FROM_DATABASE: ...}' or 'kind: usb' for a USB device",
        "product": "write 'properties: {ID_MODEL_FROM_DATABASE: ...}' or 'kind: usb' for a USB device",
        "interface_class": "only USB devices have interfaces ('kind: usb')",
        "interface": "only USB devices have interfaces ('kind: usb')",
    },
    "usb": {
        "kernel": "it is a 'kind: udev' key (add 'kind: udev' for a device that is not USB); "
                  "a USB device is named by 'vendor_id'/'product_id' or 'port'",
        "devnode": "it is a 'kind: udev' key (add 'kind: udev' for a device that is not USB); "
                   "a USB rule picks its device nodes with 'children:'",
        "attributes": "the attributes Nomad publishes go at the rule level, beside 'match:'; matching "
                      "sysfs attributes is for 'kind: udev' rules (a USB rule matches udev 'properties:')",
        "parent_attributes": "it is a 'kind: udev' key (add 'kind: udev' for a device that is not USB)",
        "platform": "it is a 'kind: udev' key (add 'kind: udev' for a device that is not USB)",
        "pci": "it is a 'kind: udev' key (add 'kind: udev' for a device that is not USB); "
               "a USB device is named by 'vendor_id' and 'product_id'",
    },
}
