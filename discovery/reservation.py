"""plan_reservation(ids, snapshot): the device nodes, env vars and mounts a task gets for the devices Nomad picked.

Plain data, no protobuf: the device service turns a Reservation into a ContainerReservation and the
CLI's ``explain`` prints it. Paths are resolved at reservation time (bus/device numbers change on
every replug) and must end up under /dev or /sys after following symlinks: the plugin runs as root,
and a rule or a hostile udev property must never hand a task anything else.

Environment variables (documented in the README), for devices of every kind:

* ``DEVICE_IDS``: the reserved IDs, sorted, comma-separated.
* ``DEVICE_<i>_ID``, ``_SERIAL``, ``_NODE``: for the i-th ID in that order. ``_NODE`` is the device's
  main node: for USB the same as ``USB_DEVICE_<i>_NODE``; otherwise its own node (``/dev/ttyAMA0``; a
  declared device: the first of its ``nodes``), else the first of the rule's ``nodes:``, else "".
* only when every reserved device is USB, as before kinds existed (compatibility): ``USB_DEVICE_IDS``,
  ``USB_DEVICE_<i>_ID``, ``_SERIAL``, ``_NODE``, ``_BUS_NODE``. ``_NODE`` is the first handed-over child
  node (a tty, hidraw, ...) or the USB node when there is none. A reservation of other devices sets
  no ``USB_`` names: nothing there is USB.
* each rule ``env`` entry: its value when every device renders the same one, otherwise one value per
  device joined with commas in ID order (the i-th value belongs to ``DEVICE_<i>``; a declared
  device's own env entry missing on another device is "" there).

Nodes handed over, each once and with the rule's permissions: the device's own node (the USB node,
``/dev/ttyAMA0``; a declared device's nodes, which must resolve to a device node under /dev), the
children its rule hands over (USB), then the rule's ``nodes:``, which must resolve under /dev.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from discovery.model import DeclaredDevice
from discovery.nodes import check_node, handed_over_children
from discovery.state.snapshot import DeviceState, Snapshot

ALLOWED_ROOTS = ("/dev", "/sys")


class ReservationError(Exception):
    """A reservation cannot be made; the subclass says which gRPC status fits."""


class EmptyRequestError(ReservationError):
    pass


class UnknownDeviceError(ReservationError):
    pass


class DeviceUnavailableError(ReservationError):
    pass


@dataclass(frozen=True)
class DevicePlan:
    task_path: str
    host_path: str
    permissions: str


@dataclass(frozen=True)
class MountPlan:
    task_path: str
    host_path: str
    read_only: bool


@dataclass(frozen=True)
class Reservation:
    envs: dict[str, str] = field(default_factory=dict)
    mounts: tuple[MountPlan, ...] = ()
    devices: tuple[DevicePlan, ...] = ()


def within_allowed_roots(path: str) -> bool:
    """Strictly below /dev or /sys: a path resolving to /dev itself would hand over every device."""
    return any(path.startswith(root + "/") for root in ALLOWED_ROOTS)


def resolve_node(path: str, realpath: Callable[[str], str] = os.path.realpath) -> str:
    """The canonical device node behind ``path``; exec and java refuse symlinks, so Nomad gets the target."""
    resolved = realpath(path)
    if not within_allowed_roots(resolved):
        raise DeviceUnavailableError(f"{path} resolves to {resolved}, outside /dev and /sys")
    problem = check_node(resolved)  # the same test that makes a device unhealthy
    if problem:
        raise DeviceUnavailableError(problem)
    return resolved


def resolve_dev_node(path: str, realpath: Callable[[str], str] = os.path.realpath) -> str:
    """A node a rule or a declared device names: like :func:`resolve_node`, but only under /dev (a path
    someone wrote is a device node, never a sysfs file)."""
    resolved = realpath(path)
    if not resolved.startswith("/dev/"):
        raise DeviceUnavailableError(f"node {path} resolves to {resolved}, outside /dev")
    return resolve_node(resolved, realpath)


MAX_SHOWN_ID = 100  # an ID in a message is cut here: Nomad's IDs are short, a hostile one must not fill the reply


def shown_id(dev_id: str) -> str:
    """``dev_id`` quoted for a message, cut to MAX_SHOWN_ID characters (gRPC caps a status message's size)."""
    text = repr(dev_id)
    return text if len(text) <= MAX_SHOWN_ID else f"{text[: MAX_SHOWN_ID - 13]}... ({len(dev_id)} chars)"


def plan_reservation(
    device_ids: Sequence[str], snapshot: Snapshot, realpath: Callable[[str], str] = os.path.realpath
) -> Reservation:
    if not device_ids:
        raise EmptyRequestError("no device IDs in the request")
    states: list[DeviceState] = []
    for dev_id in sorted(set(device_ids)):
        state = snapshot.devices.get(dev_id)
        if state is None:
            raise UnknownDeviceError(f"unknown device ID {shown_id(dev_id)}")
        if not state.present:
            raise DeviceUnavailableError(f"device {dev_id} is unplugged")
        if not state.healthy:
            raise DeviceUnavailableError(f"device {dev_id} is unhealthy: {state.reason}")
        states.append(state)
    groups = {s.group for s in states}
    if len(groups) > 1:
        names = ", ".join("/".join(g) for g in sorted(groups))
        raise EmptyRequestError(f"device IDs belong to several groups ({names}); Nomad reserves from one group")

    devices: list[DevicePlan] = []
    mounts: list[MountPlan] = []
    all_usb = all(s.device.kind == "usb" for s in states)
    ids = ",".join(s.id for s in states)
    envs: dict[str, str] = {"DEVICE_IDS": ids}
    usb_envs: dict[str, str] = {"USB_DEVICE_IDS": ids} if all_usb else {}  # after the neutral names
    rule_env: dict[str, dict[int, str]] = {}
    seen_nodes: set[str] = set()
    for i, state in enumerate(states):
        device, match = state.device, state.match
        child_node = ""
        own_node = ""
        if isinstance(device, DeclaredDevice):
            for path in dict.fromkeys(device.nodes):
                node = resolve_dev_node(path, realpath)
                _add_node(devices, seen_nodes, node, match.permissions)
                own_node = own_node or node
        elif device.device_node:
            own_node = resolve_node(device.device_node, realpath)
            _add_node(devices, seen_nodes, own_node, match.permissions)
        for child in handed_over_children(device, match.children):
            assert child.device_node is not None
            node = resolve_node(child.device_node, realpath)
            _add_node(devices, seen_nodes, node, match.permissions)
            child_node = child_node or node
        extra_node = ""
        for path in match.nodes:
            node = resolve_dev_node(path, realpath)
            _add_node(devices, seen_nodes, node, match.permissions)
            extra_node = extra_node or node
        if device.kind == "usb":
            main_node = child_node or own_node
        else:
            main_node = own_node or extra_node
        envs[f"DEVICE_{i}_ID"] = state.id
        envs[f"DEVICE_{i}_SERIAL"] = device.serial or ""
        envs[f"DEVICE_{i}_NODE"] = main_node
        if all_usb:
            usb_envs[f"USB_DEVICE_{i}_ID"] = state.id
            usb_envs[f"USB_DEVICE_{i}_SERIAL"] = device.serial or ""
            usb_envs[f"USB_DEVICE_{i}_NODE"] = main_node
            usb_envs[f"USB_DEVICE_{i}_BUS_NODE"] = own_node
        for key, value in match.env.items():
            rule_env.setdefault(key, {})[i] = value
        for mount in match.mounts:
            host = realpath(mount.host_path)
            if not within_allowed_roots(host):
                raise DeviceUnavailableError(f"mount {mount.host_path} resolves to {host}, outside /dev and /sys")
            if not os.path.exists(host):
                raise DeviceUnavailableError(f"mount source {host} does not exist")
            plan = MountPlan(task_path=mount.task_path, host_path=host, read_only=mount.read_only)
            if plan not in mounts:
                mounts.append(plan)
    envs.update(usb_envs)
    for key, by_index in rule_env.items():
        # A declared device's own env may be missing on the others: "" keeps the i-th value the i-th device's.
        values = [by_index.get(i, "") for i in range(len(states))]
        # One value when all devices agree; otherwise one per device, in ID order like USB_DEVICE_<i>.
        envs[key] = values[0] if len(set(values)) == 1 else ",".join(values)
    return Reservation(envs=envs, mounts=tuple(mounts), devices=tuple(devices))


def _add_node(devices: list[DevicePlan], seen: set[str], node: str, permissions: str) -> None:
    if node not in seen:
        seen.add(node)
        devices.append(DevicePlan(task_path=node, host_path=node, permissions=permissions))
