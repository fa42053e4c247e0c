"""Which /dev nodes of a device a task gets: the USB node itself and the children its rule hands over."""

from __future__ import annotations

from collections.abc import Collection

from discovery.model import Child, UsbDevice


def handed_over_children(device: UsbDevice, subsystems: Collection[str] | None) -> list[Child]:
    """Children with a /dev node, limited to ``subsystems`` when the rule names some."""
    return [
        c
        for c in device.children
        if c.device_node and (subsystems is None or c.subsystem in subsystems)
    ]


def handed_over_nodes(device: UsbDevice, subsystems: Collection[str] | None) -> list[str]:
    """The USB node first, then each handed-over child node, without duplicates."""
    nodes = [device.device_node] if device.device_node else []
    for child in handed_over_children(device, subsystems):
        assert child.device_node is not None
        if child.device_node not in nodes:
            nodes.append(child.device_node)
    return nodes
