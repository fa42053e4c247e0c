"""``suggest DEVICE``: a starter rule for one attached device, as YAML ready to paste under ``rules:``.

The guesses (group vendor, type and name; which children to hand over) come from what the device
says about itself: strings, hwdb names, interface classes and child subsystems. A device that is not
USB gets a ``kind: udev`` rule on its subsystem and kernel name, plus its PCI ids or platform
parent when it has one. Before it is printed,
the text goes through the real loader and matcher (``parse_rules`` + ``RuleSet.match``), so a
suggestion is always a valid rule that takes its device.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field

from discovery.state.ids import is_junk_serial
from discovery.state.inventory import Entry
from discovery.model import NodeDevice, UsbDevice
from discovery.rules.errors import RulesError
from discovery.rules.loader import parse_rules
from discovery.rules.udev_conditions import PCI_SUBSYSTEM, PLATFORM_SUBSYSTEMS, nearest_parent, sysfs_hex
from discovery.sources.base import ALL_NODE_SUBSYSTEMS
from plugin.cli.context import EXIT_OK, PROG, CliError, Context, quote_arg
from plugin.cli.view import result_of, rule_ref

HUB_CLASS = 0x09
ADB = (0xFF, 0x42, 0x01)  # the adb interface: vendor class, subclass 0x42, protocol 1
MAX_SLUG = 40

# Words that only say "a company": "Silicon Labs Inc." and "Silicon Labs" make one vendor slug.
_COMPANY_WORDS = frozenset({
    "inc", "ltd", "llc", "co", "corp", "corporation", "company", "gmbh", "ag", "sa", "limited", "electronics",
    "technology", "technologies", "international", "semiconductor", "semiconductors", "the", "com",
})
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"})
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9._-]*\Z")


@dataclass
class Suggestion:
    """A rule as ordered (key, YAML text) lines, with the comments that explain its guesses."""

    header: list[str] = field(default_factory=list)  # comment lines above the rule
    lines: list[str] = field(default_factory=list)  # the rule itself, indented for a list item


def run(ctx: Context, args: argparse.Namespace) -> int:
    path = ctx.rules_path(args.rules)
    inventory = ctx.inventory(ctx.load_rules(path), ALL_NODE_SUBSYSTEMS)  # /dev/ttyAMA0 names a device too
    entry = ctx.resolve(inventory, args.device)
    suggestion = suggest(entry, path)
    if path is not None:
        current = result_of(inventory, entry)
        if current.rule is not None:
            suggestion.header.append(
                f"# Now {current.summary()} in {path}: put this rule before {rule_ref(current.rule)} to take it over."
            )
    text = render(suggestion, standalone=True)
    _check(text, entry)
    if args.json:
        ctx.print_json({"id": entry.id, "yaml": render(suggestion, standalone=args.standalone)})
        return EXIT_OK
    ctx.out.write(render(suggestion, standalone=args.standalone))
    return EXIT_OK


def render(suggestion: Suggestion, standalone: bool) -> str:
    """The YAML: a list item under ``rules:`` (indented two spaces), or a whole file with ``standalone``."""
    out = list(suggestion.header)
    if standalone:
        out.append("rules:")
    out.extend(suggestion.lines)
    return "\n".join(out) + "\n"


def _check(text: str, entry: Entry) -> None:
    """The suggestion loads with the plugin's loader and takes (or ignores) its device."""
    try:
        rules = parse_rules(text, "<suggestion>")
    except RulesError as exc:
        raise CliError(f"internal error: the suggested rule does not load: {exc.issues[0]}") from exc
    verdict = rules.explain(entry.device, entry.id)[0]
    if not verdict.winner:
        raise CliError(f"internal error: the suggested rule does not take {entry.id}: {verdict.reason}")


def suggest(entry: Entry, rules_path: str | None = None) -> Suggestion:
    """A starter rule for ``entry``'s device, with comments saying what was guessed."""
    d = entry.device
    if isinstance(d, NodeDevice):
        return suggest_udev(entry, d, rules_path)
    if not isinstance(d, UsbDevice):
        raise CliError(f"{entry.id} is a {d.kind} device: its rule is the one that declares it")
    vendor_text = d.manufacturer or d.properties.get("ID_VENDOR_FROM_DATABASE")
    product_text = d.product or d.properties.get("ID_MODEL_FROM_DATABASE")
    label = " ".join(_plain(x) for x in (vendor_text, product_text) if x and _plain(x)) or d.vid_pid
    s = Suggestion()
    where = f"port {d.port_path}"
    s.header.append(f"# {label} ({d.vid_pid}), {'serial ' + d.serial if d.serial else 'no serial'}, at {where}")
    rules_arg = quote_arg(rules_path) if rules_path else "FILE"
    s.header.append(f"# Check it with: {PROG} explain {quote_arg(entry.id)} --rules {rules_arg}")
    item = "  - "
    more = "    "
    s.lines.append(f"{item}name: {_scalar(label)}")
    s.lines.append(f"{more}match:")
    s.lines.append(f"{more}  vendor_id: 0x{d.vendor_id:04x}")
    s.lines.append(f"{more}  product_id: 0x{d.product_id:04x}")
    if d.device_class == HUB_CLASS:
        s.lines.append(f"{more}ignore: true    # a hub: it belongs to the host, not to a job")
        return s
    adb = _has_interface(d, ADB)
    if adb:
        s.lines.append(f"{more}  interface: {{class: 0xff, subclass: 0x42, protocol: 0x01}}    # adb is on")
    if not is_junk_serial(d.serial):
        s.lines.append(f"{more}  # serial: {_scalar(d.serial or '')}    # add to take only this unit")
    else:
        s.lines.append(f"{more}  # port: {_scalar(d.port_path)}    # no usable serial: add to take only this port")
    kind, children = _kind(d, adb)
    vendor = _slug(vendor_text, company=True) or f"{d.vendor_id:04x}"
    name = _slug(product_text) or f"{d.vendor_id:04x}-{d.product_id:04x}"
    s.lines.append(f"{more}group: {{vendor: {_scalar(vendor)}, type: {_scalar(kind)}, name: {_scalar(name)}}}")
    if children:
        s.lines.append(f"{more}children: [{', '.join(children)}]")
    if kind == "serial":
        s.lines.append(f"{more}require_driver: true    # unhealthy until the kernel driver made the tty")
    if adb and not is_junk_serial(d.serial):
        s.lines.append(f"{more}env:")
        s.lines.append(f'{more}  ANDROID_SERIAL: "{{serial}}"')
    return s


# The group type to suggest for a device's own subsystem.
_UDEV_TYPES = {
    "tty": "serial", "gpio": "gpio", "i2c-dev": "i2c", "spidev": "spi", "video4linux": "camera",
    "sound": "audio", "block": "storage", "hidraw": "hid", "net": "network", "rtc": "rtc", "watchdog": "watchdog",
}  # fmt: skip


def suggest_udev(entry: Entry, d: NodeDevice, rules_path: str | None) -> Suggestion:
    """A ``kind: udev`` rule: subsystem and kernel name, plus the PCI ids or the platform parent when there is one."""
    pci = nearest_parent(d, (PCI_SUBSYSTEM,))
    platform = nearest_parent(d, PLATFORM_SUBSYSTEMS) if pci is None else None
    vendor_text = d.properties.get("ID_VENDOR_FROM_DATABASE")
    model_text = d.properties.get("ID_MODEL_FROM_DATABASE")
    s = Suggestion()
    where = ", ".join(x for x in (
        f"PCI {pci.sys_name}" if pci else "", f"platform {platform.sys_name}" if platform else "",
        f"driver {d.driver}" if d.driver else "",
    ) if x)  # fmt: skip
    s.header.append(f"# {d.subsystem} {d.sys_name} at {d.device_node or '(no node)'}" + (f" ({where})" if where else ""))
    rules_arg = quote_arg(rules_path) if rules_path else "FILE"
    s.header.append(f"# Check it with: {PROG} explain {quote_arg(entry.id)} --rules {rules_arg}")
    item, more = "  - ", "    "
    s.lines.append(f"{item}name: {_scalar(f'{d.subsystem} {d.sys_name}')}")
    s.lines.append(f"{more}kind: udev")
    s.lines.append(f"{more}match:")
    s.lines.append(f"{more}  subsystem: {_scalar(d.subsystem)}")
    s.lines.append(f"{more}  kernel: {_scalar(d.sys_name)}")
    vendor = ""
    if pci is not None:
        vendor_id = sysfs_hex(pci.attributes.get("vendor"))
        device_id = sysfs_hex(pci.attributes.get("device"))
        ids = [f"vendor_id: 0x{vendor_id:04x}"] if vendor_id is not None else []
        ids += [f"device_id: 0x{device_id:04x}"] if device_id is not None else []
        if ids:
            s.lines.append(f"{more}  pci: {{{', '.join(ids)}}}    # the card; add slot: {_scalar(pci.sys_name)} "
                           "to take only the one in that slot")
        vendor = _slug(vendor_text, company=True) or (f"{vendor_id:04x}" if vendor_id is not None else "pci")
    elif platform is not None:
        s.lines.append(f"{more}  platform: {_scalar(platform.sys_name)}    # the on-board controller it hangs off")
        vendor = "onboard"
    if not is_junk_serial(d.serial):
        s.lines.append(f"{more}  # serial: {_scalar(d.serial or '')}    # add to take only this unit")
    kind = _UDEV_TYPES.get(d.subsystem, d.subsystem)
    name = _slug(model_text) or d.sys_name
    s.lines.append(f"{more}group: {{vendor: {_scalar(vendor or d.subsystem)}, type: {_scalar(kind)}, "
                   f"name: {_scalar(name)}}}")
    return s


def _has_interface(device: UsbDevice, triple: tuple[int, int, int]) -> bool:
    return any((i.interface_class, i.interface_subclass, i.interface_protocol) == triple for i in device.interfaces)


def _kind(device: UsbDevice, adb: bool) -> tuple[str, list[str]]:
    """The group type to suggest, and the child subsystems a task should get."""
    subsystems = {c.subsystem for c in device.children if c.device_node}
    fido = any(c.properties.get("ID_FIDO_TOKEN") == "1" or c.properties.get("ID_SECURITY_TOKEN") == "1"
               for c in device.children)
    if adb:
        return "phone", []
    if "tty" in subsystems:
        return "serial", ["tty"]
    if "hidraw" in subsystems:
        return ("security-key" if fido else "hid"), ["hidraw"]
    for subsystem, kind in (("block", "storage"), ("video4linux", "camera"), ("sound", "audio")):
        if subsystem in subsystems:
            return kind, [subsystem]
    if any(c.subsystem == "net" for c in device.children):
        return "network", []
    return "usb", []


def _plain(text: str) -> str:
    """``Arduino (www.arduino.cc)`` -> ``Arduino``: asides in parentheses only make a label long."""
    return " ".join(re.sub(r"\([^)]*\)", " ", text).split())


def _slug(text: str | None, company: bool = False) -> str:
    """``Silicon Labs Inc.`` -> ``silicon-labs``; text in parentheses and, for vendors, company words dropped."""
    if not text:
        return ""
    text = re.sub(r"\([^)]*\)", " ", text)
    words = re.findall(r"[a-z0-9]+", text.lower())
    if company:
        kept = [w for w in words if w not in _COMPANY_WORDS]
        words = (kept or words)[:2]
    slug = "-".join(words)[:MAX_SLUG].strip("-")
    if re.fullmatch(r"[0-9a-f]{4}", slug):  # an id that udev put where a name belongs
        return ""
    return slug


def _scalar(text: str) -> str:
    """``text`` as a YAML scalar: plain when that is safe, else double-quoted (JSON's quoting is valid YAML)."""
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)
