"""Process tier: device IDs survive a plugin restart, two units sharing a serial included, whatever the plug order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.fake import usb_devices
from discovery.fake.testbed import Plugged, Testbed
from plugin.config import encode_config
from plugin.host import FingerprintStream, PluginProcess
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


class Plugins:
    """Starts plugins one after the other in one world, all keeping their IDs in one state directory."""

    def __init__(self, testbed: Testbed, tmp_path: Path) -> None:
        self.testbed = testbed
        self.rules = tmp_path / "rules.yaml"
        self.rules.write_text(RULES)
        self.state = tmp_path / "state"
        self.running: PluginProcess | None = None

    def start(self) -> FingerprintStream:
        self.running = PluginProcess.start(env_extra=self.testbed.env())
        self.running.set_config(encode_config({"rules_file": str(self.rules), "debounce": "50ms",
                                               "state_dir": str(self.state)}))
        return self.running.fingerprint()

    def stop(self) -> None:
        assert self.running is not None
        running, self.running = self.running, None
        with running:  # closes its pipes on the way out
            assert running.shutdown() == 0
            assert not running.bad_stderr_lines

    def close(self) -> None:
        if self.running is not None:
            self.running.__exit__(None, None, None)


@pytest.fixture
def plugins(testbed: Testbed, tmp_path: Path) -> Iterator[Plugins]:
    keeper = Plugins(testbed, tmp_path)
    try:
        yield keeper
    finally:
        keeper.close()


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
    stream = plugins.start()
    handles: dict[str, Plugged] = {}
    for tty, port in enumerate(order):
        handles[port] = plugins.testbed.plug(twin(port, tty))
        want = {expected[p] for p in order[: tty + 1]}
        assert stream.wait_for(lambda m, want=want: ids_of(m) == want, WAIT_S) is not None, f"after plugging {port}"
    plugins.stop()

    stream = plugins.start()  # both attached while the plugin starts: one enumeration
    first = stream.next_message(WAIT_S)
    assert first is not None and ids_of(first) == set(expected.values())
    plugins.stop()

    for handle in handles.values():
        plugins.testbed.unplug(handle)
    stream = plugins.start()
    for tty, port in enumerate(reversed(order)):
        plugins.testbed.plug(twin(port, tty))
        want = {expected[p] for p in list(reversed(order))[: tty + 1]}
        assert stream.wait_for(lambda m, want=want: ids_of(m) == want, WAIT_S) is not None, f"after plugging {port}"
    plugins.stop()


def test_deleted_state_gives_twins_port_ids(plugins: Plugins) -> None:
    """With the state directory deleted, two twins attached at start both get port IDs (as documented)."""
    plugins.testbed.plug(twin("1-2", 0))
    plugins.testbed.plug(twin("1-3", 1))
    first = plugins.start().next_message(WAIT_S)
    assert first is not None and ids_of(first) == {port_id("1-2"), port_id("1-3")}
    plugins.stop()
