"""What every device source offers the event loop and the CLI: the DeviceSource interface and SourceError.

``drain()`` may raise :class:`EventsLostError` (events were lost: list everything again) and any
source call may raise another :class:`SourceError` or ``OSError`` when the machine says no; those
are expected conditions for the event loop, not bugs.

Which non-USB devices a source lists is :data:`NodeSubsystems`, set with ``set_node_subsystems``:
``None`` lists none (USB only, the default), a set of subsystem names lists devices with a node of
those subsystems, :data:`ALL_NODE_SUBSYSTEMS` lists every device with a node. The loop sets it from
the rules (only ``kind: udev`` rules need any), the CLI from ``--all``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, Protocol, TypeAlias

from discovery.model import Device

ALL_NODE_SUBSYSTEMS: Literal["all"] = "all"
NodeSubsystems: TypeAlias = frozenset[str] | Literal["all"] | None


def to_node_subsystems(wanted: Iterable[str] | str | None) -> NodeSubsystems:
    """The canonical form: None and an empty collection mean none, ``"all"`` means all, names a frozenset."""
    if wanted is None:
        return None
    if isinstance(wanted, str):
        if wanted != ALL_NODE_SUBSYSTEMS:
            raise ValueError(f"node subsystems: {wanted!r} is neither 'all' nor a collection of names")
        return ALL_NODE_SUBSYSTEMS
    names = frozenset(wanted)
    return names or None


def wants_subsystem(wanted: NodeSubsystems, subsystem: str | None) -> bool:
    """Does ``wanted`` take devices of ``subsystem``?"""
    if wanted is None or not subsystem:
        return False
    return wanted == ALL_NODE_SUBSYSTEMS or subsystem in wanted


class SourceError(Exception):
    """A device source failed: it cannot list devices on this machine, or cannot read or reset one.

    The one base of every source's errors, so callers (the CLI's inventory, Reserve) handle a source
    failure without knowing which library (pyudev, pyusb) is behind it.
    """


class EventsLostError(SourceError):
    """The source's event queue overflowed and some events were lost (udev: ENOBUFS on the monitor).

    Not a failure of the source: it still works, but which devices changed is unknown, so the caller
    lists every device again.
    """


class SourceEvent(Protocol):
    """What the loop reads from an event (``discovery.sources.udev.UdevEvent`` has it).

    ``device_sys_path`` is the device table's key the event belongs to: the usb_device it is (or is
    below), or a listed non-USB node device itself; None when the event concerns no listed device.
    """

    @property
    def action(self) -> str: ...
    @property
    def sys_path(self) -> str: ...
    @property
    def devtype(self) -> str | None: ...
    @property
    def usb_sys_path(self) -> str | None: ...
    @property
    def device_sys_path(self) -> str | None: ...


class DeviceSource(Protocol):
    """Where devices come from: udev (events) or the pyusb fallback (fileno() is None: rescan).

    ``devices_at`` is ``device_at`` for each path, in order; a source may read a burst in one pass.
    ``set_node_subsystems`` says which non-USB devices to list from now on (see the module
    docstring); it returns True when that changed, so the caller lists everything again.
    """

    name: str

    def start(self) -> None: ...
    def enumerate(self) -> list[Device]: ...
    def device_at(self, sys_path: str) -> Device | None: ...
    def devices_at(self, sys_paths: Sequence[str]) -> list[Device | None]: ...
    def set_node_subsystems(self, wanted: NodeSubsystems) -> bool: ...
    def fileno(self) -> int | None: ...
    def drain(self) -> Sequence[SourceEvent]: ...
    def close(self) -> None: ...
