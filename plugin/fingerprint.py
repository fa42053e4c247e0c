"""build_fingerprint(snapshot): the FingerprintResponse Nomad gets for a discovery Snapshot (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from discovery.rules.model import AttrValue
from discovery.state.snapshot import Snapshot
from proto import attribute_pb2, device_pb2


def attribute_from_value(value: AttrValue) -> attribute_pb2.Attribute:
    """Exactly one oneof member is set, as Nomad's validation demands; units only on numbers."""
    v = value.value
    if isinstance(v, bool):  # bool first: a bool is also an int in Python
        return attribute_pb2.Attribute(bool_val=v)
    if isinstance(v, int):
        return attribute_pb2.Attribute(int_val=v, unit=value.unit or "")
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):  # NaN never equals itself: every snapshot would look new
            return attribute_pb2.Attribute(string_val=str(v))
        return attribute_pb2.Attribute(float_val=v, unit=value.unit or "")
    return attribute_pb2.Attribute(string_val=str(v))


def attributes_from_values(values: Mapping[str, AttrValue]) -> dict[str, attribute_pb2.Attribute]:
    return {k: attribute_from_value(v) for k, v in sorted(values.items())}


def build_fingerprint(snapshot: Snapshot) -> device_pb2.FingerprintResponse:
    """One DeviceGroup per vendor/type/name; every device with its stable ID and health."""
    groups = []
    for group in snapshot.groups:
        devices = []
        for dev_id in group.device_ids:
            state = snapshot.devices[dev_id]
            devices.append(
                device_pb2.DetectedDevice(
                    ID=dev_id,
                    healthy=state.healthy,
                    health_description=state.reason or "healthy",
                )
            )
        groups.append(
            device_pb2.DeviceGroup(
                vendor=group.vendor,
                device_type=group.type,
                device_name=group.name,
                devices=devices,
                attributes=attributes_from_values(group.attributes),
            )
        )
    return device_pb2.FingerprintResponse(device_group=groups)
