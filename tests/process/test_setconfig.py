"""Process tier: SetConfig on the real executable, as Nomad calls it (twice, with bad config, with conflicting rules)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.fake import usb_devices
from discovery.fake.testbed import Testbed
from plugin.config import encode_config
from plugin.host import PluginProcess, RpcError


NOMAD = Path(__file__).resolve().parents[2] / "fixtures" / "nomad"


def nomad_bytes(name: str) -> bytes:
    return (NOMAD / f"setconfig-{name}.msgpack").read_bytes()


@pytest.fixture
def plugin(testbed: Testbed) -> Iterator[PluginProcess]:
    with PluginProcess.start(env_extra=testbed.env()) as process:
        yield process
        assert process.shutdown() == 0


def test_setconfig_twice_then_fingerprint(plugin: PluginProcess, testbed: Testbed) -> None:
    """Process tier: Nomad's bytes accepted twice (validation launch), then the rules are in force."""
    plugin.set_config(nomad_bytes("inline"))
    plugin.set_config(nomad_bytes("inline"))
    stream = plugin.fingerprint()
    assert stream.next_message(10.0) is not None
    phone = usb_devices.make_pixel7()
    testbed.plug(phone)
    message = stream.wait_for(lambda m: len(m.device_group) == 1, 10.0)
    assert message is not None
    group = message.device_group[0]
    assert (group.vendor, group.device_type, group.device_name) == ("google", "phone", f"pixel-{phone.serial}")
    assert group.attributes["ram"].int_val == 8 and group.attributes["ram"].unit == "GiB"


def test_setconfig_rejects_with_invalid_argument(plugin: PluginProcess) -> None:
    """Process tier: a bad config is INVALID_ARGUMENT naming the keys; a later good one still applies."""
    with pytest.raises(RpcError) as err:
        plugin.set_config(nomad_bytes("bad"))
    assert err.value.code().name == "INVALID_ARGUMENT"
    assert "debounce" in err.value.details() and "rules_file" in err.value.details()
    plugin.set_config(nomad_bytes("empty"))


def test_setconfig_rejects_broken_rules_file(plugin: PluginProcess, tmp_path: Path) -> None:
    """A rules file with errors is refused at SetConfig with file, line and field."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - match: {vendor_id: zz}\n    group: {vendor: a, type: b, name: c}\n")
    with pytest.raises(RpcError) as err:
        plugin.set_config(encode_config({"rules_file": str(rules)}))
    assert err.value.code().name == "INVALID_ARGUMENT"
    assert "rules.yaml:2:" in err.value.details() and "vendor_id" in err.value.details()


def test_setconfig_rejects_inline_and_file_rules_that_disagree(plugin: PluginProcess, tmp_path: Path) -> None:
    """One group named by an inline rule and a file rule with different attributes is refused at SetConfig."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - match: {vendor_id: 18d1}\n    group: {vendor: google, type: phone, name: pixel}\n"
        "    attributes: {os: linux}\n"
    )
    inline = {
        "match": {"vendor_id": "18d1"},
        "group": {"vendor": "google", "type": "phone", "name": "pixel"},
        "attributes": {"os": "android"},
    }
    with pytest.raises(RpcError) as err:
        plugin.set_config(encode_config({"rules_file": str(rules), "rule": [inline]}))
    assert err.value.code().name == "INVALID_ARGUMENT"
    assert "google/phone/pixel" in err.value.details()
