"""The pyudev adapter's pure parts: paths, availability, attribute coverage, lifecycle errors."""

from __future__ import annotations

import os

import pytest

from discovery.sources.udev import UdevSource, udev_available, usb_device_path_of

PCI = "/sys/devices/pci0000:00/0000:00:14.0/usb1"


def test_udev_source_fileno_and_drain_need_start() -> None:
    """Using the monitor before start() is a programming error, reported as such."""
    source = UdevSource()
    with pytest.raises(RuntimeError, match="start"):
        source.fileno()
    with pytest.raises(RuntimeError, match="start"):
        source.drain()


@pytest.mark.parametrize(("sys_path", "expected"), [
    (f"{PCI}/1-2", f"{PCI}/1-2"),
    (f"{PCI}/1-2/1-2:1.0", f"{PCI}/1-2"),
    (f"{PCI}/1-5/1-5.2/1-5.2:1.2/tty/ttyACM1", f"{PCI}/1-5/1-5.2"),
    (f"{PCI}/1-6/1-6:1.1/0003:1050:0407.0002/hidraw/hidraw1", f"{PCI}/1-6"),
    ("/sys/devices/pci0000:00/0000:00:14.0/usb1", "/sys/devices/pci0000:00/0000:00:14.0/usb1"),
    ("/sys/devices/virtual/tty/tty0", None),
])
def test_usb_device_path_of_finds_the_owning_device(sys_path: str, expected: str | None) -> None:
    """The usb_device of any path below it is found from the path alone (works for removes)."""
    assert usb_device_path_of(sys_path) == expected


def test_udev_available_in_a_umockdev_world(monkeypatch: pytest.MonkeyPatch) -> None:
    """UMOCKDEV_DIR counts as udev present; without it and without /run/udev there is none."""
    monkeypatch.setenv("UMOCKDEV_DIR", "/nonexistent")
    assert udev_available()
    monkeypatch.delenv("UMOCKDEV_DIR")
    monkeypatch.setattr(os.path, "isdir", lambda path: path != "/run/udev")
    assert not udev_available()


def test_device_attributes_cover_every_attribute_rules_accept() -> None:
    """Every sysfs attribute name rules/templates accept is one the adapter reads."""
    from discovery.rules.warnings import SYSFS_ATTRIBUTES
    from discovery.sources.udev import DEVICE_ATTRIBUTES

    assert SYSFS_ATTRIBUTES <= set(DEVICE_ATTRIBUTES)


def test_udev_source_is_named_for_the_snapshot() -> None:
    """The watcher labels snapshots with the source's name."""
    assert UdevSource.name == "udev"
