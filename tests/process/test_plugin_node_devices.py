"""Process tier: devices outside USB (kind: udev) through the real executable, in one fake world per fixture.

The Raspberry Pi HAT, the PCIe serial card, the v4l2 capture card and the Chromebook fingerprint
MCU of ``fixtures/`` are plugged into a umockdev world; the plugin runs as a real process with the
real handshake, reads a ``kind: udev`` rules file (the example file's rules for the Pi and the card,
the two below for the others), and a real gRPC client reads the Fingerprint stream and reserves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import pytest
import yaml
from process_support import Plugins

from discovery.fake.node_devices import FakeBoard
from discovery.fake.testbed import Testbed, list_fixtures, load_fixture, make_pcie_serial_card
from proto import device_pb2

WAIT_S = 10.0
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rules.yaml"
NODE_FIXTURES = ("raspberry-pi-hat", "pcie-serial-card", "v4l2-capture-card", "cros-fp")

# examples/rules.yaml has no rule for these two; written as an operator would, one on PCI ids, one on the platform.
CAPTURE_RULE = """\
  - name: capture card
    kind: udev
    match:
      subsystem: video4linux
      pci: {vendor_id: 0x14f1, device_id: 0x8852, subsystem_vendor_id: 0x0070}
    group: {vendor: hauppauge, type: capture, name: wintv-hvr1250}
    env: {CAPTURE_NODE: "{devnode}", CAPTURE_SLOT: "{pci.slot}"}
"""
FINGERPRINT_RULE = """\
  - name: fingerprint mcu
    kind: udev
    match: {subsystem: misc, kernel: cros_fp, platform: "cros-ec-chardev.*"}
    group: {vendor: google, type: fingerprint, name: cros-fp}
    permissions: r
    env: {FP_DEVICE: "{devnode}"}
"""


def example_rules(*kinds: str) -> str:
    """The rules of examples/rules.yaml of these kinds, as written there (a rule without ``kind:`` is usb)."""
    items: list[list[str]] = []
    for line in EXAMPLES.read_text().splitlines(keepends=True):
        if line.startswith("  - "):
            items.append([line])
        elif items and line.startswith("    "):
            items[-1].append(line)
    chosen = ["".join(item) for item in items if yaml.safe_load("".join(item))[0].get("kind", "usb") in kinds]
    assert chosen, f"examples/rules.yaml has no rule of kind {kinds}"
    return "".join(chosen)


def rules_file_text(*rules: str) -> str:
    return "rules:\n" + "".join(rules)


UDEV_RULES = rules_file_text(example_rules("udev"), CAPTURE_RULE, FINGERPRINT_RULE)


@dataclass(frozen=True)
class Group:
    """What one group of a fixture looks like to Nomad, and what reserving all of it gives a task."""

    ids: tuple[str, ...]
    attributes: dict[str, str | int]  # besides healthy_count
    nodes: tuple[tuple[str, str], ...]  # (host path, permissions) handed over
    rule_env: dict[str, str]


EXPECTED: dict[str, dict[str, Group]] = {
    "raspberry-pi-hat": {
        "raspberrypi/gpio/bcm2711": Group(
            ("gpio-platform-fe200000.gpio-gpiochip0",), {"subsystem": "gpio", "driver": "pinctrl-bcm2835"},
            (("/dev/gpiochip0", "rw"),), {"GPIO_CHIP": "/dev/gpiochip0"}),
        "raspberrypi/i2c/i2c-1": Group(
            ("i2c-dev-platform-fe804000.i2c-i2c-1",), {"subsystem": "i2c-dev", "driver": "i2c-bcm2835"},
            (("/dev/i2c-1", "rw"),), {"I2C_BUS": "/dev/i2c-1"}),
        "raspberrypi/spi/spi0": Group(
            ("spidev-platform-fe204000.spi-spidev0.0",), {"subsystem": "spidev", "driver": "spidev"},
            (("/dev/spidev0.0", "rw"),), {}),
        "raspberrypi/serial/pl011": Group(  # the rule's nodes: add the GPIO chip
            ("tty-platform-fe201000.serial-ttyAMA0",), {"subsystem": "tty", "driver": "uart-pl011"},
            (("/dev/ttyAMA0", "rw"), ("/dev/gpiochip0", "rw")), {"HAT_UART": "/dev/ttyAMA0"}),
    },
    "pcie-serial-card": {
        "oxford/serial/oxpcie952": Group(
            ("tty-pci-03_00.0-ttyS4", "tty-pci-03_00.0-ttyS5"),
            {"subsystem": "tty", "driver": "serial", "pci_vendor_id": 0x1415, "pci_device_id": 0xC158,
             "pci_class": 0x070002},
            (("/dev/ttyS4", "rw"), ("/dev/ttyS5", "rw")),
            {"SERIAL_PORT": "/dev/ttyS4,/dev/ttyS5", "CARD_SLOT": "0000:03:00.0"}),
    },
    "v4l2-capture-card": {
        "hauppauge/capture/wintv-hvr1250": Group(
            ("video4linux-pci-04_00.0-video0", "video4linux-pci-04_00.0-video1"),
            {"subsystem": "video4linux", "driver": "cx23885", "pci_vendor_id": 0x14F1, "pci_device_id": 0x8852,
             "pci_class": 0x040000},
            (("/dev/video0", "rw"), ("/dev/video1", "rw")),
            {"CAPTURE_NODE": "/dev/video0,/dev/video1", "CAPTURE_SLOT": "0000:04:00.0"}),
    },
    "cros-fp": {
        "google/fingerprint/cros-fp": Group(
            ("misc-platform-AMDI0020_01-cros_fp",), {"subsystem": "misc", "driver": "cros-ec-chardev"},
            (("/dev/cros_fp", "r"),), {"FP_DEVICE": "/dev/cros_fp"}),
    },
}  # fmt: skip

Health = dict[str, dict[str, bool]]  # group -> ID -> healthy


def health_of(message: device_pb2.FingerprintResponse) -> Health:
    return {
        f"{g.vendor}/{g.device_type}/{g.device_name}": {d.ID: d.healthy for d in g.devices}
        for g in message.device_group
    }


def expected_health(fixtures: tuple[str, ...], healthy: bool = True) -> Health:
    return {name: dict.fromkeys(group.ids, healthy) for f in fixtures for name, group in EXPECTED[f].items()}


def showing(wanted: Health) -> Callable[[device_pb2.FingerprintResponse], bool]:
    return lambda message: health_of(message) == wanted


def attributes_of(group: device_pb2.DeviceGroup) -> dict[str, object]:
    return {name: getattr(value, value.WhichOneof("value")) for name, value in group.attributes.items()}


def plug_fixtures(testbed: Testbed, names: tuple[str, ...] | list[str]) -> None:
    for name in names:
        testbed.plug(load_fixture(name))


@pytest.mark.parametrize("fixture", NODE_FIXTURES)
def test_fixture_devices_are_fingerprinted_with_stable_ids_and_udev_attributes(plugins: Plugins, fixture: str) -> None:
    """Attached at start: each group with the IDs of the place, healthy, subsystem/driver/PCI ids and healthy_count."""
    plug_fixtures(plugins.testbed, [fixture])
    stream = plugins.start(UDEV_RULES)
    message = stream.wait_for(showing(expected_health((fixture,))), WAIT_S)
    assert message is not None, f"no message with {fixture}'s groups"
    for group in message.device_group:
        expected = EXPECTED[fixture][f"{group.vendor}/{group.device_type}/{group.device_name}"]
        assert attributes_of(group) == {**expected.attributes, "healthy_count": len(expected.ids)}
        assert all(d.health_description == "healthy" for d in group.devices)
    plugins.stop()


@pytest.mark.parametrize("fixture", NODE_FIXTURES)
def test_reserve_hands_over_the_nodes_with_the_rules_permissions_and_kind_neutral_env(
    plugins: Plugins, fixture: str
) -> None:
    """Each group reserved whole: its nodes and the rule's nodes:, DEVICE_* and the rule's env, no USB_* names."""
    plug_fixtures(plugins.testbed, [fixture])
    stream = plugins.start(UDEV_RULES)
    assert stream.wait_for(showing(expected_health((fixture,))), WAIT_S) is not None
    for name, group in EXPECTED[fixture].items():
        response = plugins.plugin.reserve(list(reversed(group.ids)))
        per_device = {
            key: value
            for i, dev_id in enumerate(group.ids)
            for key, value in {f"DEVICE_{i}_ID": dev_id, f"DEVICE_{i}_NODE": group.nodes[i][0],
                               f"DEVICE_{i}_SERIAL": ""}.items()
        }
        assert dict(response.container_res.envs) == {"DEVICE_IDS": ",".join(group.ids), **per_device,
                                                     **group.rule_env}, name
        assert [(d.host_path, d.task_path, d.permissions) for d in response.container_res.devices] == [
            (path, path, permissions) for path, permissions in group.nodes
        ], name
    with pytest.raises(grpc.RpcError) as unknown:
        plugins.plugin.reserve(["tty-pci-07_00.0-ttyS9"])
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert "tty-pci-07_00.0-ttyS9" in (unknown.value.details() or "")
    plugins.stop()


@pytest.mark.parametrize("fixture", NODE_FIXTURES)
def test_hotplugged_board_turns_unplugged_then_gone_and_keeps_its_ids_after_replug_and_restart(
    plugins: Plugins, fixture: str
) -> None:
    """Plugged into the running world it appears; unplugged it is unhealthy, then gone after the grace; same IDs back."""
    stream = plugins.start(UDEV_RULES, unplugged_grace="2s")
    assert stream.wait_for(showing({}), WAIT_S) is not None
    handle = plugins.testbed.plug(load_fixture(fixture))
    assert stream.wait_for(showing(expected_health((fixture,))), WAIT_S) is not None, "the board never appeared"

    plugins.testbed.unplug(handle)
    unplugged = stream.wait_for(showing(expected_health((fixture,), healthy=False)), WAIT_S)
    assert unplugged is not None, "the board never turned unhealthy"
    assert {d.health_description for g in unplugged.device_group for d in g.devices} == {"unplugged"}
    first_id = next(iter(EXPECTED[fixture].values())).ids[0]
    with pytest.raises(grpc.RpcError) as gone:
        plugins.plugin.reserve([first_id])
    assert gone.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "unplugged" in (gone.value.details() or "")
    assert stream.wait_for(showing({}), WAIT_S) is not None, "the board was still listed after the grace"

    plugins.testbed.plug(load_fixture(fixture))
    assert stream.wait_for(showing(expected_health((fixture,))), WAIT_S) is not None, "not the same IDs after replug"
    plugins.stop()

    stream = plugins.start(UDEV_RULES)  # the same state directory, the board attached at start
    assert stream.wait_for(showing(expected_health((fixture,))), WAIT_S) is not None, "not the same IDs after restart"
    plugins.stop()


@pytest.mark.parametrize(
    "before",
    [rules_file_text(example_rules("usb")), rules_file_text(example_rules("udev"))],
    ids=["from-usb-rules-only", "from-tty-and-pi-rules"],
)
def test_rules_reload_adding_a_udev_subsystem_lists_its_devices_without_restart(plugins: Plugins, before: str) -> None:
    """A reload that adds rules for video4linux and misc (not listed before) makes the card and the MCU appear."""
    plug_fixtures(plugins.testbed, NODE_FIXTURES)
    listed_before = ("raspberry-pi-hat", "pcie-serial-card") if "kind: udev" in before else ()
    stream = plugins.start(before)
    assert stream.wait_for(showing(expected_health(listed_before)), WAIT_S) is not None
    plugins.reload(before + CAPTURE_RULE + FINGERPRINT_RULE)
    added = expected_health((*listed_before, "v4l2-capture-card", "cros-fp"))
    assert stream.wait_for(showing(added), WAIT_S) is not None, "the new subsystems' devices never appeared"
    plugins.stop()


def usb_groups(message: device_pb2.FingerprintResponse) -> dict[str, tuple[tuple[str, ...], dict[str, object]]]:
    """The USB groups: IDs and attributes (healthy_count left out: the example's health checks change it)."""
    return {
        f"{g.vendor}/{g.device_type}/{g.device_name}": (
            tuple(d.ID for d in g.devices),
            {k: v for k, v in attributes_of(g).items() if k != "healthy_count"},
        )
        for g in message.device_group
        if all(d.ID.startswith("usb-") for d in g.devices)
    }


def test_usb_devices_keep_their_ids_and_groups_when_udev_rules_are_present(plugins: Plugins, tmp_path: Path) -> None:
    """Every fixture attached: the example's USB rules give the same USB groups with or without udev rules beside them."""
    plug_fixtures(plugins.testbed, list_fixtures())
    usb_only = plugins.start(rules_file_text(example_rules("usb")), state=tmp_path / "usb-only").next_message(WAIT_S)
    assert usb_only is not None and usb_groups(usb_only), "no USB groups"
    assert len(usb_groups(usb_only)) == len(usb_only.device_group)
    plugins.stop()

    stream = plugins.start(rules_file_text(example_rules("usb", "udev"), CAPTURE_RULE, FINGERPRINT_RULE),
                           state=tmp_path / "with-udev")
    with_udev = stream.next_message(WAIT_S)
    assert with_udev is not None
    assert expected_health(NODE_FIXTURES).items() <= health_of(with_udev).items()
    assert usb_groups(with_udev) == usb_groups(usb_only)
    plugins.stop()


def card_reporting_serial(bus: int, line: int, root_port: str) -> FakeBoard:
    """A one-port PCIe serial card whose port reports serial OX-1, like every card of a batch with one burned-in serial."""
    card = make_pcie_serial_card(bus=bus, first_line=line, port=root_port)
    port = card.nodes[0]
    return FakeBoard(card.parents, (replace(port, properties={**port.properties, "ID_SERIAL_SHORT": "OX-1"}),))


def test_twin_ports_sharing_a_serial_keep_their_ids_across_a_restart(plugins: Plugins) -> None:
    """The port seen first holds the serial ID, its twin the place's; a restart with both attached keeps that."""
    expected = {"oxford/serial/oxpcie952": {"tty-OX-1": True, "tty-pci-05_00.0-ttyS6": True}}
    stream = plugins.start(UDEV_RULES)
    plugins.testbed.plug(card_reporting_serial(3, 4, "0000:00:1c.0"))
    assert stream.wait_for(showing({"oxford/serial/oxpcie952": {"tty-OX-1": True}}), WAIT_S) is not None
    plugins.testbed.plug(card_reporting_serial(5, 6, "0000:00:1c.2"))
    assert stream.wait_for(showing(expected), WAIT_S) is not None, "the twin did not get the place's ID"
    plugins.stop()

    first = plugins.start(UDEV_RULES).next_message(WAIT_S)  # both attached: one enumeration, IDs from the state dir
    assert first is not None and health_of(first) == expected
    plugins.stop()
