"""plan_reservation: the nodes, env vars and mounts a task gets for the IDs Nomad picked, or why it gets none.

Device paths are mapped onto device nodes every Linux machine has (/dev/null, /dev/zero, /dev/full)
through the injected realpath, so the plan's node checks pass without a udev world.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rules_factories import make_child, make_device
from snapshot_factories import make_match, make_snapshot, make_state

from discovery.reservation import (
    DevicePlan,
    DeviceUnavailableError,
    EmptyRequestError,
    MountPlan,
    Reservation,
    ReservationError,
    UnknownDeviceError,
    plan_reservation,
)
from discovery.rules.matching import Mount
from discovery.state.snapshot import DeviceState

# Where the fake devices' paths "really" are: nodes that exist and are usable everywhere.
REAL = {
    "/dev/bus/usb/001/005": "/dev/null",
    "/dev/bus/usb/001/006": "/dev/full",
    "/dev/ttyACM0": "/dev/zero",
    "/dev/ttyACM1": "/dev/zero",  # a second name for the same node: handed over once
    "/dev/hidraw0": "/dev/full",
    "/dev/serial/by-id": "/dev/shm",
    "/dev/escape": "/etc/passwd",
    "/dev/vanished": "/dev/no-such-node",
}


def realpath(path: str) -> str:
    return REAL.get(path, path)


def board(device_id: str, devnum: int = 5, serial: str | None = "SER1", **match: object) -> DeviceState:
    """A board with a tty and a hidraw child, in arduino/board/uno."""
    device = make_device(
        sys_path=f"/sys/devices/pci0000:00/0000:00:14.0/usb1/1-{devnum}",
        devnum=devnum,
        serial=serial,
        device_node=f"/dev/bus/usb/001/{devnum:03d}",
        children=(make_child("tty", "ttyACM0"), make_child("hidraw", "hidraw0")),
    )
    return make_state(device_id, device=device, match=make_match(("arduino", "board", "uno"), **match))


def plan(ids: list[str], *states: DeviceState, resolve: Callable[[str], str] = realpath) -> Reservation:
    return plan_reservation(ids, make_snapshot(*states), realpath=resolve)


@pytest.mark.parametrize(
    ("ids", "states", "error", "message"),
    [
        ([], [board("usb-a")], EmptyRequestError, "no device IDs"),
        (["usb-x"], [board("usb-a")], UnknownDeviceError, "unknown device ID 'usb-x'"),
        (["usb-a"], [make_state("usb-a", present=False, healthy=False, reason="unplugged")],
         DeviceUnavailableError, "usb-a is unplugged"),
        (["usb-a"], [make_state("usb-a", healthy=False, reason="node /dev/ttyACM0 missing")],
         DeviceUnavailableError, "usb-a is unhealthy: node /dev/ttyACM0 missing"),
        (["usb-a", "usb-p"], [board("usb-a"), make_state("usb-p", device=make_device(device_node=None))],
         EmptyRequestError, "several groups"),
        (["usb-a"], [make_state("usb-a", device=make_device(device_node="/dev/escape"))],
         DeviceUnavailableError, "resolves to /etc/passwd, outside /dev and /sys"),
        (["usb-a"], [make_state("usb-a", device=make_device(device_node="/dev/vanished"))],
         DeviceUnavailableError, "node /dev/no-such-node missing"),
        (["usb-a"], [board("usb-a", mounts=(Mount("/dev/escape", "/x"),))],
         DeviceUnavailableError, "mount /dev/escape resolves to /etc/passwd"),
        (["usb-a"], [board("usb-a", mounts=(Mount("/dev/gone-dir", "/x"),))],
         DeviceUnavailableError, "mount source /dev/gone-dir does not exist"),
    ],
    ids=["no-ids", "unknown", "unplugged", "unhealthy", "two-groups", "node-escapes", "node-missing",
         "mount-escapes", "mount-missing"],
)
def test_plan_reservation_refuses(
    ids: list[str], states: list[DeviceState], error: type[ReservationError], message: str
) -> None:
    """Each refusal is its own error type (the servicer maps it to a gRPC status) and says why."""
    with pytest.raises(error, match=message):
        plan(ids, *states)


def test_plan_reservation_hands_over_the_usb_node_and_children_with_the_rules_permissions() -> None:
    """The USB node first, then each child node, resolved, each once, with the rule's permissions."""
    state = board("usb-a", permissions="rwm")
    reservation = plan(["usb-a"], state)
    assert reservation.devices == (
        DevicePlan("/dev/null", "/dev/null", "rwm"),
        DevicePlan("/dev/zero", "/dev/zero", "rwm"),
        DevicePlan("/dev/full", "/dev/full", "rwm"),
    )


def test_plan_reservation_hands_over_only_the_children_the_rule_names() -> None:
    """children: [tty] keeps the hidraw node back; the main node is the first handed-over child."""
    reservation = plan(["usb-a"], board("usb-a", children=frozenset({"tty"})))
    assert [d.host_path for d in reservation.devices] == ["/dev/null", "/dev/zero"]
    assert reservation.envs["USB_DEVICE_0_NODE"] == "/dev/zero"


def test_plan_reservation_env_per_device_in_id_order() -> None:
    """(USB_)DEVICE_IDS is sorted; (USB_)DEVICE_<i>_* follow that order, whatever order Nomad asked in."""
    first = board("usb-a", devnum=5, serial="S-A", children=frozenset())
    second = board("usb-b", devnum=6, serial=None, children=frozenset())
    envs = plan(["usb-b", "usb-a", "usb-b"], first, second).envs
    assert envs == {
        "DEVICE_IDS": "usb-a,usb-b",
        "DEVICE_0_ID": "usb-a", "DEVICE_0_SERIAL": "S-A", "DEVICE_0_NODE": "/dev/null",
        "DEVICE_1_ID": "usb-b", "DEVICE_1_SERIAL": "", "DEVICE_1_NODE": "/dev/full",
        "USB_DEVICE_IDS": "usb-a,usb-b",
        "USB_DEVICE_0_ID": "usb-a", "USB_DEVICE_0_SERIAL": "S-A",
        "USB_DEVICE_0_NODE": "/dev/null", "USB_DEVICE_0_BUS_NODE": "/dev/null",
        "USB_DEVICE_1_ID": "usb-b", "USB_DEVICE_1_SERIAL": "",
        "USB_DEVICE_1_NODE": "/dev/full", "USB_DEVICE_1_BUS_NODE": "/dev/full",
    }


def test_plan_reservation_rule_env_one_value_when_devices_agree_else_one_per_device() -> None:
    """A rule env value the devices share is given once; differing values are joined in ID order."""
    first = board("usb-a", devnum=5, env={"BOARD": "uno", "PORT": "p5"})
    second = board("usb-b", devnum=6, env={"BOARD": "uno", "PORT": "p6"})
    envs = plan(["usb-b", "usb-a"], first, second).envs
    assert (envs["BOARD"], envs["PORT"]) == ("uno", "p5,p6")


def test_plan_reservation_mounts_are_resolved_and_given_once() -> None:
    """Mount sources are resolved (and must stay under /dev or /sys); the same mount twice is one mount."""
    by_id = Mount("/dev/serial/by-id", "/dev/serial/by-id")
    first = board("usb-a", devnum=5, mounts=(by_id,))
    second = board("usb-b", devnum=6, mounts=(by_id,))
    assert plan(["usb-a", "usb-b"], first, second).mounts == (MountPlan("/dev/serial/by-id", "/dev/shm", True),)



def test_plan_reservation_cuts_a_huge_unknown_id_in_its_message() -> None:
    """A megabyte-long unknown ID is named by its start and length: gRPC would drop a reply that quotes it whole."""
    with pytest.raises(UnknownDeviceError) as caught:
        plan_reservation(["x" * 1_000_000], make_snapshot())
    message = str(caught.value)
    assert len(message) < 200 and message.endswith("... (1000000 chars)")
