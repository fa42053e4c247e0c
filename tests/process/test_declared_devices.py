"""Process tier: declared devices (the generic plugin's two phones and a car) through the real executable.

The plugin runs in an empty udev world with a rules file that declares the devices; a real gRPC
client reads the Fingerprint stream, flips a car's health check by creating and removing the file
its ``test -e`` command looks for, edits the rules file to add and remove devices, and reserves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from discovery.fake.testbed import Testbed
from plugin.config import encode_config
from plugin.host import FingerprintStream, PluginProcess
from proto import device_pb2

pytestmark = pytest.mark.process

WAIT_S = 10.0


def farm_rules(state: Path, mango_ids: tuple[str, ...] = ("mphone12-1",)) -> str:
    mangos = "".join(f"      - id: {dev_id}\n" for dev_id in mango_ids)
    return f"""\
rules:
  - name: nebula phones
    kind: declared
    group: {{vendor: woogle, type: phone, name: nebula10}}
    attributes: {{model: nebula10}}
    env: {{PHONE_ADDRESS: "{{address}}"}}
    devices:
      - id: nebula10-a
        values: {{address: 10.0.0.21, serial: NB-A}}
        env: {{PHONE_SLOT: "1"}}
      - id: nebula10-b
        values: {{address: 10.0.0.22}}
        nodes: [/dev/null]
  - name: mango phones
    kind: declared
    group: {{vendor: mango, type: phone, name: mphone12-ultra}}
    devices:
{mangos}  - name: cars
    kind: declared
    group: {{vendor: doyota, type: car, name: mius}}
    health: {{command: [/usr/bin/test, -e, "{state}/up-{{address}}"], interval: 1s, timeout: 1s}}
    devices:
      - id: mius-1
        values: {{address: 10.0.1.5}}
"""


Groups = dict[str, dict[str, bool]]


def groups_of(message: device_pb2.FingerprintResponse) -> Groups:
    return {
        f"{g.vendor}/{g.device_type}/{g.device_name}": {d.ID: d.healthy for d in g.devices}
        for g in message.device_group
    }


def showing(wanted: Groups) -> Callable[[device_pb2.FingerprintResponse], bool]:
    return lambda message: groups_of(message) == wanted


FARM: Groups = {
    "woogle/phone/nebula10": {"nebula10-a": True, "nebula10-b": True},
    "mango/phone/mphone12-ultra": {"mphone12-1": True},
    "doyota/car/mius": {"mius-1": False},
}


@pytest.fixture
def farm(testbed: Testbed, tmp_path: Path) -> Iterator[tuple[PluginProcess, FingerprintStream, Path]]:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(farm_rules(tmp_path))
    with PluginProcess.start(env_extra=testbed.env()) as plugin:
        plugin.set_config(encode_config({"rules_file": str(rules_file), "debounce": "50ms"}))
        stream = plugin.fingerprint()
        yield plugin, stream, rules_file
        stream.cancel()
        assert plugin.shutdown() == 0
        assert not plugin.bad_stderr_lines, plugin.bad_stderr_lines


def replace_rules(rules_file: Path, text: str) -> None:
    """Write the new rules beside the file and rename it over, as an editor or config manager does."""
    aside = rules_file.with_suffix(".new")
    aside.write_text(text)
    aside.rename(rules_file)


def test_declared_devices_are_fingerprinted_in_their_groups_with_the_operators_ids(
    farm: tuple[PluginProcess, FingerprintStream, Path],
) -> None:
    """Two phone groups and a car group, each device under its declared ID; the rule's attributes and healthy_count."""
    _plugin, stream, _rules = farm
    message = stream.wait_for(showing(FARM), WAIT_S)
    assert message is not None, "no message with the declared farm"
    phones = next(g for g in message.device_group if g.device_name == "nebula10")
    assert phones.attributes["model"].string_val == "nebula10"
    assert phones.attributes["healthy_count"].int_val == 2
    assert "vendor_id" not in phones.attributes  # USB facts are not made up for declared devices


def test_declared_device_health_follows_its_command(
    farm: tuple[PluginProcess, FingerprintStream, Path], tmp_path: Path
) -> None:
    """The car's check (test -e on a file the test controls) turns it healthy, then unhealthy again with the reason."""
    _plugin, stream, _rules = farm
    assert stream.wait_for(showing(FARM), WAIT_S) is not None
    flag = tmp_path / "up-10.0.1.5"
    flag.touch()
    healthy = {**FARM, "doyota/car/mius": {"mius-1": True}}
    assert stream.wait_for(showing(healthy), WAIT_S) is not None, "the car never turned healthy"
    flag.unlink()
    message = stream.wait_for(showing(FARM), WAIT_S)
    assert message is not None, "the car never turned unhealthy again"
    car = next(g for g in message.device_group if g.device_name == "mius").devices[0]
    assert "exit" in car.health_description


def test_rules_reload_adds_and_removes_declared_devices(
    farm: tuple[PluginProcess, FingerprintStream, Path], tmp_path: Path
) -> None:
    """A reload that adds one shows it, one that removes it makes it gone; a broken file keeps the last good ones."""
    plugin, stream, rules_file = farm
    assert stream.wait_for(showing(FARM), WAIT_S) is not None
    replace_rules(rules_file, farm_rules(tmp_path, ("mphone12-1", "mphone12-2")))
    added = {**FARM, "mango/phone/mphone12-ultra": {"mphone12-1": True, "mphone12-2": True}}
    assert stream.wait_for(showing(added), WAIT_S) is not None, "the added phone never appeared"
    replace_rules(rules_file, farm_rules(tmp_path, ("mphone12-2",)))
    removed = {**FARM, "mango/phone/mphone12-ultra": {"mphone12-2": True}}
    assert stream.wait_for(showing(removed), WAIT_S) is not None, "the removed phone never went"
    replace_rules(rules_file, farm_rules(tmp_path, ("usb-not-yours",)))
    entry = plugin.wait_for_entry(lambda e: e.get("@message", "").startswith("rules file rejected"), WAIT_S)
    assert "belong to discovered USB devices" in str(entry.get("errors"))
    reservation = plugin.reserve(["mphone12-2"])  # the last good rules are still in force
    assert reservation.container_res.envs["DEVICE_IDS"] == "mphone12-2"


def test_reserve_declared_devices_gives_env_and_nodes(farm: tuple[PluginProcess, FingerprintStream, Path]) -> None:
    """Reserve hands over the declared nodes and kind-neutral env, no USB_* names; an unknown ID is NOT_FOUND."""
    plugin, stream, _rules = farm
    assert stream.wait_for(showing(FARM), WAIT_S) is not None
    response = plugin.reserve(["nebula10-b", "nebula10-a"])
    envs = dict(response.container_res.envs)
    assert envs == {
        "DEVICE_IDS": "nebula10-a,nebula10-b",
        "DEVICE_0_ID": "nebula10-a", "DEVICE_0_NODE": "", "DEVICE_0_SERIAL": "NB-A",
        "DEVICE_1_ID": "nebula10-b", "DEVICE_1_NODE": "/dev/null", "DEVICE_1_SERIAL": "",
        "PHONE_ADDRESS": "10.0.0.21,10.0.0.22", "PHONE_SLOT": "1,",
    }  # fmt: skip
    assert [(d.host_path, d.permissions) for d in response.container_res.devices] == [("/dev/null", "rw")]
    with pytest.raises(grpc.RpcError) as unknown:
        plugin.reserve(["mius-2"])
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert "mius-2" in (unknown.value.details() or "")
    with pytest.raises(grpc.RpcError) as unhealthy:
        plugin.reserve(["mius-1"])  # its check has not passed
    assert unhealthy.value.code() == grpc.StatusCode.FAILED_PRECONDITION
