"""Which ID each device was given, remembered so that it gets the same one back after a restart.

Most IDs need no memory: a serial that tells units apart gives the same ID every time, and a port
ID follows the port. Two units that report the same serial are the exception: the one the plugin
saw first holds the serial ID and the other a port ID, so without memory a restart (which sees both
at once) gave both port IDs, and the unit a running allocation held changed its ID. The memory
keeps, for each device with a real serial, the ID it got, keyed by what tells it apart from a twin:
vendor, product, serial and port for USB; subsystem, serial and port for other udev devices (a
declared device's ID is the operator's, nothing to remember). ``discovery.state.idstore`` saves it between runs.

An ID belongs to one key at a time: giving it to a device elsewhere (a unique serial moved to
another port) forgets the old place. At most ``MAX_REMEMBERED`` devices are kept; past that the
ones given an ID longest ago are forgotten first (and simply get their computed ID again).

Pure data, no I/O: the table consults and updates it, the store reads and writes it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from discovery.state.ids import is_junk_serial
from discovery.model import Device, NodeDevice, UsbDevice

MAX_REMEMBERED = 10_000
FORMAT_VERSION = 1
UDEV = "udev"  # a saved entry's "kind" for udev devices; USB entries have no "kind" (the format predates it)

# USB: (vendor_id, product_id, serial, port path); udev: ("udev", subsystem, serial, port path, kernel name),
# the kernel name because the ports of one PCI card share a port path.
Key = tuple[int, int, str, str] | tuple[str, str, str, str, str]


def key_of(device: Device) -> Key | None:
    """What tells this unit apart from any other, twins included; None when there is nothing to remember
    (a junk serial: the ID is the port's, computed the same every time; a declared device)."""
    if is_junk_serial(device.serial):
        return None
    assert device.serial is not None
    if isinstance(device, UsbDevice):
        return (device.vendor_id, device.product_id, device.serial, device.port_path)
    if isinstance(device, NodeDevice):
        return (UDEV, device.subsystem, device.serial, device.port_path, device.sys_name)
    return None


class IdMemoryError(ValueError):
    """The saved form is not an ID memory at all (wrong shape or version)."""


class IdMemory:
    """Device key -> ID, oldest assignment first; ``changed`` until the store saved it."""

    def __init__(self, entries: Iterable[tuple[Key, str]] = (), *, limit: int = MAX_REMEMBERED) -> None:
        self._limit = limit
        self._by_key: OrderedDict[Key, str] = OrderedDict()
        self._by_id: dict[str, Key] = {}
        for key, dev_id in entries:
            self._put(key, dev_id)
        self.changed = False

    def __len__(self) -> int:
        return len(self._by_key)

    def recall(self, device: Device) -> str | None:
        """The ID this unit (same serial, same port) was given last, if it is remembered."""
        key = key_of(device)
        return self._by_key.get(key) if key is not None else None

    def remember(self, device: Device, dev_id: str) -> None:
        """``device`` now has ``dev_id``; any other place that had this ID forgets it."""
        key = key_of(device)
        if key is None:
            return
        if self._by_key.get(key) == dev_id:
            self._by_key.move_to_end(key)  # recently used; not worth a write on its own
            return
        self._put(key, dev_id)
        self.changed = True

    def _put(self, key: Key, dev_id: str) -> None:
        old_key = self._by_id.get(dev_id)
        if old_key is not None and old_key != key:
            del self._by_key[old_key]
        old_id = self._by_key.pop(key, None)
        if old_id is not None and self._by_id.get(old_id) == key:
            del self._by_id[old_id]
        self._by_key[key] = dev_id
        self._by_id[dev_id] = key
        while len(self._by_key) > self._limit:
            _, dropped = self._by_key.popitem(last=False)
            del self._by_id[dropped]

    # -- saved form -----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: readable by a person, oldest assignment first."""
        return {"version": FORMAT_VERSION, "ids": [_entry_json(key, dev_id) for key, dev_id in self._by_key.items()]}

    @classmethod
    def from_json(cls, data: object) -> tuple[IdMemory, int]:
        """(the memory, how many entries were unusable and left out); IdMemoryError when it is not one at all."""
        if not isinstance(data, Mapping) or data.get("version") != FORMAT_VERSION or not isinstance(
            data.get("ids"), list
        ):
            raise IdMemoryError(f"not an ID state of version {FORMAT_VERSION} (a mapping with 'version' and 'ids')")
        entries: list[tuple[Key, str]] = []
        skipped = 0
        for item in data["ids"]:
            try:
                key: Key
                if item.get("kind") == UDEV:
                    key = (UDEV, item["subsystem"], item["serial"], item["port"], item["kernel"])
                    if not all(isinstance(x, str) and x for x in (key[1], key[4])):
                        raise ValueError("no subsystem or kernel name")
                else:
                    key = (int(item["vendor_id"], 16), int(item["product_id"], 16), item["serial"], item["port"])
                dev_id = item["id"]
                if not all(isinstance(x, str) and x for x in (key[2], key[3], dev_id)):
                    raise ValueError("empty or not text")
            except (TypeError, KeyError, ValueError, AttributeError):
                skipped += 1
                continue
            entries.append((key, dev_id))
        return cls(entries), skipped


def _entry_json(key: Key, dev_id: str) -> dict[str, str]:
    if len(key) == 5:  # a udev device
        _, subsystem, serial, port, kernel = key
        return {"kind": UDEV, "subsystem": subsystem, "serial": serial, "port": port, "kernel": kernel, "id": dev_id}
    vendor_id, product_id, serial, port = key
    return {"vendor_id": f"{vendor_id:04x}", "product_id": f"{product_id:04x}", "serial": serial, "port": port,
            "id": dev_id}
