"""The pyusb fallback at its edge: usb.core.find results faked, conversion into UsbDevice real."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import usb.core
from pytest_mock import MockerFixture

from discovery.model import Interface
from discovery.sources.usbfs import UsbfsSource, UsbfsUnavailableError, UsbResetError, reset_device


@dataclass
class FakeIntf:
    """The descriptor fields pyusb's Interface has."""

    bInterfaceNumber: int
    bInterfaceClass: int
    bInterfaceSubClass: int = 0
    bInterfaceProtocol: int = 0
    bAlternateSetting: int = 0


@dataclass
class FakeConfig:
    """pyusb's Configuration: iterating gives the interfaces (every alternate setting)."""

    interfaces: list[FakeIntf]
    bConfigurationValue: int = 1

    def __iter__(self):
        return iter(self.interfaces)


@dataclass
class FakePyusbDevice:
    """The attributes of usb.core.Device that the fallback reads; iterating gives configurations."""

    idVendor: int
    idProduct: int
    bus: int
    address: int
    port_numbers: tuple[int, ...] | None
    bcdUSB: int = 0x0200
    bcdDevice: int = 0x0100
    bDeviceClass: int = 0
    bDeviceSubClass: int = 0
    bDeviceProtocol: int = 0
    speed: int | None = 3
    iManufacturer: int = 1
    iProduct: int = 2
    iSerialNumber: int = 3
    configs: list[FakeConfig] = field(default_factory=list)
    broken: bool = False

    def __iter__(self):
        if self.broken:
            raise usb.core.USBError("No such device (it may have been disconnected)")
        return iter(self.configs)


def ftdi() -> FakePyusbDevice:
    return FakePyusbDevice(0x0403, 0x6001, bus=1, address=6, port_numbers=(2,), speed=2,
                           configs=[FakeConfig([FakeIntf(0, 0xFF, 0xFF, 0xFF)])])


def make_sysfs(root: Path) -> Path:
    """A tiny /sys/bus/usb/devices: FTDI strings and drivers as links into ../../../devices."""
    devices = root / "devices" / "usb1" / "1-2"
    (devices / "1-2:1.0").mkdir(parents=True)
    for name, value in (("serial", "A50285BI\n"), ("manufacturer", "FTDI\n"), ("product", "FT232R USB UART\n")):
        (devices / name).write_text(value)
    os.symlink("../../bus/usb/drivers/usb", devices / "driver")
    os.symlink("../../../bus/usb/drivers/ftdi_sio", devices / "1-2:1.0" / "driver")
    index = root / "bus" / "usb" / "devices"
    index.mkdir(parents=True)
    os.symlink("../../../devices/usb1/1-2", index / "1-2")
    os.symlink("../../../devices/usb1/1-2/1-2:1.0", index / "1-2:1.0")
    return index


def test_usbfs_source_converts_with_sysfs_strings_and_drivers(mocker: MockerFixture, tmp_path: Path) -> None:
    """With sysfs mounted, strings and drivers come from it and no descriptor is read from the device."""
    mocker.patch("usb.core.find", return_value=iter([ftdi()]))
    get_string = mocker.patch("usb.util.get_string", side_effect=AssertionError("no device I/O expected"))
    index = make_sysfs(tmp_path)
    (dev,) = UsbfsSource(sysfs=str(index)).enumerate()
    assert (dev.sys_name, dev.sys_path) == ("1-2", str(tmp_path / "devices" / "usb1" / "1-2"))
    assert (dev.vid_pid, dev.serial, dev.manufacturer, dev.product) == ("0403:6001", "A50285BI", "FTDI",
                                                                        "FT232R USB UART")
    assert (dev.busnum, dev.devnum, dev.port_path, dev.device_node) == (1, 6, "1-2", "/dev/bus/usb/001/006")
    assert (dev.usb_version, dev.speed_mbps, dev.driver) == ("2.00", 12.0, "usb")
    assert dev.interfaces == (Interface(0, 0xFF, 0xFF, 0xFF, "ftdi_sio", "1-2:1.0"),)
    assert dev.attributes["idVendor"] == "0403" and dev.attributes["speed"] == "12"
    assert dev.children == ()
    get_string.assert_not_called()


def test_usbfs_source_reads_strings_from_the_device_without_sysfs(mocker: MockerFixture, tmp_path: Path) -> None:
    """Without sysfs, manufacturer/product/serial are read by descriptor index."""
    mocker.patch("usb.core.find", return_value=iter([ftdi()]))
    strings = {1: "FTDI", 2: "FT232R USB UART", 3: "A50285BI"}
    mocker.patch("usb.util.get_string", side_effect=lambda dev, index: strings[index])
    (dev,) = UsbfsSource(sysfs=str(tmp_path / "absent")).enumerate()
    assert (dev.manufacturer, dev.product, dev.serial) == ("FTDI", "FT232R USB UART", "A50285BI")
    assert dev.sys_path == str(tmp_path / "absent" / "1-2")
    assert dev.driver is None and dev.interfaces[0].driver is None


@pytest.mark.parametrize("error", [ValueError("The device has no langid"), usb.core.USBError("Access denied")])
def test_usbfs_source_keeps_devices_whose_strings_are_refused(mocker: MockerFixture, tmp_path: Path,
                                                              error: Exception) -> None:
    """A permission problem while reading strings leaves them None instead of dropping the device."""
    mocker.patch("usb.core.find", return_value=iter([ftdi()]))
    mocker.patch("usb.util.get_string", side_effect=error)
    (dev,) = UsbfsSource(sysfs=str(tmp_path)).enumerate()
    assert (dev.vid_pid, dev.serial, dev.manufacturer, dev.product) == ("0403:6001", None, None, None)


def test_usbfs_source_names_root_hubs_and_hub_ports_like_the_kernel(mocker: MockerFixture, tmp_path: Path) -> None:
    """No port numbers means root hub usbN; a chain of ports means N-a.b; speeds and bcdUSB convert."""
    root_hub = FakePyusbDevice(0x1D6B, 0x0002, bus=3, address=1, port_numbers=None, bcdUSB=0x0300, speed=4,
                               bDeviceClass=9, iManufacturer=0, iProduct=0, iSerialNumber=0)
    behind_hub = FakePyusbDevice(0x0483, 0x374B, bus=1, address=11, port_numbers=(5, 2), bcdUSB=0x0210, speed=None,
                                 iManufacturer=0, iProduct=0, iSerialNumber=0)
    mocker.patch("usb.core.find", return_value=iter([root_hub, behind_hub]))
    board, hub_dev = UsbfsSource(sysfs=str(tmp_path)).enumerate()  # sorted by sys_path
    assert (board.sys_name, board.usb_version, board.speed_mbps) == ("1-5.2", "2.10", None)
    assert (hub_dev.sys_name, hub_dev.usb_version, hub_dev.speed_mbps, hub_dev.device_class) == ("usb3", "3.00",
                                                                                               5000.0, 9)


def test_usbfs_source_lists_only_alternate_setting_zero(mocker: MockerFixture, tmp_path: Path) -> None:
    """Interfaces with alternate settings appear once, as their setting 0."""
    webcam = FakePyusbDevice(0x046D, 0x0825, bus=1, address=3, port_numbers=(1,), iManufacturer=0, iProduct=0,
                             iSerialNumber=0, configs=[FakeConfig([
                                 FakeIntf(0, 0x0E, 1), FakeIntf(1, 0x0E, 2), FakeIntf(1, 0x0E, 2, bAlternateSetting=1),
                                 FakeIntf(1, 0x0E, 2, bAlternateSetting=2)])])
    mocker.patch("usb.core.find", return_value=iter([webcam]))
    (dev,) = UsbfsSource(sysfs=str(tmp_path)).enumerate()
    assert [(i.number, i.interface_subclass) for i in dev.interfaces] == [(0, 1), (1, 2)]


def test_usbfs_source_skips_a_device_that_vanishes(mocker: MockerFixture, tmp_path: Path) -> None:
    """A device gone between listing and reading is left out; the others are still reported."""
    gone = FakePyusbDevice(0x2341, 0x0043, bus=1, address=7, port_numbers=(3,), broken=True)
    mocker.patch("usb.core.find", return_value=iter([gone, ftdi()]))
    mocker.patch("usb.util.get_string", return_value=None)
    assert [d.sys_name for d in UsbfsSource(sysfs=str(tmp_path)).enumerate()] == ["1-2"]


def test_usbfs_source_without_libusb_raises_a_clear_error(mocker: MockerFixture) -> None:
    """No libusb backend is reported as UsbfsUnavailableError, not as pyusb's internals."""
    mocker.patch("usb.core.find", side_effect=usb.core.NoBackendError("No backend available"))
    with pytest.raises(UsbfsUnavailableError, match="no backend"):
        UsbfsSource().enumerate()


def test_usbfs_source_device_at_finds_by_sys_path(mocker: MockerFixture, tmp_path: Path) -> None:
    """device_at() returns the device with that sys_path and None for others."""
    mocker.patch("usb.core.find", side_effect=lambda **kw: iter([ftdi()]))
    mocker.patch("usb.util.get_string", return_value=None)
    source = UsbfsSource(sysfs=str(tmp_path))
    assert source.device_at(str(tmp_path / "1-2")) is not None
    assert source.device_at(str(tmp_path / "1-9")) is None


def test_usbfs_source_has_no_event_stream() -> None:
    """The fallback offers no fd and no events: the watcher rescans on a timer."""
    source = UsbfsSource()
    source.start()
    assert (source.name, source.fileno(), source.drain()) == ("usbfs", None, [])
    source.close()


class ResettableDevice:
    """What reset_device() needs of a pyusb Device: reset(), which may fail like the kernel does."""

    def __init__(self, error: Exception | None = None) -> None:
        self.resets = 0
        self.error = error

    def reset(self) -> None:
        if self.error is not None:
            raise self.error
        self.resets += 1


def test_reset_device_resets_the_device_at_bus_and_devnum(mocker: MockerFixture) -> None:
    """reset_device() looks the device up by bus and address and resets it once."""
    device = ResettableDevice()
    find = mocker.patch("usb.core.find", return_value=device)
    reset_device(3, 17)
    find.assert_called_once_with(bus=3, address=17)
    assert device.resets == 1


@pytest.mark.parametrize(("found", "message"), [
    (None, "no such device"),
    (ResettableDevice(usb.core.USBError("Access denied (insufficient permissions)")), "Access denied"),
])
def test_reset_device_reports_why_it_failed(mocker: MockerFixture, found: object, message: str) -> None:
    """A missing device or a refused reset raises UsbResetError naming bus, device and cause."""
    mocker.patch("usb.core.find", return_value=found)
    with pytest.raises(UsbResetError, match=f"bus 3 device 17: .*{message}"):
        reset_device(3, 17)
