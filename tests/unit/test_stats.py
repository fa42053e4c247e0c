"""build_stats: the StatsResponse for one interval, from a Snapshot and the time passed in."""

from __future__ import annotations

from typing import Any

from snapshot_factories import make_match, make_snapshot, make_state

from discovery.health import HealthResult
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
