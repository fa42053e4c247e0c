"""Templates: parsing ``{placeholder}`` text and rendering it for a device."""

from __future__ import annotations

import pytest
from rules_factories import make_device

from discovery.rules.templates import DeviceFacts, Placeholder, TemplateError, parse_template


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("", ("",)),
        ("plain", ("plain",)),
        ("{serial}", (Placeholder("serial"),)),
        ("pixel-{serial}", ("pixel-", Placeholder("serial"))),
        ("{vendor_id}:{product_id}", (Placeholder("vendor_id"), ":", Placeholder("product_id"))),
        ("{{x}}", ("{x}",)),
        ("a{{{serial}}}b", ("a{", Placeholder("serial"), "}b")),
        ("{ID_MODEL}{bcdDevice}", (Placeholder("ID_MODEL"), Placeholder("bcdDevice"))),
        ("{_private}", (Placeholder("_private"),)),
    ],
    ids=["empty", "plain", "one", "prefix", "two", "escapes", "escapes-around", "property-and-sysfs", "underscore"],
)
def test_template_parse(text: str, parts: tuple[object, ...]) -> None:
    """Text splits into literals and placeholders; doubled braces are literal braces."""
    assert parse_template(text).parts == parts


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{serial", "unclosed '{' at position 1"),
        ("a}", "single '}' at position 2"),
        ("{}", "empty placeholder"),
        ("{a b}", "unknown placeholder {a b}"),
        ("{serial:>10}", "unknown placeholder {serial:>10}"),
        ("{1abc}", "unknown placeholder {1abc}"),
        ("{a{b}", "unclosed '{' at position 1"),
        ("{power/control}", "unknown placeholder {power/control}"),
    ],
    ids=["unclosed", "lone-close", "empty", "space", "format-spec", "digit-start", "nested", "slash"],
)
def test_template_parse_errors(text: str, message: str) -> None:
    """Unbalanced braces and names that are not property names are load errors."""
    with pytest.raises(TemplateError, match=message.replace("{", r"\{").replace("}", r"\}").replace("/", "/")):
        parse_template(text)


@pytest.mark.parametrize(
    ("name", "overrides", "value"),
    [
        ("serial", {}, "1A2B3C4D"),
        ("serial", {"serial": None}, None),
        ("vendor_id", {"vendor_id": 0x403}, "0403"),
        ("product_id", {"product_id": 0xEA60}, "ea60"),
        ("manufacturer", {}, "Google"),
        ("product", {"product": None}, None),
        ("port", {}, "pci-0000:00:14.0-usb-0:2"),
        ("sys_name", {}, "1-2"),
        ("busnum", {}, "1"),
        ("devnum", {}, "5"),
        ("ID_MODEL", {}, "Pixel_7"),
        ("bcdDevice", {}, "0440"),
        ("ID_NOPE", {}, None),
        ("serial", {"properties": {"serial": "from-udev"}}, "1A2B3C4D"),
        ("speed", {"properties": {"speed": "prop"}}, "prop"),
    ],
    ids=["serial", "no-serial", "vendor", "product-id", "manufacturer", "no-product", "port", "sys-name",
         "busnum", "devnum", "property", "sysfs", "missing", "builtin-first", "property-before-sysfs"],
)  # fmt: skip
def test_template_lookup(name: str, overrides: dict[str, object], value: str | None) -> None:
    """Built-ins first, then udev properties, then sysfs attributes; None when absent."""
    assert DeviceFacts(make_device(**overrides)).lookup(name) == value


def test_template_lookup_id_is_the_given_device_id() -> None:
    """``{id}`` is whatever id the caller knows, or absent."""
    assert DeviceFacts(make_device(), "usb-x").lookup("id") == "usb-x"
    assert DeviceFacts(make_device()).lookup("id") is None


def test_template_render_reports_missing_names() -> None:
    """A missing value renders as "" and is listed; with blank_is_missing empty values count too."""
    template = parse_template("{manufacturer}-{serial}-{ID_NOPE}")
    facts = DeviceFacts(make_device(manufacturer="", serial=None))
    plain = template.render(facts)
    strict = template.render(facts, blank_is_missing=True)
    assert (plain.text, plain.missing) == ("--", ("serial", "ID_NOPE"))
    assert strict.missing == ("manufacturer", "serial", "ID_NOPE")


def test_template_values_are_not_parsed_again() -> None:
    """Braces inside a device's value are copied, not treated as placeholders."""
    rendered = parse_template("{serial}").render(DeviceFacts(make_device(serial="{ID_MODEL}}")))
    assert rendered.text == "{ID_MODEL}}"


def test_template_static_properties() -> None:
    """is_static, literal_text and static_prefix describe the literal parts."""
    static = parse_template("a{{b}}")
    dynamic = parse_template("/dev/x/{serial}/y")
    assert (static.is_static, static.literal_text, static.placeholders) == (True, "a{b}", ())
    assert (dynamic.is_static, dynamic.static_prefix, dynamic.placeholders) == (False, "/dev/x/", ("serial",))
