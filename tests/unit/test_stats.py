"""build_stats: the StatsResponse for one interval, from a Snapshot and the time passed in."""

from __future__ import annotations

from typing import Any

from snapshot_factories import make_match, make_snapshot, make_state

from discovery.checks.health import HealthResult
from discovery.checks.readings import Problem, Reading, ReadingsResult
from discovery.rules.matching import StatsCommand
from plugin.stats import build_stats
from proto import stats_pb2

NOW = 1_060.5


def plain(value: stats_pb2.StatValue) -> Any:
    """A StatValue as a plain Python value (whichever member is set)."""
    for member in ("int_numerator_val", "float_numerator_val", "bool_val", "string_val"):
        if value.HasField(member):
            return getattr(value, member).value
    raise AssertionError(f"no value in {value}")


def stats_of(*states: Any) -> dict[str, dict[str, Any]]:
    """Device ID -> its stat attributes as plain values, for one Stats message."""
    response = build_stats(make_snapshot(*states), NOW)
    return {
        dev_id: {k: plain(v) for k, v in stats.stats.attributes.items()}
        for group in response.groups
        for dev_id, stats in group.instance_stats.items()
    }


def test_stats_of_an_empty_snapshot_has_no_groups() -> None:
    """No matched devices, no group stats."""
    assert list(build_stats(make_snapshot(), NOW).groups) == []


def test_stats_present_device_counts_seconds_since_its_plug() -> None:
    """A plugged, healthy device: connected, healthy, replugs, and whole seconds since the plug."""
    assert stats_of(make_state("usb-a", plugged_at=1_000.0, replug_count=2)) == {
        "usb-a": {"connected": True, "healthy": True, "replug_count": 2, "seconds_since_plugged": 60},
    }


def test_stats_unplugged_device_counts_seconds_since_it_left() -> None:
    """An unplugged device in its grace period: not connected, unhealthy with the reason, time since unplug."""
    state = make_state("usb-a", present=False, healthy=False, reason="unplugged", unplugged_at=1_050.0)
    assert stats_of(state) == {
        "usb-a": {"connected": False, "healthy": False, "replug_count": 0, "seconds_since_unplugged": 10,
                  "health_reason": "unplugged"},
    }


def test_stats_health_check_result_is_reported() -> None:
    """The last health check: whether it passed, its latency in ms and how long ago it ran."""
    check = HealthResult(ok=False, exit_code=1, detail="exit 1: no device", latency_s=0.0125, checked_at=1_055.0)
    state = make_state("usb-a", healthy=False, reason="exit 1: no device", health=check)
    got = stats_of(state)["usb-a"]
    assert (got["health_check_ok"], got["health_check_latency_ms"], got["seconds_since_health_check"]) == (
        False, 12.5, 5
    )
    assert got["health_reason"] == "exit 1: no device"


def test_stats_summary_timestamp_and_group_counts() -> None:
    """Every entry has a summary and the clock's timestamp; the group part counts devices and healthy ones."""
    states = [
        make_state("usb-a"),
        make_state("usb-b", healthy=False, reason="node missing"),
        make_state("usb-c", present=False, healthy=False, reason="unplugged", unplugged_at=1_059.0),
        make_state("usb-d", match=make_match(("arduino", "board", "uno"))),
    ]
    response = build_stats(make_snapshot(*states), NOW)
    by_group = {(g.vendor, g.type, g.name): g for g in response.groups}
    phones = by_group[("google", "phone", "pixel-7")].instance_stats
    assert {i: plain(s.summary) for i, s in phones.items()} == {
        "usb-a": "connected", "usb-b": "connected, unhealthy", "usb-c": "unplugged",
    }
    assert {s.timestamp.ToNanoseconds() for s in phones.values()} == {int(NOW * 1e9)}
    group_part = phones["usb-a"].stats.nested["group"].attributes
    assert (plain(group_part["devices"]), plain(group_part["healthy"])) == (3, 1)
    board = by_group[("arduino", "board", "uno")].instance_stats["usb-d"].stats.nested["group"].attributes
    assert (plain(board["devices"]), plain(board["healthy"])) == (1, 1)


def test_stats_never_count_negative_seconds() -> None:
    """A clock behind the plug time (wall clock stepped back) gives 0, not a negative age."""
    assert stats_of(make_state("usb-a", plugged_at=NOW + 30))["usb-a"]["seconds_since_plugged"] == 0


def phone_with_stats(summary: str | None = "battery_level", **overrides: Any) -> Any:
    """A present phone whose rule has a stats command naming ``summary``."""
    command = StatsCommand(("/usr/local/bin/battery", "X"), 5.0, 2.0, summary)
    return make_state("usb-a", match=make_match(stats=command), **overrides)


def test_stats_readings_nested_with_units_and_summary() -> None:
    """Readings appear under ``readings`` with Nomad's value kinds and units; the summary reading is the summary."""
    result = ReadingsResult({"battery_level": Reading(87, "%"), "battery_temperature": Reading(31.2, "C")},
                            taken_at=1_058.0)
    response = build_stats(make_snapshot(phone_with_stats()), NOW, {"usb-a": result})
    stats = response.groups[0].instance_stats["usb-a"]
    readings = stats.stats.nested["readings"].attributes
    assert readings["battery_level"].int_numerator_val.value == 87 and readings["battery_level"].unit == "%"
    assert readings["battery_temperature"].float_numerator_val.value == 31.2
    assert readings["battery_temperature"].unit == "C"
    assert stats.summary.int_numerator_val.value == 87 and stats.summary.unit == "%"
    assert plain(stats.stats.attributes["seconds_since_readings"]) == 2
    assert "readings_error" not in stats.stats.attributes


def test_stats_failed_run_shows_its_error_and_no_readings() -> None:
    """A run that gave nothing: an empty readings object, the reason, and the usual summary."""
    failed = ReadingsResult(error=Problem("timeout", "stats command timed out after 2s"), taken_at=1_059.0)
    stats = build_stats(make_snapshot(phone_with_stats()), NOW, {"usb-a": failed}).groups[0].instance_stats["usb-a"]
    assert dict(stats.stats.nested["readings"].attributes) == {}
    assert plain(stats.stats.attributes["readings_error"]) == "stats command timed out after 2s"
    assert plain(stats.summary) == "connected"


def test_stats_summary_falls_back_when_its_reading_is_missing_or_unnamed() -> None:
    """No summary named, or the named reading absent: the summary stays the connection state."""
    result = ReadingsResult({"voltage": Reading(3.3, "V")}, taken_at=1_059.0)
    for state in (phone_with_stats(summary=None), phone_with_stats(summary="battery_level")):
        stats = build_stats(make_snapshot(state), NOW, {"usb-a": result}).groups[0].instance_stats["usb-a"]
        assert plain(stats.summary) == "connected"
        assert stats.stats.nested["readings"].attributes["voltage"].float_numerator_val.value == 3.3


def test_stats_without_a_run_yet_have_no_readings_object() -> None:
    """Before the first run a device with a stats command shows no readings at all, not zeros."""
    stats = build_stats(make_snapshot(phone_with_stats()), NOW, {}).groups[0].instance_stats["usb-a"]
    assert "readings" not in stats.stats.nested and "seconds_since_readings" not in stats.stats.attributes
