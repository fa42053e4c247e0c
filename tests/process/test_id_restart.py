"""Process tier: device IDs survive a plugin restart, two units sharing a serial included, whatever the plug order."""

from __future__ import annotations

import pytest
from process_support import Plugins

from discovery.fake import usb_devices
from discovery.fake.testbed import Plugged
from proto import device_pb2

WAIT_S = 10.0
RULES = "rules:\n  - match: {vendor_id: '0403'}\n    group: {vendor: ftdi, type: serial, name: ft232r}\n"
SERIAL_ID = "usb-0403-6001-A50285BI"


def twin(port: str, tty: int) -> usb_devices.FakeUsbDevice:
    """An FT232R reporting serial A50285BI, like every unit of a batch with one burned-in serial."""
    return usb_devices.make_ftdi(tty=tty, port=port, devnum=20 + tty)


def port_id(port: str) -> str:
    return f"usb-0403-6001-port-00:14.0-{port.split('-', 1)[1]}"


def ids_of(message: device_pb2.FingerprintResponse) -> set[str]:
    return {d.ID for g in message.device_group for d in g.devices if d.healthy}


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (["1-2", "1-3"], {"1-2": SERIAL_ID, "1-3": port_id("1-3")}),
        (["1-3", "1-2"], {"1-3": SERIAL_ID, "1-2": port_id("1-2")}),
    ],
    ids=["1-2-first", "1-3-first"],
)
def test_twins_keep_their_ids_across_restarts(plugins: Plugins, order: list[str], expected: dict[str, str]) -> None:
    """Two units sharing a serial keep serial ID and port ID through restarts, whatever the plug order."""
    # Restarted with both attached (one enumeration), then with none attached and plugged in reverse.
    stream = plugins.start(RULES)
    handles: dict[str, Plugged] = {}
    for tty, port in enumerate(order):
        handles[port] = plugins.testbed.plug(twin(port, tty))
        want = {expected[p] for p in order[: tty + 1]}
        assert stream.wait_for(lambda m, want=want: ids_of(m) == want, WAIT_S) is not None, f"after plugging {port}"
    plugins.stop()

    stream = plugins.start(RULES)  # both attached while the plugin starts: one enumeration
    first = stream.next_message(WAIT_S)
    assert first is not None and ids_of(first) == set(expected.values())
    plugins.stop()

    for handle in handles.values():
        plugins.testbed.unplug(handle)
    stream = plugins.start(RULES)
    for tty, port in enumerate(reversed(order)):
        plugins.testbed.plug(twin(port, tty))
        want = {expected[p] for p in list(reversed(order))[: tty + 1]}
        assert stream.wait_for(lambda m, want=want: ids_of(m) == want, WAIT_S) is not None, f"after plugging {port}"
    plugins.stop()


def test_deleted_state_gives_twins_port_ids(plugins: Plugins) -> None:
    """With the state directory deleted, two twins attached at start both get port IDs (as documented)."""
    plugins.testbed.plug(twin("1-2", 0))
    plugins.testbed.plug(twin("1-3", 1))
    first = plugins.start(RULES).next_message(WAIT_S)
    assert first is not None and ids_of(first) == {port_id("1-2"), port_id("1-3")}
    plugins.stop()
