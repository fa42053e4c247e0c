"""Parsing a usb_device's binary ``descriptors`` file, and the sysfs text its values stand for."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery.fake.recording import parse_recording
from discovery.fake.testbed import FIXTURES_DIR, list_fixtures
from discovery.sources.descriptors import parse_descriptors, sysfs_text
from discovery.sources.udev import DEVICE_ATTRIBUTES


def device_descriptor(bcd_usb: int = 0x0200, cls: int = 0, packet0: int = 64, vendor: int = 0x0403,
                      product: int = 0x6001, strings: tuple[int, int, int] = (1, 2, 3), configs: int = 1) -> bytes:
    return struct.pack("<BBHBBBBHHHBBBB", 18, 1, bcd_usb, cls, 0, 0, packet0, vendor, product, 0x0600, *strings, configs)


def interface(number: int, alternate: int = 0, cls: int = 0xFF, sub: int = 0, proto: int = 0) -> bytes:
    return struct.pack("<BBBBBBBBB", 9, 4, number, alternate, 2, cls, sub, proto, 0)


ENDPOINT = struct.pack("<BBBBHB", 7, 5, 0x81, 2, 64, 0)
CLASS_SPECIFIC = bytes([5, 0x24, 0x00, 0x10, 0x01])  # a CDC header functional descriptor


def config(value: int, *body: bytes, interfaces: int | None = None, attributes: int = 0x80, power: int = 45) -> bytes:
    payload = b"".join(body)
    count = interfaces if interfaces is not None else sum(1 for b in body if b[1:2] == b"\x04" and b[3] == 0)
    return struct.pack("<BBHBBBBB", 9, 2, 9 + len(payload), count, value, 0, attributes, power) + payload


KERNEL_RECORDINGS = sorted((FIXTURES_DIR / "kernel").glob("*.umockdev"))  # recorded from a real kernel (vm/)


def fixture_usb_devices() -> list[tuple[str, dict[str, bytes]]]:
    """(file/sys_name, attributes) of every usb_device recorded in fixtures/ that has a descriptors file."""
    files = [FIXTURES_DIR / f"{name}.umockdev" for name in list_fixtures()] + KERNEL_RECORDINGS
    found = []
    for file in files:
        for rec in parse_recording(file.read_text(encoding="utf-8"), source=str(file)):
            if rec.devtype == "usb_device" and "descriptors" in rec.attributes:
                found.append((f"{file.parent.name}/{file.stem}/{rec.sys_name}", dict(rec.attributes)))
    return found


FIXTURE_DEVICES = fixture_usb_devices()


def test_real_kernel_recordings_are_there() -> None:
    """The recordings of QEMU's devices and a gadget (SuperSpeed, hub, HID, CDC with IAD) are among the checked."""
    names = {w.split("/")[1] for w, _ in FIXTURE_DEVICES if w.startswith("kernel/")}
    assert {"qemu-usb-serial", "qemu-usb-kbd", "qemu-usb-storage", "qemu-usb-hub", "dummy-hcd-acm-gadget"} <= names


@pytest.mark.parametrize(("where", "attributes"), FIXTURE_DEVICES, ids=[w for w, _ in FIXTURE_DEVICES])
def test_sysfs_text_is_what_each_recorded_device_shows(where: str, attributes: dict[str, bytes]) -> None:
    """Every attribute the descriptors give equals the recorded attribute file, blanks stripped."""
    parsed = parse_descriptors(attributes["descriptors"])
    assert parsed is not None
    active = int(attributes["bConfigurationValue"].strip() or b"0")
    text = sysfs_text(parsed, parsed.config(active), float(attributes["speed"].strip()))
    assert set(text) <= set(DEVICE_ATTRIBUTES)
    recorded = {name: attributes[name].decode().strip() for name in text if name in attributes}
    assert {name: text[name] for name in recorded} == recorded
    assert len(recorded) >= 12  # the check is about most of them, not a lucky few


def test_parse_reads_device_config_and_interfaces_skipping_other_descriptors() -> None:
    """Endpoints and class-specific descriptors between interfaces are stepped over."""
    blob = device_descriptor(bcd_usb=0x0210, cls=0xEF, packet0=9) + config(
        1, interface(0, cls=2, sub=2, proto=1), CLASS_SPECIFIC, ENDPOINT, interface(1, cls=0x0A), ENDPOINT, ENDPOINT)
    parsed = parse_descriptors(blob)
    assert parsed is not None
    assert (parsed.vendor_id, parsed.product_id, parsed.bcd_usb, parsed.device_class) == (0x0403, 0x6001, 0x0210, 0xEF)
    (cfg,) = parsed.configs
    assert (cfg.value, cfg.num_interfaces) == (1, 2)
    assert [(i.number, i.interface_class, i.interface_subclass, i.interface_protocol) for i in cfg.interfaces] == [
        (0, 2, 2, 1), (1, 0x0A, 0, 0)]
    text = sysfs_text(parsed, cfg, 480.0)
    assert (text["version"], text["bMaxPacketSize0"], text["bDeviceClass"], text["bNumInterfaces"]) == (
        "2.10", "9", "ef", "2")


def test_parse_keeps_every_configuration_and_picks_by_value() -> None:
    """A device with two configurations: each is found by its bConfigurationValue."""
    blob = device_descriptor(configs=2) + config(1, interface(0, cls=3)) + config(2, interface(0, cls=8), power=250)
    parsed = parse_descriptors(blob)
    assert parsed is not None and [c.value for c in parsed.configs] == [1, 2]
    second = parsed.config(2)
    assert second is not None and second.interface(0) is not None
    assert sysfs_text(parsed, second, 480.0)["bMaxPower"] == "500mA"
    assert parsed.config(3) is None


def test_interface_takes_alternate_zero_else_the_first_listed() -> None:
    """The setting the kernel makes current on configuration: alternate 0 if there is one."""
    parsed = parse_descriptors(device_descriptor() + config(
        1, interface(0, alternate=1, cls=0x0E, sub=2), interface(0, alternate=0, cls=0x0E, sub=1),
        interface(1, alternate=2, cls=1, sub=2), interface(1, alternate=3, cls=1, sub=3)))
    assert parsed is not None
    (cfg,) = parsed.configs
    assert (cfg.interface(0).interface_subclass, cfg.interface(1).interface_subclass) == (1, 2)  # type: ignore[union-attr]
    assert cfg.interface(7) is None


@pytest.mark.parametrize(("speed", "power"), [(1.5, "90mA"), (12.0, "90mA"), (480.0, "90mA"), (5000.0, "360mA"),
                                              (10000.0, "360mA")])
def test_max_power_unit_follows_the_speed(speed: float, power: str) -> None:
    """bMaxPower counts 2 mA units below SuperSpeed and 8 mA units from it on, as the kernel prints it."""
    parsed = parse_descriptors(device_descriptor() + config(1, interface(0), power=45))
    assert parsed is not None
    assert sysfs_text(parsed, parsed.configs[0], speed)["bMaxPower"] == power


def test_sysfs_text_leaves_out_what_it_cannot_know() -> None:
    """No active configuration: no configuration attributes; no speed: no bMaxPower."""
    parsed = parse_descriptors(device_descriptor() + config(1, interface(0)))
    assert parsed is not None
    assert not {"bNumInterfaces", "bConfigurationValue", "bmAttributes", "bMaxPower"} & set(sysfs_text(parsed, None, 12.0))
    assert "bMaxPower" not in sysfs_text(parsed, parsed.configs[0], None)


def test_truncated_file_gives_only_complete_parts() -> None:
    """Cut anywhere: no device descriptor is None, a configuration cut short is left out with what follows."""
    first = config(1, interface(0, cls=2), ENDPOINT)
    blob = device_descriptor(configs=2) + first + config(2, interface(0, cls=8))
    for size in range(len(blob) + 1):
        parsed = parse_descriptors(blob[:size])
        if size < 18:
            assert parsed is None
            continue
        assert parsed is not None
        complete = [1] if 18 + len(first) <= size < len(blob) else ([1, 2] if size == len(blob) else [])
        assert [c.value for c in parsed.configs] == complete


@pytest.mark.parametrize("blob", [
    None,
    b"",
    device_descriptor()[:-1],
    bytes([18, 2]) + device_descriptor()[2:],  # not a device descriptor
    bytes([9]) + device_descriptor()[1:],  # wrong length
], ids=["missing", "empty", "short", "wrong-type", "wrong-length"])
def test_not_a_device_descriptor_is_none(blob: bytes | None) -> None:
    """Without a whole, well-formed device descriptor there is nothing to take from the file."""
    assert parse_descriptors(blob) is None


def test_malformed_configuration_is_left_out() -> None:
    """A zero-length descriptor or one running past its configuration ends the parse there."""
    zero = bytearray(config(1, interface(0), ENDPOINT))
    zero[9 + 9] = 0  # the endpoint's bLength
    past = bytearray(config(1, interface(0)))
    past[9] = 200  # the interface claims more bytes than the configuration has
    for bad in (bytes(zero), bytes(past)):
        parsed = parse_descriptors(device_descriptor() + bad)
        assert parsed is not None and parsed.configs == ()


@given(st.binary(max_size=300))
def test_parse_never_raises(blob: bytes) -> None:
    """Any bytes at all give a result or None, never an exception."""
    parsed = parse_descriptors(device_descriptor() + blob)
    assert parsed is not None
    sysfs_text(parsed, parsed.configs[0] if parsed.configs else None, 480.0)
