"""Guest side, pure: Fingerprint messages as plain data, and the questions the host asks about them.

Only the standard library is imported, so the host's tests can check these functions without a guest.
"""

from __future__ import annotations

from typing import Any, Mapping


def attribute_value(attr: Any) -> Any:
    """The one set member of an Attribute's oneof (a unit, when set, rides along)."""
    kind = attr.WhichOneof("value")
    value = getattr(attr, kind) if kind else None
    return {"value": value, "unit": attr.unit} if attr.unit else value


def fingerprint_to_json(message: Any) -> list[dict[str, Any]]:
    """Groups as plain data: vendor, type, name, attributes, devices (id, healthy, health)."""
    return [
        {
            "vendor": group.vendor,
            "type": group.device_type,
            "name": group.device_name,
            "attributes": {k: attribute_value(v) for k, v in sorted(group.attributes.items())},
            "devices": [
                {"id": d.ID, "healthy": d.healthy, "health": d.health_description} for d in group.devices
            ],
        }
        for group in message.device_group
    ]


def find(groups: list[dict[str, Any]], query: Mapping[str, Any]) -> dict[str, Any] | None:
    """The group and device a fingerprint query names, or None when this message does not satisfy it.

    query: ``group`` [vendor, type, name]; optional ``device_id`` or ``id_contains`` (a serial);
    optional ``healthy``; ``present`` (default True). With ``present`` False the message satisfies
    the query when no device fits the rest of it; with ``min_count`` N, when at least N devices do
    (the first of them is returned, with ``count``).
    """
    fitting = []
    for group in groups:
        if [group["vendor"], group["type"], group["name"]] != list(query["group"]):
            continue
        for device in group["devices"]:
            if "device_id" in query and device["id"] != query["device_id"]:
                continue
            if "id_contains" in query and query["id_contains"] not in device["id"]:
                continue
            if query.get("healthy") is not None and device["healthy"] != query["healthy"]:
                continue
            fitting.append({"group": group, "device": device})
    if "min_count" in query:
        return {**fitting[0], "count": len(fitting)} if fitting and len(fitting) >= query["min_count"] else None
    if query.get("present", True):
        return fitting[0] if fitting else None
    return None if fitting else {"group": None, "device": None}
