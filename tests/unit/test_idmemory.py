"""The ID memory: a unit gets back the ID it had, twins sharing a serial included, whatever the order of discovery."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.state.idmemory import IdMemory, IdMemoryError
from discovery.model import UsbDevice
from discovery.state.table import DeviceTable
from rules_factories import make_device

SERIAL_ID = "usb-18d1-4ee7-SAME"


def unit(port: int, serial: str | None = "SAME", devnum: int | None = None) -> UsbDevice:
    """A Pixel-like unit on port 1-<port>; two units with the same serial are twins."""
    return make_device(sys_path=f"/sys/devices/pci0000:00/0000:00:14.0/usb1/1-{port}", sys_name=f"1-{port}",
                       port_path=f"pci-0000:00:14.0-usb-0:{port}", serial=serial, devnum=devnum or 10 + port)


def port_id(port: int) -> str:
    return f"usb-18d1-4ee7-port-00:14.0-{port}"


def ids_after_start(memory: IdMemory, devices: list[UsbDevice]) -> dict[int, str]:
    """A plugin start: one enumeration (in the given order) into a fresh table with this memory."""
    table = DeviceTable(unplugged_grace=60.0, node_check=lambda path: None, memory=memory)
    table.replace_all(devices, 0.0)
    return {int(device.sys_name.split("-")[1]): dev_id for dev_id, device in table.attached()}


def test_idmemory_twins_keep_their_ids_across_a_restart_in_any_order() -> None:
    """Two units with one serial keep serial ID and port ID after a restart, whatever order udev lists them in."""
    memory = IdMemory()
    running = DeviceTable(unplugged_grace=60.0, node_check=lambda path: None, memory=memory)
    first, second = unit(2), unit(3)
    running.update(first.sys_path, first, 1.0)
    running.update(second.sys_path, second, 2.0)
    assert {running.id_of(first.sys_path), running.id_of(second.sys_path)} == {SERIAL_ID, port_id(3)}
    saved = json.loads(json.dumps(memory.to_json()))
    for order in itertools.permutations([unit(2), unit(3)]):
        restored, skipped = IdMemory.from_json(saved)
        assert skipped == 0
        assert ids_after_start(restored, list(order)) == {2: SERIAL_ID, 3: port_id(3)}


def test_idmemory_without_memory_twins_both_get_port_ids() -> None:
    """What happens when the state is deleted: two twins attached at start both get port IDs."""
    assert ids_after_start(IdMemory(), [unit(2), unit(3)]) == {2: port_id(2), 3: port_id(3)}


def test_idmemory_port_id_twin_keeps_it_when_alone() -> None:
    """The twin that got a port ID keeps it after a restart even when the other unit is not plugged in."""
    memory = IdMemory()
    ids_after_start(memory, [unit(2)])
    table = DeviceTable(unplugged_grace=60.0, node_check=lambda path: None, memory=memory)
    table.replace_all([unit(2)], 0.0)
    table.update(unit(3).sys_path, unit(3), 1.0)
    assert table.id_of(unit(3).sys_path) == port_id(3)
    assert ids_after_start(IdMemory.from_json(memory.to_json())[0], [unit(3)]) == {3: port_id(3)}


def test_idmemory_unique_serial_follows_the_device_to_another_port() -> None:
    """A unit whose serial is its own keeps its serial ID on any port, and the old port is forgotten."""
    memory = IdMemory()
    assert ids_after_start(memory, [unit(2, serial="ONLY")]) == {2: "usb-18d1-4ee7-ONLY"}
    assert ids_after_start(memory, [unit(5, serial="ONLY")]) == {5: "usb-18d1-4ee7-ONLY"}
    assert [entry["port"] for entry in memory.to_json()["ids"]] == ["pci-0000:00:14.0-usb-0:5"]


def test_idmemory_junk_serials_are_not_remembered() -> None:
    """A unit with no usable serial is known by its port anyway: nothing to remember."""
    memory = IdMemory()
    assert ids_after_start(memory, [unit(2, serial="0001"), unit(3, serial=None)]) == {2: port_id(2), 3: port_id(3)}
    assert len(memory) == 0 and not memory.changed


def test_idmemory_marks_changes_only_for_new_assignments() -> None:
    """A device getting the ID it already had is no change: no write per replug."""
    memory = IdMemory()
    ids_after_start(memory, [unit(2, serial="ONLY")])
    assert memory.changed
    memory.changed = False
    ids_after_start(memory, [unit(2, serial="ONLY")])
    assert not memory.changed


def test_idmemory_forgets_the_oldest_past_its_limit() -> None:
    """Past the limit the oldest assignment goes first; the memory never grows without bound."""
    memory = IdMemory(limit=2)
    for port in (2, 3, 4):
        memory.remember(unit(port, serial=f"S{port}"), f"id-{port}")
    assert [e["id"] for e in memory.to_json()["ids"]] == ["id-3", "id-4"]


@pytest.mark.parametrize(
    "data",
    [None, [], {"version": 2, "ids": []}, {"version": 1}, {"version": 1, "ids": {}}, "ids"],
    ids=["null", "list", "future-version", "no-ids", "ids-not-a-list", "text"],
)
def test_idmemory_refuses_what_is_not_a_saved_memory(data: object) -> None:
    """Anything but a version-1 mapping with an ids list is an IdMemoryError (the store sets it aside)."""
    with pytest.raises(IdMemoryError):
        IdMemory.from_json(data)


def test_idmemory_skips_unusable_entries_and_keeps_the_rest() -> None:
    """Entries with missing or wrong fields are counted and left out; good ones stay."""
    good = {"vendor_id": "18d1", "product_id": "4ee7", "serial": "A", "port": "p", "id": "usb-x"}
    data = {"version": 1, "ids": [good, {"vendor_id": "zz"}, 7, {**good, "id": ""}, {**good, "serial": None}]}
    memory, skipped = IdMemory.from_json(data)
    assert (len(memory), skipped) == (1, 4)


@settings(max_examples=200, deadline=None)
@given(data=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                         lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                      max_size=4), max_leaves=30))
def test_idmemory_any_json_is_a_memory_or_an_idmemoryerror(data: object) -> None:
    """Whatever JSON the file holds, reading it gives a memory or IdMemoryError, never another exception."""
    for candidate in (data, {"version": 1, "ids": data if isinstance(data, list) else [data]}):
        try:
            IdMemory.from_json(candidate)
        except IdMemoryError:
            continue
