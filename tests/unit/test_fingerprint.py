"""build_fingerprint: a Snapshot as the FingerprintResponse Nomad gets, groups, devices, health and typed attributes."""

from __future__ import annotations

import math

import pytest
from snapshot_factories import make_match, make_snapshot, make_state

from discovery.rules.model import AttrValue
from plugin.fingerprint import attribute_from_value, build_fingerprint


def test_fingerprint_of_an_empty_snapshot_has_no_groups() -> None:
    """No matched devices: an empty response (which still releases Nomad's start-up gate)."""
    assert list(build_fingerprint(make_snapshot()).device_group) == []


def test_fingerprint_has_one_group_per_vendor_type_name_with_its_devices() -> None:
    """Each group carries its vendor, type and name, and every device ID in it, in the group's order."""
    phones = [make_state("usb-b"), make_state("usb-a")]
    board = make_state("usb-c", match=make_match(("arduino", "board", "uno")))
    response = build_fingerprint(make_snapshot(*phones, board))
    assert [(g.vendor, g.device_type, g.device_name, [d.ID for d in g.devices]) for g in response.device_group] == [
        ("arduino", "board", "uno", ["usb-c"]),
        ("google", "phone", "pixel-7", ["usb-a", "usb-b"]),
    ]


def test_fingerprint_device_health_and_its_reason() -> None:
    """A healthy device says "healthy"; an unhealthy or unplugged one says why."""
    states = [
        make_state("usb-ok"),
        make_state("usb-gone", present=False, healthy=False, reason="unplugged"),
        make_state("usb-sick", healthy=False, reason="node /dev/ttyACM0 missing"),
    ]
    (group,) = build_fingerprint(make_snapshot(*states)).device_group
    assert {d.ID: (d.healthy, d.health_description) for d in group.devices} == {
        "usb-ok": (True, "healthy"),
        "usb-gone": (False, "unplugged"),
        "usb-sick": (False, "node /dev/ttyACM0 missing"),
    }


def test_fingerprint_group_attributes_are_typed() -> None:
    """Group attributes arrive as Nomad's typed Attribute, with units on numbers."""
    attributes = {
        "vendor_id": AttrValue(0x18D1),
        "ram": AttrValue(8, "GiB"),
        "usb_version": AttrValue(2.1),
        "adb": AttrValue(True),
        "product": AttrValue("Pixel 7"),
    }
    snapshot = make_snapshot(make_state(), attributes={("google", "phone", "pixel-7"): attributes})
    (group,) = build_fingerprint(snapshot).device_group
    got = {k: (v.WhichOneof("value"), getattr(v, v.WhichOneof("value")), v.unit) for k, v in group.attributes.items()}
    assert got == {
        "vendor_id": ("int_val", 6353, ""),
        "ram": ("int_val", 8, "GiB"),
        "usb_version": ("float_val", 2.1, ""),
        "adb": ("bool_val", True, ""),
        "product": ("string_val", "Pixel 7", ""),
    }


@pytest.mark.parametrize(
    ("value", "kind", "shown"),
    [
        (AttrValue(True), "bool_val", True),
        (AttrValue(0), "int_val", 0),
        (AttrValue(-3, "W"), "int_val", -3),
        (AttrValue(1.5, "GHz"), "float_val", 1.5),
        (AttrValue(math.nan), "string_val", "nan"),
        (AttrValue(math.inf), "string_val", "inf"),
        (AttrValue("text", "GiB"), "string_val", "text"),
    ],
    ids=["bool-not-int", "zero", "negative-with-unit", "float-with-unit", "nan-as-text", "inf-as-text",
         "string-drops-unit"],
)
def test_attribute_from_value_sets_exactly_one_member(value: AttrValue, kind: str, shown: object) -> None:
    """One oneof member per attribute (Nomad rejects others); NaN and inf become text so snapshots compare equal."""
    attribute = attribute_from_value(value)
    assert attribute.WhichOneof("value") == kind
    assert getattr(attribute, kind) == shown
    assert attribute.unit == (value.unit if kind in ("int_val", "float_val") and value.unit else "")
