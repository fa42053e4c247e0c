"""build_stats(snapshot, now, readings): the StatsResponse for one collection interval (pure; the clock is passed in).

Every DeviceStats carries a timestamp and a StatObject: Nomad's CLI crashes on entries without them.
A device whose rule has a stats command gets its latest readings as the nested object ``readings``
(Nomad shows them as ``readings.<name>``), with their units; the reading the rule names as the
summary becomes the device's summary, which ``nomad node status`` and ``nomad alloc status`` show.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import timestamp_pb2, wrappers_pb2

from discovery.checks.readings import Reading, ReadingsResult
from discovery.state.snapshot import DeviceState, Group, Snapshot
from proto import device_pb2, stats_pb2


def _int(value: int, unit: str = "", desc: str = "") -> stats_pb2.StatValue:
    return stats_pb2.StatValue(int_numerator_val=wrappers_pb2.Int64Value(value=value), unit=unit, desc=desc)


def _float(value: float, unit: str = "", desc: str = "") -> stats_pb2.StatValue:
    return stats_pb2.StatValue(float_numerator_val=wrappers_pb2.DoubleValue(value=value), unit=unit, desc=desc)


def _bool(value: bool, desc: str = "") -> stats_pb2.StatValue:
    return stats_pb2.StatValue(bool_val=wrappers_pb2.BoolValue(value=value), desc=desc)


def _str(value: str, desc: str = "") -> stats_pb2.StatValue:
    return stats_pb2.StatValue(string_val=wrappers_pb2.StringValue(value=value), desc=desc)


def _reading(reading: Reading) -> stats_pb2.StatValue:
    if isinstance(reading.value, int):
        return _int(reading.value, reading.unit)
    return _float(reading.value, reading.unit)


def _device_stats(
    state: DeviceState, group: Group, healthy_in_group: int, now: float, readings: ReadingsResult | None
) -> device_pb2.DeviceStats:
    attrs = {
        "connected": _bool(state.present, "device is plugged in"),
        "healthy": _bool(state.healthy, "device can be scheduled"),
        "replug_count": _int(state.replug_count, desc="replugs since the plugin started"),
    }
    if state.present:
        attrs["seconds_since_plugged"] = _int(max(0, int(now - state.plugged_at)), "s", "time since the latest plug")
    elif state.unplugged_at is not None:
        attrs["seconds_since_unplugged"] = _int(max(0, int(now - state.unplugged_at)), "s", "time since unplug")
    if state.reason:
        attrs["health_reason"] = _str(state.reason)
    if state.health is not None:
        attrs["health_check_ok"] = _bool(state.health.ok, "last health check passed")
        attrs["health_check_latency_ms"] = _float(round(state.health.latency_s * 1000, 3), "ms")
        attrs["seconds_since_health_check"] = _int(max(0, int(now - state.health.checked_at)), "s")
    nested: dict[str, stats_pb2.StatObject] = {}
    summary_reading: stats_pb2.StatValue | None = None
    if readings is not None:
        nested["readings"] = stats_pb2.StatObject(
            attributes={name: _reading(value) for name, value in readings.readings.items()}
        )
        age = max(0, int(now - readings.taken_at))
        attrs["seconds_since_readings"] = _int(age, "s", "time since the stats command last ran")
        if readings.error is not None:
            attrs["readings_error"] = _str(readings.error.message, "why the last run gave no readings")
        wanted = state.match.stats.summary if state.match.stats is not None else None
        if wanted is not None and wanted in readings.readings and state.present:
            summary_reading = _reading(readings.readings[wanted])
    group_summary = stats_pb2.StatObject(
        attributes={
            "devices": _int(len(group.device_ids), desc="devices in this group"),
            "healthy": _int(healthy_in_group, desc="healthy devices in this group"),
        }
    )
    nested["group"] = group_summary
    summary = "connected" if state.present else "unplugged"
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(now * 1e9))
    return device_pb2.DeviceStats(
        summary=summary_reading or _str(summary if state.healthy or not state.present else f"{summary}, unhealthy"),
        stats=stats_pb2.StatObject(attributes=attrs, nested=nested),
        timestamp=ts,
    )


def build_stats(
    snapshot: Snapshot, now: float, readings: Mapping[str, ReadingsResult] | None = None
) -> device_pb2.StatsResponse:
    """One StatsResponse: every group's devices, with the latest readings of those whose rule has a stats command."""
    latest = readings or {}
    groups = []
    for group in snapshot.groups:
        states = [snapshot.devices[i] for i in group.device_ids]
        healthy = sum(1 for s in states if s.healthy)
        groups.append(
            device_pb2.DeviceGroupStats(
                vendor=group.vendor,
                type=group.type,
                name=group.name,
                instance_stats={s.id: _device_stats(s, group, healthy, now, latest.get(s.id)) for s in states},
            )
        )
    return device_pb2.StatsResponse(groups=groups)
