"""udevdb: a device's properties from its uevent file and udev's database, as libudev composes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.sources.udevdb import UnreadableDeviceError, device_properties, sys_name_of


def make_device(tmp_path: Path, uevent: str, subsystem: str | None = "tty", name: str = "ttyUSB0") -> str:
    """A device directory with a uevent file and a subsystem link, like a sysfs device's."""
    device = tmp_path / "devices" / name
    device.mkdir(parents=True)
    (device / "uevent").write_text(uevent)
    if subsystem is not None:
        (device / "subsystem").symlink_to(f"../../class/{subsystem}")
    return str(device)


def write_db(tmp_path: Path, entry: str, text: str) -> str:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / entry).write_text(text)
    return str(data)


def test_uevent_lines_become_properties_with_devname_under_dev(tmp_path: Path) -> None:
    """Each KEY=VALUE line is a property; DEVNAME gets /dev/; SUBSYSTEM comes from the link; no database is fine."""
    path = make_device(tmp_path, "MAJOR=188\nMINOR=0\nDEVNAME=ttyUSB0\nID_X=a=b\n\nno equals sign\nEMPTY=\n")
    props = device_properties(path, data_dir=str(tmp_path / "nowhere"))
    assert props == {"DEVPATH": path, "DEVNAME": "/dev/ttyUSB0", "ID_X": "a=b", "EMPTY": "", "MAJOR": "188",
                     "MINOR": "0", "SUBSYSTEM": "tty"}


def test_database_adds_properties_links_tags_and_time(tmp_path: Path) -> None:
    """E: lines add (an empty value removes), S: links make DEVLINKS, G:/Q: make TAGS/CURRENT_TAGS, I: the time."""
    path = make_device(tmp_path, "MAJOR=188\nMINOR=0\nDEVNAME=ttyUSB0\nGONE=soon\nID_MODEL=from_uevent\n")
    data = write_db(tmp_path, "c188:0", "\n".join([
        "S:serial/by-id/usb-FTDI-if00-port0", "S:serial/by-path/pci-0000:00:14.0-usb-0:2:1.0-port0",
        "L:0", "W:7", "V:1", "I:0004567", "E:ID_MODEL=FT232R", "E:GONE=", "E:ID_BUS=usb", "G:systemd",
        "Q:systemd", "G:uaccess", "X:unknown", "garbage", "",
    ]))
    props = device_properties(path, data_dir=data)
    assert props["DEVLINKS"] == ("/dev/serial/by-id/usb-FTDI-if00-port0 "
                                 "/dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0-port0")
    assert (props["TAGS"], props["CURRENT_TAGS"], props["USEC_INITIALIZED"]) == (":systemd:uaccess:", ":systemd:", "4567")
    assert (props["ID_MODEL"], props["ID_BUS"], "GONE" in props) == ("FT232R", "usb", False)


@pytest.mark.parametrize(("uevent", "subsystem", "name", "entry"), [
    ("MAJOR=189\nMINOR=5\n", "usb", "1-2", "c189:5"),
    ("MAJOR=8\nMINOR=0\nDEVTYPE=disk\n", "block", "sda", "b8:0"),
    ("INTERFACE=usb0\nIFINDEX=3\n", "net", "usb0", "n3"),
    ("DEVTYPE=usb_interface\n", "usb", "1-2:1.0", "+usb:1-2:1.0"),
    ("MAJOR=0\nMINOR=0\n", "usb-serial", "ttyUSB0", "+usb-serial:ttyUSB0"),
], ids=["char", "block", "net", "by-name", "major-0"])
def test_database_entry_is_found_by_the_devices_id(tmp_path: Path, uevent: str, subsystem: str, name: str,
                                                    entry: str) -> None:
    """The database file is named by device number, network index, or subsystem and kernel name."""
    path = make_device(tmp_path, uevent, subsystem, name)
    data = write_db(tmp_path, entry, "E:FOUND=1\n")
    assert device_properties(path, data_dir=data)["FOUND"] == "1"


@pytest.mark.parametrize(("line", "kept"), [
    ("DEVMODE=0660", True), ("DEVMODE=99999", False), ("DEVMODE=rw", False),
    ("IFINDEX=3", True), ("IFINDEX=0", False), ("IFINDEX=x", False),
    ("DISKSEQ=12", True), ("DISKSEQ=-1", False),
])
def test_values_libudev_cannot_parse_are_dropped(tmp_path: Path, line: str, kept: bool) -> None:
    """DEVMODE, IFINDEX and DISKSEQ are kept only when libudev would accept them."""
    path = make_device(tmp_path, line + "\n")
    assert (line.split("=")[0] in device_properties(path, data_dir=str(tmp_path))) is kept


@pytest.mark.parametrize("numbers", ["MAJOR=x\nMINOR=1\n", "MAJOR=5000\nMINOR=1\n", "MAJOR=4\nMINOR=y\n", "MAJOR=0\n"])
def test_bad_device_numbers_give_no_major_minor(tmp_path: Path, numbers: str) -> None:
    """A device number libudev refuses leaves out both MAJOR and MINOR."""
    props = device_properties(make_device(tmp_path, numbers), data_dir=str(tmp_path))
    assert "MAJOR" not in props and "MINOR" not in props


def test_known_subsystem_saves_the_link_and_no_link_means_no_subsystem(tmp_path: Path) -> None:
    """A caller that knows the subsystem passes it; a device without the link has no SUBSYSTEM."""
    path = make_device(tmp_path, "DEVTYPE=usb_device\n", subsystem=None)
    assert "SUBSYSTEM" not in device_properties(path, data_dir=str(tmp_path))
    assert device_properties(path, "usb", data_dir=str(tmp_path))["SUBSYSTEM"] == "usb"


def test_missing_or_undecodable_uevent(tmp_path: Path) -> None:
    """No uevent file: UnreadableDeviceError (an OSError); bytes that are not UTF-8: ValueError, as pyudev."""
    with pytest.raises(UnreadableDeviceError):
        device_properties(str(tmp_path / "absent"))
    path = make_device(tmp_path, "")
    Path(path, "uevent").write_bytes(b"ID_X=caf\xe9\n")
    with pytest.raises(ValueError):
        device_properties(path)


def test_sys_name_turns_bang_into_slash() -> None:
    """Kernel names with '/' appear in sysfs with '!' (cciss!c0d0); libudev gives them back with '/'."""
    assert (sys_name_of("/sys/block/cciss!c0d0"), sys_name_of("/sys/devices/x/1-2")) == ("cciss/c0d0", "1-2")
