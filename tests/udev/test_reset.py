"""Reset before hand-over: the reservation is planned from the device as it is after the reset."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from discovery.fake import usb_devices
from discovery.reservation import DeviceUnavailableError, plan_reservation
from discovery.fake.testbed import Testbed
from discovery.sources.usbfs import UsbResetError
from plugin.config import config_from_mapping
from plugin.runtime import Runtime

RULES = """\
rules:
  - match: {vendor_id: 2341}
    group: {vendor: arduino, type: board, name: uno}
    children: [tty]
    reset: true
"""


@pytest.fixture
def runtime(testbed: Testbed, tmp_path: Path) -> Runtime:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    rt = Runtime()
    rt.configure(config_from_mapping({"rules_file": str(rules), "debounce": "20ms"}))
    yield rt
    rt.stop()


def test_reset_then_plan_from_the_device_after_it(runtime: Runtime, testbed: Testbed, mocker: MockerFixture) -> None:
    """The USB reset (pyusb, mocked at its edge) rebinds the driver; the plan still holds the new tty."""
    handles = [testbed.plug(usb_devices.make_arduino_uno())]
    discovery = runtime.discovery()
    (dev_id,) = discovery.current().devices

    def fake_reset(busnum: int, devnum: int) -> None:
        # A reset that re-enumerates: the board leaves and comes back, its tty renumbered.
        testbed.unplug(handles.pop())
        handles.append(testbed.plug(usb_devices.make_arduino_uno(tty=1)))

    reset = mocker.patch("discovery.sources.usbfs.reset_device", side_effect=fake_reset)
    snapshot = runtime.snapshot_for_reservation([dev_id])
    reset.assert_called_once_with(1, 7)
    plan = plan_reservation([dev_id], snapshot)
    assert [d.host_path for d in plan.devices] == ["/dev/bus/usb/001/007", "/dev/ttyACM1"]


def test_reset_failure_refuses_the_reservation(runtime: Runtime, testbed: Testbed, mocker: MockerFixture) -> None:
    """A device that cannot be reset is not handed over: FAILED_PRECONDITION naming it."""
    testbed.plug(usb_devices.make_arduino_uno())
    (dev_id,) = runtime.discovery().current().devices
    mocker.patch("discovery.sources.usbfs.reset_device", side_effect=UsbResetError("no permission"))
    with pytest.raises(DeviceUnavailableError, match=f"{dev_id} could not be reset: no permission"):
        runtime.snapshot_for_reservation([dev_id])
