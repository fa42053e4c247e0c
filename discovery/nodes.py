"""Which /dev nodes of a device a task gets (the USB node and the children its rule hands over), and whether each is usable."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Collection

from discovery.model import Child, DeclaredDevice, Device


def handed_over_children(device: Device, subsystems: Collection[str] | None) -> list[Child]:
    """Children with a /dev node, limited to ``subsystems`` when the rule names some."""
    return [
        c
        for c in device.children
        if c.device_node and (subsystems is None or c.subsystem in subsystems)
    ]


def handed_over_nodes(device: Device, subsystems: Collection[str] | None) -> list[str]:
    """The device's own node first (USB: /dev/bus/usb/...; udev: /dev/ttyAMA0), then each handed-over child
    node, without duplicates; a declared device: its nodes."""
    if isinstance(device, DeclaredDevice):
        return list(dict.fromkeys(device.nodes))
    nodes = [device.device_node] if device.device_node else []
    for child in handed_over_children(device, subsystems):
        assert child.device_node is not None
        if child.device_node not in nodes:
            nodes.append(child.device_node)
    return nodes


NodeCheck = Callable[[str], str | None]


def check_node(path: str) -> str | None:
    """Why ``path`` cannot be handed to a task, or None when it is a usable device node."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"node {path} missing"
    except OSError as exc:
        return f"node {path} not accessible: {exc.strerror or exc}"
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        return f"node {path} is not a device node"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"node {path} not accessible: permission denied"
    return None
