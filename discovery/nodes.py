"""Which /dev nodes of a device a task gets (its own node, the children its rule hands over, the rule's ``nodes:``), and whether each is usable."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Collection, Sequence

from discovery.model import Child, DeclaredDevice, Device


def handed_over_children(device: Device, subsystems: Collection[str] | None) -> list[Child]:
    """Children with a /dev node, limited to ``subsystems`` when the rule names some (only USB devices have any)."""
    return [
        c
        for c in device.children
        if c.device_node and (subsystems is None or c.subsystem in subsystems)
    ]


def handed_over_nodes(device: Device, subsystems: Collection[str] | None, extra: Sequence[str] = ()) -> list[str]:
    """The device's own node first (the USB node, ``/dev/ttyAMA0``; a declared device: its nodes), then each
    handed-over child node, then ``extra`` (the rule's rendered ``nodes:``), without duplicates."""
    if isinstance(device, DeclaredDevice):
        nodes = list(dict.fromkeys(device.nodes))
    else:
        nodes = [device.device_node] if device.device_node else []
    for child in handed_over_children(device, subsystems):
        assert child.device_node is not None
        if child.device_node not in nodes:
            nodes.append(child.device_node)
    for path in extra:
        if path not in nodes:
            nodes.append(path)
    return nodes


NodeCheck = Callable[[str], str | None]


def check_node(path: str) -> str | None:
    """Why ``path`` cannot be handed to a task, or None when it is a usable device node.

    A missing node (a rule's ``nodes:`` path that is not there, a tty whose driver went away)
    makes the device unhealthy with the reason ``node <path> missing``.
    """
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
