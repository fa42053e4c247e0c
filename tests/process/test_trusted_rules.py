"""Process tier: as root, the plugin refuses a rules file anyone but root could change, at SetConfig and at reload."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.fake import usb_devices
from discovery.fake.testbed import Testbed
from plugin.config import encode_config
from plugin.host import PluginProcess, RpcError
from proto import device_pb2

WAIT_S = 10.0

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the plugin checks the rules file only when it runs as root")

PIXEL_AS = (
    "rules:\n  - match: {{vendor_id: 18d1}}\n    group: {{vendor: google, type: phone, name: {name}}}\n"
    "  - match: {{vendor_id: 0403}}\n    group: {{vendor: ftdi, type: serial, name: any}}\n"
)


def group_names(message: device_pb2.FingerprintResponse) -> set[str]:
    return {f"{g.vendor}/{g.device_type}/{g.device_name}" for g in message.device_group}


@pytest.fixture
def plugin(testbed: Testbed) -> Iterator[PluginProcess]:
    with PluginProcess.start(env_extra=testbed.env()) as process:
        yield process
        assert process.shutdown() == 0
        assert not process.bad_stderr_lines


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    """A rules file in a directory only root can write (tmp_path is 0700, root's)."""
    path = tmp_path / "rules.yaml"
    path.write_text(PIXEL_AS.format(name="pixel"))
    path.chmod(0o644)
    return path


def test_setconfig_refuses_a_rules_file_anyone_can_write(plugin: PluginProcess, rules_file: Path) -> None:
    """Mode 0666: INVALID_ARGUMENT saying why (others could run commands as root) and how to fix it."""
    rules_file.chmod(0o666)
    with pytest.raises(RpcError) as err:
        plugin.set_config(encode_config({"rules_file": str(rules_file)}))
    assert err.value.code().name == "INVALID_ARGUMENT"
    details = err.value.details()
    assert f"the rules file {rules_file} is writable by its group 'root' and every user (mode 0666)" in details
    assert f"fix: chmod go-w {rules_file}" in details and "strict_rules_permissions = false" in details


def test_setconfig_refuses_a_rules_file_in_a_directory_others_can_write(plugin: PluginProcess, tmp_path: Path) -> None:
    """A good file in a world-writable directory can be replaced by anyone: refused too, naming the directory."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    path = shared / "rules.yaml"
    path.write_text(PIXEL_AS.format(name="pixel"))
    with pytest.raises(RpcError) as err:
        plugin.set_config(encode_config({"rules_file": str(path)}))
    assert f"its directory {shared} is writable by its group 'root' and every user (mode 0777)" in err.value.details()


def test_switched_off_check_accepts_and_warns_at_start(plugin: PluginProcess, rules_file: Path) -> None:
    """strict_rules_permissions = false: the file is used, and the start logs a warning naming what is wrong."""
    rules_file.chmod(0o666)
    plugin.set_config(encode_config({"rules_file": str(rules_file), "strict_rules_permissions": False}))
    stream = plugin.fingerprint()
    assert stream.next_message(WAIT_S) is not None
    entry = plugin.wait_for_entry(lambda e: e.get("@message", "").startswith("strict_rules_permissions = false"))
    assert entry["@level"] == "warn" and entry["rules_file"] == str(rules_file)
    assert "writable by its group 'root' and every user (mode 0666)" in entry["problems"]


def test_reload_of_a_file_others_can_write_keeps_the_last_good_rules(
    plugin: PluginProcess, testbed: Testbed, rules_file: Path
) -> None:
    """chmod 0666 and an edit while running: refused and logged, the old rules stay; chmod 0644 brings the edit in."""
    plugin.set_config(encode_config({"rules_file": str(rules_file), "debounce": "50ms"}))
    stream = plugin.fingerprint()
    testbed.plug(usb_devices.make_pixel7())
    assert stream.wait_for(lambda m: group_names(m) == {"google/phone/pixel"}, WAIT_S) is not None

    rules_file.chmod(0o666)
    rules_file.write_text(PIXEL_AS.format(name="renamed"))
    rejected = "rules file rejected; the last good rules stay in force"
    refused = plugin.wait_for_entry(lambda e: e.get("@message") == rejected and "mode 0666" in e.get("errors", ""))
    assert refused["@level"] == "error" and "Traceback" not in str(refused)
    # A later, visible change proves the stream is live: it still shows the old rules' group.
    testbed.plug(usb_devices.make_ftdi())
    later = stream.wait_for(lambda m: "ftdi/serial/any" in group_names(m), WAIT_S)
    assert later is not None and group_names(later) == {"google/phone/pixel", "ftdi/serial/any"}

    rules_file.chmod(0o644)
    assert stream.wait_for(lambda m: group_names(m) == {"google/phone/renamed", "ftdi/serial/any"}, WAIT_S) is not None


def only_device(message: device_pb2.FingerprintResponse) -> device_pb2.DetectedDevice | None:
    found = [d for g in message.device_group for d in g.devices]
    return found[0] if found else None


def world_writable_check(tmp_path: Path, body: str = 'touch "$0.ran"') -> tuple[Path, Path]:
    """A health script with mode 0777 (by default it leaves ``check.sh.ran`` when it runs), a rules file using it."""
    script = tmp_path / "check.sh"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o777)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - match: {vendor_id: 18d1}\n    group: {vendor: google, type: phone, name: pixel}\n"
        f"    health: {{command: [{script}], interval: 1s, timeout: 1s}}\n"
    )
    return script, rules


def test_health_command_others_can_change_is_not_run_until_it_is_roots_alone(
    plugin: PluginProcess, testbed: Testbed, tmp_path: Path
) -> None:
    """A health script with mode 0777: the device is unhealthy saying why and how to fix it, and the script never
    runs (it would leave a mark); after chmod 0755 the next check runs it and the device turns healthy."""
    script, rules = world_writable_check(tmp_path)
    ran = tmp_path / "check.sh.ran"
    plugin.set_config(encode_config({"rules_file": str(rules), "debounce": "50ms"}))
    stream = plugin.fingerprint()
    testbed.plug(usb_devices.make_pixel7())
    reason = (f"the health command {script} is writable by its group 'root' and every user (mode 0777); "
              f"fix: chmod go-w {script}")
    device = only_device

    refused = stream.wait_for(lambda m: (d := device(m)) is not None and reason in d.health_description, WAIT_S)
    assert refused is not None, "the device never turned unhealthy with the reason"
    refused_device = device(refused)
    assert refused_device is not None and not refused_device.healthy
    assert refused_device.health_description.startswith("health check not run: the plugin runs it as root")
    logged = plugin.wait_for_entry(lambda e: reason in e.get("reason", ""))
    assert logged["@level"] == "warn" and logged["@message"].startswith("device")
    assert not ran.exists(), "the refused script ran"

    script.chmod(0o755)
    healthy = stream.wait_for(lambda m: (d := device(m)) is not None and d.healthy, WAIT_S)
    assert healthy is not None, "the device never turned healthy after chmod 0755"
    assert ran.exists()
    assert len([e for e in plugin.entries if reason in e.get("reason", "")]) == 1  # once, not at every interval


def test_switched_off_check_runs_a_health_command_others_can_change(
    plugin: PluginProcess, testbed: Testbed, tmp_path: Path
) -> None:
    """strict_rules_permissions = false covers the commands too: the 0777 script runs (its own verdict shows)."""
    _, rules = world_writable_check(tmp_path, "echo ran as root >&2; exit 3")
    plugin.set_config(encode_config({"rules_file": str(rules), "debounce": "50ms", "strict_rules_permissions": False}))
    stream = plugin.fingerprint()
    testbed.plug(usb_devices.make_pixel7())
    verdict = "health check failed: exit 3: ran as root"
    ran = stream.wait_for(lambda m: (d := only_device(m)) is not None and d.health_description == verdict, WAIT_S)
    assert ran is not None, "the script's own verdict never showed with the check switched off"
