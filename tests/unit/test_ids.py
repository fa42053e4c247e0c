"""Stable IDs: serial when it tells devices apart, port path otherwise; never numeric, never a comma."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery.state.ids import is_junk_serial, stable_id
from discovery.model import UsbDevice


def make_device(**overrides: object) -> UsbDevice:
    fields: dict[str, object] = dict(
        sys_path="/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2",
        sys_name="1-2",
        vendor_id=0x18D1,
        product_id=0x4EE7,
        busnum=1,
        devnum=5,
        port_path="pci-0000:00:14.0-usb-0:2",
        serial="28011FDH2000KN",
    )
    fields.update(overrides)
    return UsbDevice(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("serial", "junk"),
    [
        (None, True),
        ("", True),
        ("   ", True),
        ("0", True),
        ("000000000000", True),
        ("FFFFFFFF", True),
        ("0123456789ABCDEF", True),
        ("0001", True),
        ("0010", False),
        ("123456789", True),
        ("A50285BI", False),
        ("28011FDH2000KN", False),
        ("85739313233351A0A1B1", False),
    ],
    ids=lambda v: repr(v),
)
def test_is_junk_serial_table(serial: str | None, junk: bool) -> None:
    """Blank, repeated-character and placeholder serials are junk; real ones are not."""
    assert is_junk_serial(serial) is junk


def test_stable_id_uses_serial_and_ignores_bus_numbers() -> None:
    """The same device replugged with new bus/device numbers (and another port) keeps its ID."""
    first = make_device()
    replugged = make_device(busnum=3, devnum=42, sys_name="3-1", port_path="pci-0000:00:14.0-usb-0:7")
    assert stable_id(first) == stable_id(replugged) == "usb-18d1-4ee7-28011FDH2000KN"


def test_stable_id_without_serial_uses_port_path() -> None:
    """A device without a serial is known by its port; a new devnum does not change that."""
    a = make_device(serial=None, devnum=7)
    b = make_device(serial=None, devnum=9)
    assert stable_id(a) == stable_id(b) == "usb-18d1-4ee7-port-00:14.0-2"


def test_stable_id_shared_serial_falls_back_to_ports() -> None:
    """Two identical boards reporting the same serial get distinct, port-based IDs."""
    a = make_device(serial="1234ABCD", sys_path="/sys/x/1-2", port_path="p-2")
    b = make_device(serial="1234ABCD", sys_path="/sys/x/1-3", port_path="p-3")
    ids = {stable_id(a, [a, b]), stable_id(b, [a, b])}
    assert ids == {"usb-18d1-4ee7-port-p-2", "usb-18d1-4ee7-port-p-3"}


@given(serial=st.text(max_size=300), port=st.text(min_size=1, max_size=300))
def test_stable_id_is_safe_for_nomad(serial: str, port: str) -> None:
    """Whatever a device reports, the ID is short, non-numeric, and free of commas and spaces."""
    dev_id = stable_id(make_device(serial=serial, port_path=port))
    assert dev_id.startswith("usb-")
    assert "," not in dev_id and " " not in dev_id and "/" not in dev_id
    assert len(dev_id) <= 80


@pytest.mark.parametrize(
    ("id_path", "compact"),
    [
        ("pci-0000:00:14.0-usb-0:5.1", "00:14.0-5.1"),
        ("pci-0000:00:14.0-usbv2-0:3", "00:14.0-v2-3"),
        ("pci-0000:00:14.0-usbv3-0:3", "00:14.0-v3-3"),
        ("pci-0001:00:14.0-usb-0:2", "pci-0001:00:14.0-2"),
        ("platform-xhci-hcd.0.auto-usb-0:1", "platform-xhci-hcd.0.auto-1"),
        ("1-5.1", "1-5.1"),
    ],
)
def test_compact_port_keeps_controller_and_port_chain(id_path: str, compact: str) -> None:
    """Port IDs drop only what every USB path shares; USB2 and USB3 root hubs stay apart."""
    from discovery.state.ids import compact_port

    assert compact_port(id_path) == compact


def test_stable_id_serials_that_clean_up_alike_stay_apart() -> None:
    """Serials that differ only in characters Nomad cannot take do not collapse into one ID."""
    a = stable_id(make_device(serial="AB CD"))
    b = stable_id(make_device(serial="AB_CD"))
    assert a != b and b == "usb-18d1-4ee7-AB_CD"
    assert a.startswith("usb-18d1-4ee7-AB_CD~") and a == stable_id(make_device(serial="AB CD"))
