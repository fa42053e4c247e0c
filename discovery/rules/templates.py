"""``{placeholder}`` templates in rules: parsed once at load time, rendered per device at match time.

Names are either built-ins (``serial``, ``vendor_id``, ...) or the name of a udev property
(``ID_MODEL``) or sysfs attribute (``bcdDevice``) of the device, looked up in that order. Each kind
of rule has its own built-ins: a ``kind: udev`` rule has ``subsystem``, ``devnode``, ``driver`` and
the ids of the nearest PCI parent (``pci.vendor_id``) but no USB ids. ``{{`` and
``}}`` stand for literal braces. Anything else inside braces (spaces, format specs, ``{}``) is a load
error rather than a silent empty string, because that is almost always a typo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from discovery.model import Device, NodeDevice, UsbDevice
from discovery.rules.udev_conditions import PCI_ATTRIBUTES, PCI_SUBSYSTEM, nearest_parent, sysfs_hex

# What each built-in name stands for; docs/rules.md repeats this table.
BUILTIN_PLACEHOLDERS: dict[str, str] = {
    "serial": "serial number string (absent on many devices)",
    "vendor_id": "idVendor as 4 lowercase hex digits, e.g. 18d1",
    "product_id": "idProduct as 4 lowercase hex digits, e.g. 4ee7",
    "manufacturer": "manufacturer string",
    "product": "product string",
    "port": "physical port path (udev ID_PATH, else the kernel name such as 1-2.3)",
    "sys_name": "kernel name of the device, e.g. 1-2.3",
    "busnum": "bus number (changes on replug)",
    "devnum": "device number (changes on replug)",
    "id": "the stable device id the plugin gives the device",
}

# kind: udev. docs/rules.md repeats this table too.
UDEV_PLACEHOLDERS: dict[str, str] = {
    "sys_name": "kernel name of the device, e.g. ttyAMA0",
    "subsystem": "the device's own subsystem, e.g. tty",
    "devnode": "the device node, e.g. /dev/ttyAMA0",
    "port": "physical place (udev ID_PATH, e.g. platform-fe201000.serial)",
    "serial": "serial number (udev ID_SERIAL_SHORT; absent on most)",
    "driver": "driver of the device or its nearest parent that has one, e.g. uart-pl011",
    "id": "the stable device id the plugin gives the device",
    "pci.vendor_id": "nearest PCI parent's vendor id as 4 lowercase hex digits, e.g. 1415",
    "pci.device_id": "nearest PCI parent's device id, e.g. c158",
    "pci.subsystem_vendor_id": "nearest PCI parent's subsystem vendor id",
    "pci.subsystem_device_id": "nearest PCI parent's subsystem device id",
    "pci.class": "nearest PCI parent's class code as 6 hex digits, e.g. 070002",
    "pci.slot": "nearest PCI parent's address, e.g. 0000:03:00.0",
}
# Built-ins a rule of each kind may use; others of BUILTIN_PLACEHOLDERS are USB-only.
PLACEHOLDERS_BY_KIND: dict[str, dict[str, str]] = {"usb": BUILTIN_PLACEHOLDERS, "udev": UDEV_PLACEHOLDERS}
USB_ONLY_PLACEHOLDERS = frozenset(BUILTIN_PLACEHOLDERS) - frozenset(UDEV_PLACEHOLDERS)

# udev property names (ID_MODEL, DEVNAME) and sysfs attribute names (bcdDevice) both fit this.
PROPERTY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class TemplateError(ValueError):
    """Template text that cannot be parsed; the message names the problem."""


@dataclass(frozen=True)
class Placeholder:
    """One ``{name}`` in a template."""

    name: str


@dataclass(frozen=True)
class Rendered:
    """A rendered template, and the placeholders that had no value on the device."""

    text: str
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class Template:
    """Parsed template text: literal strings and placeholders in order."""

    text: str
    parts: tuple[str | Placeholder, ...]

    @property
    def is_static(self) -> bool:
        """True when there is no placeholder: the text is the same for every device."""
        return all(isinstance(part, str) for part in self.parts)

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(part.name for part in self.parts if isinstance(part, Placeholder))

    @property
    def literal_text(self) -> str:
        """The literal parts joined, escapes undone: the whole text of a static template."""
        return "".join(part for part in self.parts if isinstance(part, str))

    @property
    def static_prefix(self) -> str:
        """The literal text before the first placeholder (all of it for a static template)."""
        prefix = []
        for part in self.parts:
            if isinstance(part, Placeholder):
                break
            prefix.append(part)
        return "".join(prefix)

    def render(self, facts: DeviceFacts, blank_is_missing: bool = False) -> Rendered:
        """Text for one device; a placeholder without a value renders as "" and is listed in ``missing``.

        With ``blank_is_missing`` an empty value counts as missing too (group names use this, so a
        device with an empty serial does not land in a group named ``pixel-``).
        """
        if len(self.parts) == 1 and isinstance(self.parts[0], str):
            return Rendered(self.parts[0])
        out: list[str] = []
        missing: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = facts.lookup(part.name)
            if value is None or (blank_is_missing and value == ""):
                missing.append(part.name)
                continue
            out.append(value)
        return Rendered("".join(out), tuple(missing))


def parse_template(text: str) -> Template:
    """Parse ``text`` into a Template; raises TemplateError for unbalanced braces or bad names."""
    parts: list[str | Placeholder] = []
    literal: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "{":
            if i + 1 < n and text[i + 1] == "{":
                literal.append("{")
                i += 2
                continue
            end = text.find("}", i + 1)
            if end < 0 or "{" in text[i + 1 : end]:
                raise TemplateError(f"unclosed '{{' at position {i + 1} (write '{{{{' for a literal brace)")
            name = text[i + 1 : end]
            _check_name(name)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Placeholder(name))
            i = end + 1
            continue
        if char == "}":
            if i + 1 < n and text[i + 1] == "}":
                literal.append("}")
                i += 2
                continue
            raise TemplateError(f"single '}}' at position {i + 1} (write '}}}}' for a literal brace)")
        literal.append(char)
        i += 1
    if literal or not parts:
        parts.append("".join(literal))
    return Template(text, tuple(parts))


def _check_name(name: str) -> None:
    if name == "":
        raise TemplateError("empty placeholder '{}' (write '{{}}' for literal braces)")
    if name in BUILTIN_PLACEHOLDERS or name in UDEV_PLACEHOLDERS or PROPERTY_NAME.match(name):
        return
    raise TemplateError(
        f"unknown placeholder {{{name}}}: use a built-in name ({', '.join(BUILTIN_PLACEHOLDERS)}; "
        f"kind: udev: {', '.join(UDEV_PLACEHOLDERS)}) or a udev property / sysfs attribute name "
        "(letters, digits and '_')"
    )


def placeholder_problem(name: str, kind: str) -> str | None:
    """Why a rule of ``kind`` cannot use placeholder ``name`` (a built-in of another kind), or None."""
    if kind == "udev" and name in USB_ONLY_PLACEHOLDERS:
        return (
            f"{{{name}}} is a USB placeholder and this is a 'kind: udev' rule "
            f"(its built-ins: {', '.join(UDEV_PLACEHOLDERS)})"
        )
    if kind != "udev" and name in UDEV_PLACEHOLDERS and name not in BUILTIN_PLACEHOLDERS and "." in name:
        return f"{{{name}}} is a 'kind: udev' placeholder and this is a 'kind: {kind}' rule"
    return None


class DeviceFacts:
    """Values that placeholders stand for on one device (and the device id, once it is known)."""

    __slots__ = ("device", "device_id")

    def __init__(self, device: Device, device_id: str | None = None) -> None:
        self.device = device
        self.device_id = device_id

    def lookup(self, name: str) -> str | None:
        """The value of placeholder ``name``, or None when the device has none."""
        device = self.device
        if isinstance(device, UsbDevice):
            if name in BUILTIN_PLACEHOLDERS:
                return self._builtin(device, name)
        elif isinstance(device, NodeDevice):
            if name in UDEV_PLACEHOLDERS:
                return self._udev_builtin(device, name)
        elif name in ("id", "serial"):  # a declared device: its ID, and a serial its values may give
            return device.device_id if name == "id" else device.serial
        value = device.properties.get(name)  # a declared device's values are its properties
        if value is None:
            value = device.attributes.get(name)
        return value

    def _udev_builtin(self, device: NodeDevice, name: str) -> str | None:
        if name == "id":
            return self.device_id
        if name.startswith("pci."):
            return _pci_value(device, name.removeprefix("pci."))
        if name == "devnode":
            return device.device_node
        if name == "port":
            return device.port_path
        value: str | None = getattr(device, name)  # sys_name, subsystem, serial, driver
        return value

    def _builtin(self, device: UsbDevice, name: str) -> str | None:
        if name == "serial":
            return device.serial
        if name == "vendor_id":
            return f"{device.vendor_id:04x}"
        if name == "product_id":
            return f"{device.product_id:04x}"
        if name == "manufacturer":
            return device.manufacturer
        if name == "product":
            return device.product
        if name == "port":
            return device.port_path
        if name == "sys_name":
            return device.sys_name
        if name == "busnum":
            return str(device.busnum)
        if name == "devnum":
            return str(device.devnum)
        return self.device_id  # "id"


def _pci_value(device: NodeDevice, key: str) -> str | None:
    """A ``pci.<key>`` placeholder's value from the nearest PCI parent: ids as 4 hex digits, class as 6."""
    parent = nearest_parent(device, (PCI_SUBSYSTEM,))
    if parent is None:
        return None
    if key == "slot":
        return parent.sys_name
    number = sysfs_hex(parent.attributes.get("class" if key == "class" else PCI_ATTRIBUTES[key]))
    if number is None:
        return None
    return f"{number:06x}" if key == "class" else f"{number:04x}"
