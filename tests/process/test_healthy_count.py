"""Process tier: every group's healthy_count attribute follows its healthy devices, and nothing else flaps.

Nomad re-checks a waiting job only when a node's class changes, and the class hashes group
attributes but not device health; this attribute is what makes a device turning usable visible.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.fake import usb_devices
from discovery.fake.testbed import Testbed
from plugin.config import encode_config
from plugin.host import FingerprintStream, PluginProcess
from proto import device_pb2

pytestmark = pytest.mark.process

WAIT_S = 10.0
GROUP = "espressif/board/esp32-devkit"


def rules(ready_dir: Path, ready_name: str = "ready-{serial}") -> str:
    return f"""\
rules:
  - name: esp32 devkits, usable once flashed
    match: {{vendor_id: 10c4, product_id: ea60}}
    group: {{vendor: espressif, type: board, name: esp32-devkit}}
    health: {{command: [/usr/bin/test, -e, "{ready_dir}/{ready_name}"], interval: 1s, timeout: 1s}}
"""


def board(serial: str, port: str, tty: int) -> usb_devices.FakeUsbDevice:
    return usb_devices.make_cp210x(tty=tty, serial=serial, port=port, devnum=20 + tty)


def summary(message: device_pb2.FingerprintResponse) -> tuple[int, int, bytes] | None:
    """(devices, healthy devices, serialized attributes without healthy_count) of the group, if present."""
    for group in message.device_group:
        if f"{group.vendor}/{group.device_type}/{group.device_name}" == GROUP:
            others = b"".join(
                name.encode() + group.attributes[name].SerializeToString(deterministic=True)
                for name in sorted(group.attributes)
                if name != "healthy_count"
            )
            return len(group.devices), sum(d.healthy for d in group.devices), others
    return None


class Recorder:
    """Reads the stream and checks the invariant on every message, not only on the ones waited for."""

    def __init__(self, stream: FingerprintStream) -> None:
        self.stream = stream
        self.messages: list[device_pb2.FingerprintResponse] = []

    def wait(self, devices: int, healthy: int) -> device_pb2.FingerprintResponse:
        def seen(message: device_pb2.FingerprintResponse) -> bool:
            self.messages.append(message)
            got = summary(message)
            return got is not None and got[:2] == (devices, healthy)

        message = self.stream.wait_for(seen, WAIT_S)
        assert message is not None, f"no message with {devices} devices, {healthy} healthy: {self.messages[-1:]}"
        return message


@pytest.fixture
def plugin(testbed: Testbed, tmp_path: Path) -> Iterator[PluginProcess]:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(rules(tmp_path))
    with PluginProcess.start(env_extra=testbed.env()) as proc:
        proc.set_config(encode_config({"rules_file": str(rules_file), "debounce": "50ms"}))
        yield proc
        assert proc.shutdown() == 0
        assert not proc.bad_stderr_lines, proc.bad_stderr_lines


def healthy_count(message: device_pb2.FingerprintResponse) -> int:
    (group,) = [g for g in message.device_group if g.device_name == "esp32-devkit"]
    attribute = group.attributes["healthy_count"]
    assert attribute.WhichOneof("value") == "int_val" and attribute.unit == ""
    return attribute.int_val


def test_healthy_count_follows_plug_unplug_health_and_reload(
    plugin: PluginProcess, testbed: Testbed, tmp_path: Path
) -> None:
    """healthy_count equals the healthy devices in every message; the other attributes never change."""
    (tmp_path / "ready-BOARDA").touch()
    recorder = Recorder(plugin.fingerprint())

    a = testbed.plug(board("BOARDA", "1-1", 1))
    recorder.wait(devices=1, healthy=1)
    testbed.plug(board("BOARDB", "1-2", 2))  # its check fails: not flashed yet
    recorder.wait(devices=2, healthy=1)
    (tmp_path / "ready-BOARDB").touch()  # the check starts passing
    recorder.wait(devices=2, healthy=2)
    testbed.unplug(a)
    recorder.wait(devices=2, healthy=1)  # listed as unplugged, not healthy
    (tmp_path / "rules.yaml").write_text(rules(tmp_path, "flashed-{serial}"))  # a reload fails every check
    recorder.wait(devices=2, healthy=0)

    seen = [(summary(m), healthy_count(m)) for m in recorder.messages if summary(m) is not None]
    assert [count for (_, healthy, _), count in seen if healthy != count] == []
    assert len({others for (_, _, others), _ in seen}) == 1, "an attribute other than healthy_count changed"
    assert [healthy for (_, healthy, _), _ in seen][-1] == 0
