"""Conditions of ``kind: udev`` rules: one pure test per condition on a :class:`NodeDevice`, as udev's own rules see it.

``subsystem`` is the device's own (udev's ``SUBSYSTEM``), ``kernel`` its kernel name (``KERNEL``),
``devnode`` its node or one of its links (``NAME``/``SYMLINK``), ``attributes`` its sysfs attributes
(``ATTR{}``), ``parent_attributes`` the attributes of the device or of one of its parents, all keys
on one device (``ATTRS{}``), ``driver`` the driver of the device or of any parent (``DRIVERS``).
``pci`` and ``platform`` look at the nearest PCI or platform (or amba) parent. Each condition says
what it wanted and what the device has, for ``explain``, like the USB ones in ``conditions``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from discovery.model import NodeDevice, Parent
from discovery.rules.conditions import Condition, Glob, GlobsCondition, any_glob, globs_cover, globs_text, hex_text, hexes

PCI_SUBSYSTEM = "pci"
PLATFORM_SUBSYSTEMS = ("platform", "amba")
# sysfs attribute of a PCI device behind each ``pci:`` id key.
PCI_ATTRIBUTES = {
    "vendor_id": "vendor",
    "device_id": "device",
    "subsystem_vendor_id": "subsystem_vendor",
    "subsystem_device_id": "subsystem_device",
}


def nearest_parent(device: NodeDevice, subsystems: tuple[str, ...]) -> Parent | None:
    """The closest ancestor in one of ``subsystems`` (``parents`` is nearest first), or None."""
    for parent in device.parents:
        if parent.subsystem in subsystems:
            return parent
    return None


def sysfs_hex(text: str | None) -> int | None:
    """A sysfs id such as ``0x1415`` (or ``1415``) as an int; None when absent or not hex."""
    if text is None:
        return None
    try:
        return int(text.strip(), 16)
    except ValueError:
        return None


def platform_names(parent: Parent) -> list[str]:
    """The platform parent's kernel name, then its devicetree compatible strings when sysfs has them."""
    names = [parent.sys_name]
    for key in ("of_node/compatible", "compatible"):
        value = parent.attributes.get(key)
        if value:
            names.extend(part for part in value.replace("\x00", " ").split() if part)
    return names


@dataclass(frozen=True, slots=True)
class NodeSubsystemCondition(Condition[NodeDevice]):
    """The device's own subsystem is one of ``names`` (udev's SUBSYSTEM)."""

    field: str
    names: frozenset[str]

    @property
    def expected(self) -> str:
        return " | ".join(sorted(self.names))

    def test(self, device: NodeDevice) -> bool:
        return device.subsystem in self.names

    def actual(self, device: NodeDevice) -> str:
        return repr(device.subsystem)

    def covers(self, other: Condition[Any]) -> bool:
        return isinstance(other, NodeSubsystemCondition) and other.names <= self.names


@dataclass(frozen=True, slots=True)
class AttributeCondition(GlobsCondition[NodeDevice]):
    """The device's own sysfs attribute ``name`` matches one of ``globs`` (udev's ATTR{name})."""

    field: str
    name: str
    globs: tuple[Glob, ...]

    @property
    def target(self) -> str:
        return self.name

    def candidates(self, device: NodeDevice) -> Iterable[str | None]:
        return [device.attributes.get(self.name)]

    def actual(self, device: NodeDevice) -> str:
        value = device.attributes.get(self.name)
        return "(no such attribute)" if value is None else repr(value)


@dataclass(frozen=True, slots=True)
class ParentAttributesCondition(Condition[NodeDevice]):
    """Every (name, globs) pair holds on one device of the chain: the device itself or one parent (udev's ATTRS{}).

    As in udev, the keys of one rule must all match on the same device: ``{vendor: 0x1415, device:
    0xc158}`` does not match a vendor on one parent and a device id on another.
    """

    field: str
    wanted: tuple[tuple[str, tuple[Glob, ...]], ...]

    @property
    def expected(self) -> str:
        return ", ".join(f"{name}={globs_text(globs)}" for name, globs in self.wanted) + " on one device"

    def _holds(self, attributes: Any) -> bool:
        return all(any_glob(globs, attributes.get(name)) for name, globs in self.wanted)

    def test(self, device: NodeDevice) -> bool:
        if self._holds(device.attributes):
            return True
        return any(self._holds(parent.attributes) for parent in device.parents)

    def actual(self, device: NodeDevice) -> str:
        names = [name for name, _ in self.wanted]
        chain = [(device.sys_name, device.attributes)] + [(p.sys_name, p.attributes) for p in device.parents]
        for sys_name, attributes in chain:
            if self._holds(attributes):
                return f"on {sys_name}: " + ", ".join(f"{n}={attributes.get(n)!r}" for n in names)
        # None holds: show the devices that have any of the attributes, so the near misses are visible.
        seen = [
            f"{sys_name}: " + ", ".join(f"{n}={attributes[n]!r}" for n in names if n in attributes)
            for sys_name, attributes in chain
            if any(n in attributes for n in names)
        ]
        return "; ".join(seen) if seen else "(no device in the chain has these attributes)"

    def covers(self, other: Condition[Any]) -> bool:
        if not isinstance(other, ParentAttributesCondition):
            return False
        theirs = dict(other.wanted)
        # Conservative: every key of mine is asked by the other with narrower globs.
        return all(name in theirs and globs_cover(globs, theirs[name]) for name, globs in self.wanted)


@dataclass(frozen=True, slots=True)
class PciIdCondition(Condition[NodeDevice]):
    """An id of the nearest PCI parent (``vendor_id`` is sysfs ``vendor``, ...) is one of ``values``."""

    field: str
    key: str  # a key of PCI_ATTRIBUTES
    values: frozenset[int]

    @property
    def expected(self) -> str:
        return hexes(self.values, 4)

    def _value(self, device: NodeDevice) -> int | None:
        parent = nearest_parent(device, (PCI_SUBSYSTEM,))
        return None if parent is None else sysfs_hex(parent.attributes.get(PCI_ATTRIBUTES[self.key]))

    def test(self, device: NodeDevice) -> bool:
        return self._value(device) in self.values

    def actual(self, device: NodeDevice) -> str:
        if nearest_parent(device, (PCI_SUBSYSTEM,)) is None:
            return "(no PCI parent)"
        value = self._value(device)
        return f"(no {PCI_ATTRIBUTES[self.key]})" if value is None else hex_text(value, 4)

    def covers(self, other: Condition[Any]) -> bool:
        return isinstance(other, PciIdCondition) and other.key == self.key and other.values <= self.values


@dataclass(frozen=True, slots=True)
class PciClassCondition(Condition[NodeDevice]):
    """The nearest PCI parent's class code starts with one of ``prefixes`` (digits, value).

    Written as lspci prints it: ``0x07`` a base class, ``0x0700`` class and subclass (serial
    controller), ``0x070002`` with the programming interface too. sysfs holds all six digits.
    """

    field: str
    prefixes: frozenset[tuple[int, int]]  # (hex digits given: 2, 4 or 6; value)

    @property
    def expected(self) -> str:
        return " | ".join(f"0x{value:0{digits}x}" for digits, value in sorted(self.prefixes))

    def test(self, device: NodeDevice) -> bool:
        parent = nearest_parent(device, (PCI_SUBSYSTEM,))
        code = None if parent is None else sysfs_hex(parent.attributes.get("class"))
        if code is None:
            return False
        return any(code >> (4 * (6 - digits)) == value for digits, value in self.prefixes)

    def actual(self, device: NodeDevice) -> str:
        parent = nearest_parent(device, (PCI_SUBSYSTEM,))
        if parent is None:
            return "(no PCI parent)"
        code = sysfs_hex(parent.attributes.get("class"))
        return "(no class)" if code is None else f"0x{code:06x}"

    def covers(self, other: Condition[Any]) -> bool:
        if not isinstance(other, PciClassCondition):
            return False
        return all(
            any(digits <= d and v >> (4 * (d - digits)) == value for digits, value in self.prefixes)
            for d, v in other.prefixes
        )


@dataclass(frozen=True, slots=True)
class KernelCondition(GlobsCondition[NodeDevice]):
    """The kernel name (``ttyAMA0``) matches one of ``globs`` (udev's KERNEL)."""

    field: str
    globs: tuple[Glob, ...]

    def candidates(self, device: NodeDevice) -> Iterable[str | None]:
        return [device.sys_name]

    def actual(self, device: NodeDevice) -> str:
        return repr(device.sys_name)


@dataclass(frozen=True, slots=True)
class DevnodeCondition(GlobsCondition[NodeDevice]):
    """The device node, or one of its udev links (``/dev/serial0``), matches one of ``globs``."""

    field: str
    globs: tuple[Glob, ...]

    def candidates(self, device: NodeDevice) -> Iterable[str | None]:
        return [device.device_node, *device.devlinks]

    def actual(self, device: NodeDevice) -> str:
        if device.device_node is None:
            return "(no device node)"
        if not device.devlinks:
            return repr(device.device_node)
        return f"{device.device_node!r} (links {', '.join(device.devlinks)})"


@dataclass(frozen=True, slots=True)
class NodePortCondition(GlobsCondition[NodeDevice]):
    """The physical place (udev's ID_PATH, else the nearest bus parent: ``platform-fe201000.serial``) matches."""

    field: str
    globs: tuple[Glob, ...]

    def candidates(self, device: NodeDevice) -> Iterable[str | None]:
        return [device.port_path]

    def actual(self, device: NodeDevice) -> str:
        return repr(device.port_path)


@dataclass(frozen=True, slots=True)
class NodeDriverCondition(GlobsCondition[NodeDevice]):
    """The driver of the device or of any parent matches one of ``globs`` (udev's DRIVERS)."""

    field: str
    globs: tuple[Glob, ...]

    def candidates(self, device: NodeDevice) -> Iterable[str | None]:
        return [device.driver, *(parent.driver for parent in device.parents)]

    def actual(self, device: NodeDevice) -> str:
        bound = list(dict.fromkeys(driver for driver in self.candidates(device) if driver))  # nearest first
        return ", ".join(bound) if bound else "(no driver bound)"


@dataclass(frozen=True, slots=True)
class PciSlotCondition(GlobsCondition[NodeDevice]):
    """The nearest PCI parent's address (``0000:03:00.0``) matches one of ``globs``."""

    field: str
    globs: tuple[Glob, ...]

    def candidates(self, device: NodeDevice) -> Iterable[str | None]:
        parent = nearest_parent(device, (PCI_SUBSYSTEM,))
        return [] if parent is None else [parent.sys_name]

    def actual(self, device: NodeDevice) -> str:
        parent = nearest_parent(device, (PCI_SUBSYSTEM,))
        return "(no PCI parent)" if parent is None else repr(parent.sys_name)


@dataclass(frozen=True, slots=True)
class PlatformCondition(GlobsCondition[NodeDevice]):
    """The nearest platform or amba parent's name (``fe201000.serial``) or compatible string matches a glob."""

    field: str
    globs: tuple[Glob, ...]

    def candidates(self, device: NodeDevice) -> Iterable[str | None]:
        parent = nearest_parent(device, PLATFORM_SUBSYSTEMS)
        return [] if parent is None else list(platform_names(parent))

    def actual(self, device: NodeDevice) -> str:
        parent = nearest_parent(device, PLATFORM_SUBSYSTEMS)
        if parent is None:
            return "(no platform parent)"
        names = platform_names(parent)
        extra = f" (compatible {', '.join(names[1:])})" if len(names) > 1 else ""
        return repr(parent.sys_name) + extra
