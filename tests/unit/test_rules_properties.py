"""Property tests: hostile input never gets past the parser as anything but RulesError; matching never raises."""

from __future__ import annotations

import contextlib
import fnmatch
import posixpath
import string
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rules_factories import make_device

from discovery.rules.conditions import GlobError, compile_glob
from discovery.rules.errors import RulesError
from discovery.model import Child, Interface, UsbDevice
from discovery.rules.loader import parse_rules, rules_from_dicts
from discovery.rules.ruleset import RuleSet
from discovery.rules.schema.keys import MATCH_KEYS, RULE_KEYS
from discovery.rules.templates import TemplateError, parse_template

# No deadlines: a 2-core machine under load must not turn slow examples into failures.
PROPERTY = settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])

YAML_CHARS = string.ascii_letters + string.digits + "{}[]:,-&*!|>'\"%@` \n\t#?<=~._/\\\x00\x07\u00e9\u2028\ufeff"
SCHEMA_WORDS = [
    *RULE_KEYS,
    *MATCH_KEYS,
    "rules", "vendor", "type", "value", "unit", "host_path", "task_path", "read_only", "command",
    "interval", "timeout", "class", "subclass", "protocol", "<<",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["18d1", "0x18d1", "2341", "zz", "{serial}", "{", "}", "[a", "rw", "rwx", "30s", "GiB", "/dev/x"]),
)
keys = st.one_of(st.sampled_from(SCHEMA_WORDS), st.text(max_size=8))
data = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=30,
)


def parses_or_rules_error(text: str | bytes) -> None:
    try:
        result = parse_rules(text, "fuzz.yaml")
    except RulesError as error:
        assert error.issues, "a RulesError always lists at least one issue"
        assert all(issue.file == "fuzz.yaml" for issue in error.issues)
        str(error)
        return
    assert isinstance(result, RuleSet)


@PROPERTY
@given(st.text(alphabet=YAML_CHARS, max_size=200))
def test_property_parser_hostile_text(text: str) -> None:
    """Any text either parses or raises RulesError: nothing else escapes the parser."""
    parses_or_rules_error(text)


@PROPERTY
@given(st.binary(max_size=120))
def test_property_parser_hostile_bytes(raw: bytes) -> None:
    """Any bytes either parse or raise RulesError."""
    parses_or_rules_error(raw)


@PROPERTY
@given(data)
def test_property_parser_random_yaml_documents(document: Any) -> None:
    """Random YAML documents made of schema words and odd values only ever give RulesError."""
    parses_or_rules_error(yaml.safe_dump({"rules": document}))
    parses_or_rules_error(yaml.safe_dump(document))


@PROPERTY
@given(st.lists(st.dictionaries(keys, data, max_size=6), max_size=3) | data)
def test_property_dicts_random_data(items: Any) -> None:
    """rules_from_dicts on random plain data returns rules or raises RulesError, nothing else."""
    try:
        rules_from_dicts(items, "plugin config")
    except RulesError as error:
        assert error.issues


# -- valid rules and arbitrary devices ---------------------------------------------------------

hex16 = st.integers(0, 0xFFFF).flatmap(
    lambda n: st.sampled_from([f"{n:x}", f"0x{n:04x}", f"{n:04X}", f"0X{n:X}"])
)
hex8 = st.integers(0, 0xFF).map(lambda n: f"0x{n:02x}")


glob_parts = st.sampled_from(["a", "b", "1", "*", "*", "?", "[ab]", "[!a]", "-"])
globs = st.lists(glob_parts, min_size=1, max_size=4).map("".join)
placeholders = st.sampled_from(["{serial}", "{ID_MODEL}", "{id}", "{product}", "{bcdDevice}", "{vendor_id}"])
template_text = st.lists(placeholders | st.sampled_from(["x", "-", " ", "/", "{{", "}}", "é"]), max_size=4).map("".join)
name_text = st.lists(placeholders | st.sampled_from(["a", "-", "_", "7"]), min_size=1, max_size=3).map("".join)
attr_values = st.one_of(
    st.booleans(),
    st.integers(-(2**40), 2**40),
    template_text,
    st.fixed_dictionaries(
        {"value": placeholders, "type": st.sampled_from(["int", "float", "bool", "hex", "string"])}
    ),
    st.fixed_dictionaries({"value": st.integers(0, 1000), "unit": st.sampled_from(["GiB", "MB/s", "W"])}),
)
condition_values: dict[str, st.SearchStrategy[Any]] = {
    "vendor_id": hex16,
    "product_id": st.lists(hex16, min_size=1, max_size=3),
    "serial": globs,
    "manufacturer": globs,
    "product": st.lists(globs, min_size=1, max_size=2),
    "properties": st.dictionaries(st.sampled_from(["ID_MODEL", "ID_X"]), globs, max_size=2),
    "subsystem": st.sampled_from(["tty", "hidraw", ["tty", "block"]]),
    "device_class": hex8,
    "interface_class": st.lists(hex8, min_size=1, max_size=2),
    "interface": st.fixed_dictionaries({"class": hex8}, optional={"subclass": hex8, "protocol": hex8}),
    "port": globs,
    "driver": globs,
}
# Up to two conditions per rule, so that random devices match some of the time.
matches = st.lists(st.sampled_from(sorted(condition_values)), max_size=2, unique=True).flatmap(
    lambda names: st.fixed_dictionaries({name: condition_values[name] for name in names})
)


@st.composite
def rule_dicts(draw: st.DrawFn, index: int) -> dict[str, Any]:
    rule: dict[str, Any] = {"match": draw(matches)}
    if draw(st.integers(0, 4)) == 0:
        rule["ignore"] = True
        return rule
    # a per-rule vendor keeps static groups of different rules apart (equal ones must agree)
    rule["group"] = {"vendor": f"v{index}", "type": draw(name_text), "name": draw(name_text)}
    rule["attributes"] = draw(st.dictionaries(st.sampled_from(["a", "b.c", "unique.d"]), attr_values, max_size=3))
    rule["env"] = draw(st.dictionaries(st.sampled_from(["A", "B_1"]), template_text, max_size=2))
    rule["mounts"] = [{"host_path": draw(st.sampled_from(["/dev/x", "/dev/serial/by-id/{serial}", "/sys/{ID_MODEL}"]))}]
    rule["health"] = {"command": ["/bin/true", draw(template_text)]}
    rule["children"] = draw(st.lists(st.sampled_from(["tty", "hidraw", "usb"]), max_size=2))
    return rule


rule_sets = st.integers(1, 6).flatmap(lambda n: st.tuples(*[rule_dicts(i) for i in range(n)]))

texts = st.text(max_size=12)
optional_texts = st.none() | texts
devices = st.builds(
    make_device,
    vendor_id=st.integers(0, 0xFFFF),
    product_id=st.integers(0, 0xFFFF),
    serial=optional_texts,
    manufacturer=optional_texts,
    product=optional_texts,
    port_path=texts,
    sys_name=texts,
    device_class=st.integers(0, 0xFF),
    driver=optional_texts,
    interfaces=st.lists(
        st.builds(
            Interface,
            number=st.integers(0, 31),
            interface_class=st.integers(0, 0xFF),
            interface_subclass=st.integers(0, 0xFF),
            interface_protocol=st.integers(0, 0xFF),
            driver=optional_texts,
        ),
        max_size=3,
    ).map(tuple),
    children=st.lists(
        st.builds(Child, subsystem=st.sampled_from(["tty", "hidraw", "block"]) | texts, sys_path=texts, sys_name=texts),
        max_size=3,
    ).map(tuple),
    properties=st.dictionaries(st.sampled_from(["ID_MODEL", "ID_X"]) | texts, texts, max_size=3),
    attributes=st.dictionaries(st.sampled_from(["bcdDevice", "speed"]) | texts, texts, max_size=3),
)


@PROPERTY
@given(rule_sets, st.lists(devices, min_size=1, max_size=4), st.none() | texts)
def test_property_matching_never_raises_and_agrees_with_explain(
    items: tuple[dict[str, Any], ...], device_list: list[UsbDevice], device_id: str | None
) -> None:
    """Valid rules accept any device data: match, explain and warnings never raise, and agree."""
    rules = RuleSet(tuple(rules_from_dicts(list(items), "generated")))
    for device in device_list:
        match = rules.match(device, device_id)
        verdicts = rules.explain(device, device_id)
        winners = [v for v in verdicts if v.winner]
        assert len(winners) <= 1
        event("matched" if match else "excluded" if winners else "unmatched")
        if match is None:
            assert not winners or winners[0].excluded
            continue
        assert winners and winners[0].rule == match.rule and winners[0].group == match.group
        for part in match.group:
            assert part and "/" not in part and not any(c.isspace() for c in part)
        for mount in match.mounts:
            assert posixpath.normpath(mount.host_path) == mount.host_path
            assert mount.host_path.startswith(("/dev/", "/sys/"))
        for value in match.attributes.values():
            assert value.value == value.value  # never NaN
    rules.warnings_for(device_list)


@PROPERTY
@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.sampled_from(["{:x}", "0x{:04x}", "{:04X}", "0X{:X}"]))
def test_property_hex_ids_match_exactly_their_value(wanted: int, actual: int, spelling: str) -> None:
    """However an id is written, it matches the device with that id and no other."""
    text = spelling.format(wanted)
    rules = parse_rules(f"rules:\n  - match: {{vendor_id: {text}}}\n    ignore: true\n")
    assert rules.explain(make_device(vendor_id=actual))[0].matched is (actual == wanted)


@PROPERTY
@given(st.text(alphabet="ab*?[]!-^\\", max_size=8), st.text(alphabet="ab*?[]!-^\\", max_size=6))
def test_property_globs_agree_with_fnmatchcase(pattern: str, name: str) -> None:
    """An accepted glob matches exactly what fnmatch.fnmatchcase matches."""
    try:
        glob = compile_glob(pattern)
    except GlobError:
        assert pattern == "" or "[" in pattern
        return
    assert glob.matches(name) is fnmatch.fnmatchcase(name, pattern)


@PROPERTY
@given(st.text(max_size=30))
def test_property_templates_parse_or_template_error(text: str) -> None:
    """Template parsing raises only TemplateError."""
    with contextlib.suppress(TemplateError):
        parse_template(text)


@PROPERTY
@given(st.text(max_size=30))
def test_property_escaped_text_renders_as_itself(text: str) -> None:
    """Any text with its braces doubled is a static template that renders back to the text."""
    template = parse_template(text.replace("{", "{{").replace("}", "}}"))
    assert template.is_static and template.literal_text == text
