"""Guest side, pure: Nomad's answers and log lines as plain data, and the questions asked about them.

Only the standard library is imported, so the host's tests can check these functions without a guest.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def wall_from_hclog(stamp: str) -> float:
    """Seconds since the epoch from an hclog timestamp (``2021-05-18T10:00:00.123456Z`` and the like)."""
    return datetime.fromisoformat(stamp).timestamp()


def devices_from_node(node: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The node's device groups as plain data: vendor, type, name, attributes, and each instance's health."""
    groups = []
    for group in (node.get("NodeResources") or {}).get("Devices") or []:
        groups.append({
            "vendor": group["Vendor"], "type": group["Type"], "name": group["Name"],
            "attributes": group.get("Attributes") or {},
            "instances": [
                {"id": i["ID"], "healthy": i["Healthy"], "health": i.get("HealthDescription", "")}
                for i in group.get("Instances") or []
            ],
        })
    return groups


def item_matches(item: Mapping[str, Any], match: Mapping[str, Any]) -> bool:
    """Every key of ``match`` equals the item's (a list in ``match`` means: one of these)."""
    for key, wanted in match.items():
        value = item.get(key)
        if isinstance(wanted, list):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


def find_instance(
    groups: list[dict[str, Any]], group: list[str], id_contains: str, healthy: bool
) -> dict[str, Any] | None:
    """In devices_from_node's groups: the first instance of ``group`` whose ID contains ``id_contains``
    and whose health is ``healthy``, with its group; None when there is none."""
    for g in groups:
        if [g["vendor"], g["type"], g["name"]] != group:
            continue
        for instance in g["instances"]:
            if id_contains in instance["id"] and instance["healthy"] == healthy:
                return {"group": g, "instance": instance}
    return None
