"""ReadingsBook: the latest result per device, and each kind of problem logged once per device."""

from __future__ import annotations

import logging

import pytest

from discovery.checks.readings import Problem, Reading, ReadingsResult
from discovery.checks.readings_book import ReadingsBook

TIMEOUT = ReadingsResult(error=Problem("timeout", "stats command timed out after 2s"))
BAD_TEMP = ReadingsResult({"level": Reading(80)}, problems=(Problem("reading:temp", 'reading "temp": left out'),))


def warnings(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    found = [r for r in caplog.records if r.levelno == logging.WARNING]
    return [(r.device_id, r.problem) for r in found]  # type: ignore[attr-defined]


def test_readings_book_logs_each_problem_once_per_device(caplog: pytest.LogCaptureFixture) -> None:
    """Ten timeouts of one device are one warning; another device's first timeout is its own warning."""
    caplog.set_level(logging.DEBUG, logger="discovery.checks.readings_book")
    book = ReadingsBook()
    for _ in range(10):
        book.record("usb-a", TIMEOUT)
    book.record("usb-b", TIMEOUT)
    book.record("usb-a", BAD_TEMP)
    book.record("usb-a", BAD_TEMP)
    assert warnings(caplog) == [
        ("usb-a", "stats command timed out after 2s"),
        ("usb-b", "stats command timed out after 2s"),
        ("usb-a", 'reading "temp": left out'),
    ]
    assert book.latest()["usb-a"] == BAD_TEMP


def test_readings_book_missing_summary_reading_is_a_problem(caplog: pytest.LogCaptureFixture) -> None:
    """A run without the reading the rule names as its summary says so (once)."""
    caplog.set_level(logging.WARNING, logger="discovery.checks.readings_book")
    book = ReadingsBook()
    good = ReadingsResult({"level": Reading(80)})
    book.record("usb-a", good, summary="battery_level")
    book.record("usb-a", good, summary="battery_level")
    book.record("usb-a", good, summary="level")
    assert warnings(caplog) == [("usb-a", "the summary reading 'battery_level' is not in the output")]


def test_readings_book_forgets_departed_devices_and_logs_again_after_reset(caplog: pytest.LogCaptureFixture) -> None:
    """keep_only drops other devices' readings; after reset_logging a known problem is logged again."""
    caplog.set_level(logging.WARNING, logger="discovery.checks.readings_book")
    book = ReadingsBook()
    book.record("usb-a", TIMEOUT)
    book.record("usb-b", TIMEOUT)
    book.keep_only(["usb-b"])
    assert set(book.latest()) == {"usb-b"}
    book.reset_logging()
    book.record("usb-b", TIMEOUT)
    book.record("usb-a", TIMEOUT)  # came back: its problems are news again
    assert [d for d, _ in warnings(caplog)] == ["usb-a", "usb-b", "usb-b", "usb-a"]
