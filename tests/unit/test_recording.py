"""The fake world's data, no world needed: the umockdev recording format, the fixtures, fake devices."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery.fake.recording import (
    RecordingError,
    escape_attribute,
    format_recording,
    parse_recording,
    unescape_attribute,
)
from discovery.fake.testbed import (
    FAKE_MINOR_OFFSET,
    FIXTURES_DIR,
    TestbedError,
    list_fixtures,
    load_fixture,
    load_recording,
    make_ftdi,
    renumber,
)

# Shaped like umockdev-record output: the device first, then its parents; power/ attributes,
# L: links, a binary H: attribute, octal escapes for UTF-8, an attribute without newline.


# Shaped like umockdev-record output: the device first, then its parents; power/ attributes,
# L: links, a binary H: attribute, octal escapes for UTF-8, an attribute without newline.
RECORDING = r"""P: /devices/pci0000:00/0000:00:14.0/usb3/3-1/3-1:1.0/tty/ttyACM4
N: ttyACM4
S: serial/by-id/usb-Caf\xc3\xa9_Board_X1-if00
E: DEVNAME=/dev/ttyACM4
E: MAJOR=166
E: MINOR=4
E: SUBSYSTEM=tty
E: DEVLINKS=/dev/serial/by-id/usb-Caf\xc3\xa9_Board_X1-if00
A: dev=166:4\n
L: device=../../../3-1:1.0
A: power/control=auto\n

P: /devices/pci0000:00/0000:00:14.0/usb3/3-1/3-1:1.0
E: DEVTYPE=usb_interface
E: DRIVER=cdc_acm
E: SUBSYSTEM=usb
A: bInterfaceClass=02\n
A: bInterfaceNumber=00\n
L: driver=../../../../../../bus/usb/drivers/cdc_acm

P: /devices/pci0000:00/0000:00:14.0/usb3/3-1
N: bus/usb/003/009=1201000200000040
E: DEVNAME=/dev/bus/usb/003/009
E: DEVTYPE=usb_device
E: DRIVER=usb
E: BUSNUM=003
E: DEVNUM=009
E: MAJOR=189
E: MINOR=264
E: SUBSYSTEM=usb
E: ID_VENDOR_ID=1209
E: ID_MODEL_ID=0001
A: busnum=3\n
A: configuration=
H: descriptors=1201000200000040
A: dev=189:264\n
A: devnum=9\n
A: idProduct=0001\n
A: idVendor=1209\n
A: manufacturer=Caf\303\251\n
A: product=Board \"X1\"\n
A: serial=X1\n
"""


def test_recording_parse_reads_every_line_type() -> None:
    """P, N (with hex contents), S, E, A (escaped), H and L lines land in the right record fields."""
    tty, iface, dev = parse_recording(RECORDING)
    assert tty.devpath.endswith("/3-1:1.0/tty/ttyACM4")
    assert (tty.node, tty.symlinks) == ("ttyACM4", (r"serial/by-id/usb-Caf\xc3\xa9_Board_X1-if00",))
    assert tty.links == {"device": "../../../3-1:1.0"}
    assert tty.attributes["power/control"] == b"auto\n"
    assert (tty.subsystem, tty.majmin) == ("tty", (166, 4))
    assert (iface.devtype, iface.driver) == ("usb_interface", "cdc_acm")
    assert dev.node == "bus/usb/003/009" and dev.node_contents == bytes.fromhex("1201000200000040")
    assert dev.attributes["descriptors"] == bytes.fromhex("1201000200000040")
    assert dev.attributes["manufacturer"] == "Café\n".encode()
    assert dev.attributes["product"] == b'Board "X1"\n'
    assert dev.attributes["configuration"] == b""


@pytest.mark.parametrize(("text", "line"), [
    pytest.param("E: SUBSYSTEM=usb\n", 1, id="no-P-line"),
    pytest.param("P: /sys/devices/x\nE: SUBSYSTEM=usb\n", 1, id="path-not-under-devices"),
    pytest.param("P: /devices/x\nA: idVendor=1\n", 1, id="no-subsystem"),
    pytest.param("P: /devices/x\nE: SUBSYSTEM=usb\nH: descriptors=1F0\n", 3, id="odd-hex"),
    pytest.param("P: /devices/x\nE: SUBSYSTEM=usb\nQ: what=ever\n", 3, id="unknown-tag"),
    pytest.param("P: /devices/x\nE: SUBSYSTEM=usb\nE: NOEQUALS\n", 3, id="property-without-value"),
    pytest.param("P: /devices/x\nE: SUBSYSTEM=usb\nP: /devices/y\n", 3, id="missing-blank-line"),
])
def test_recording_parse_rejects_malformed_input(text: str, line: int) -> None:
    """A broken recording raises RecordingError naming the offending line."""
    with pytest.raises(RecordingError) as err:
        parse_recording(text, source="bad.umockdev")
    assert err.value.line == line
    assert str(err.value).startswith(f"bad.umockdev:{line}:")


@given(st.binary(max_size=64))
def test_attribute_escape_round_trips_any_bytes(value: bytes) -> None:
    """escape_attribute and unescape_attribute are inverse for every byte string."""
    assert unescape_attribute(escape_attribute(value)) == value


@pytest.mark.parametrize("name", list_fixtures())
def test_fixture_files_parse_and_round_trip_losslessly(name: str) -> None:
    """Every fixture parses, and formatting its records gives text that parses to the same records."""
    records = parse_recording((FIXTURES_DIR / f"{name}.umockdev").read_text(), name)
    assert records
    assert parse_recording(format_recording(records)) == records


def test_format_recording_writes_our_fixtures_byte_for_byte() -> None:
    """The writer reproduces a generated fixture exactly (line order and escapes as umockdev's)."""
    text = (FIXTURES_DIR / "hub-ch340-stlink.umockdev").read_text()
    assert format_recording(parse_recording(text)) == text


def test_fixtures_cover_the_documented_devices() -> None:
    """The fixture set named in fixtures/README.md is present."""
    assert set(list_fixtures()) >= {"pixel7-adb", "ftdi-ft232r", "arduino-uno", "cp2102", "yubikey5",
                                    "hub-ch340-stlink", "keyboard-no-serial", "two-ch340-boards"}


def test_load_recording_puts_parents_first_and_moves_minors(tmp_path: Path) -> None:
    """Recorded children-first order becomes kernel order; node minors leave the real range."""
    file = tmp_path / "board.umockdev"
    file.write_text(RECORDING)
    records = load_recording(file)
    assert [r.sys_name for r in records] == ["3-1", "3-1:1.0", "ttyACM4"]
    assert records[0].majmin == (189, 264 + FAKE_MINOR_OFFSET)
    assert records[0].properties["MINOR"] == str(264 + FAKE_MINOR_OFFSET)
    assert records[2].attributes["dev"] == f"166:{4 + FAKE_MINOR_OFFSET}\n".encode()


def test_renumber_changes_only_the_devnum_fields() -> None:
    """renumber() gives the records of the same device on a new devnum, rest untouched."""
    records = make_ftdi(devnum=6).records()
    again = renumber(records, 7)
    dev = again[0]
    assert dev.attributes["devnum"] == b"7\n"
    assert dev.properties["DEVNUM"] == "007"
    assert dev.properties["DEVNAME"] == "/dev/bus/usb/001/007"
    assert dev.node == "bus/usb/001/007"
    assert dev.majmin == (189, records[0].majmin[1] + 1)
    assert again[1:] == records[1:]
    assert dev.attributes["serial"] == records[0].attributes["serial"]


def test_load_fixture_unknown_name_lists_the_known_ones() -> None:
    """A typo in a fixture name says which fixtures exist."""
    with pytest.raises(TestbedError, match="ftdi-ft232r"):
        load_fixture("no-such-device")


def test_fake_device_replace_is_a_replug() -> None:
    """dataclasses.replace(dev, devnum=...) keeps the port path and moves the node."""
    dev = make_ftdi()
    again = dataclasses.replace(dev, devnum=dev.devnum + 1)
    assert again.devpath == dev.devpath and again.id_path == dev.id_path
    assert again.records()[0].node == "bus/usb/001/007"
