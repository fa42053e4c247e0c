"""Smoke run of the benchmarks with tiny sizes: every section reports, numbers are sane, nothing is lost.

No timing is asserted here (the machine is shared and noisy); the figures themselves belong in the
README's results table, from a full `python -m benchmarks` run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.sections import BY_NAME


ROOT = Path(__file__).resolve().parents[2]
RUN_DEADLINE_S = 90.0  # the quick run takes 20-25 s on 2 cores; a hang fails here, not after 5 minutes


@pytest.fixture(scope="module")
def quick_run() -> dict[str, Any]:
    """The JSON of one `python -m benchmarks --quick --json` run, shared by the tests below."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json"],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, timeout=RUN_DEADLINE_S, check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def numbers(value: Any, where: str = "") -> Iterator[tuple[str, float]]:
    """Every number in a JSON value, with the path that leads to it."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from numbers(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from numbers(item, f"{where}[{index}]")


def test_benchmarks_quick_run_reports_every_section(quick_run: dict[str, Any]) -> None:
    """Each section is present without error and has table rows with a figure for the plugin."""
    assert quick_run["errors"] == {}
    assert set(quick_run["sections"]) == set(BY_NAME)
    for name, section in quick_run["sections"].items():
        assert section["rows"], name
        assert all(row["ours"] is not None for row in section["rows"]), name
    assert quick_run["meta"]["quick"] is True
    assert quick_run["meta"]["date"] and quick_run["meta"]["cores"] > 0


def test_benchmarks_quick_run_numbers_are_finite_and_not_negative(quick_run: dict[str, Any]) -> None:
    """No figure anywhere in the results is negative, NaN or infinite."""
    found = list(numbers(quick_run))
    assert found
    bad = [(where, value) for where, value in found if not 0 <= value < float("inf")]
    assert bad == []


def test_benchmarks_quick_run_compares_with_both_baselines(quick_run: dict[str, Any]) -> None:
    """Hotplug, storm and idle rows carry the baselines' figures and the ratios to them."""
    for name in ("hotplug", "storm", "idle"):
        rows = quick_run["sections"][name]["rows"]
        compared = [r for r in rows if r["poller"] is not None and r["rescan"] is not None]
        assert compared, name
    hotplug = quick_run["sections"]["hotplug"]["rows"][0]
    assert hotplug["ours_to_poller"] is not None and hotplug["ours_to_rescan"] is not None


def test_benchmarks_quick_run_loses_no_device(quick_run: dict[str, Any]) -> None:
    """In the storm every subject ends up showing every device right; no hotplug event goes unseen."""
    storm = quick_run["sections"]["storm"]["data"]
    for subject in ("ours", "ours_no_debounce", "poller", "rescan"):
        for wave in ("add", "remove"):
            assert storm[subject][wave]["lost"] == 0, (subject, wave)
            assert storm[subject][wave]["last_shown_ms"] is not None, (subject, wave)
    hotplug = quick_run["sections"]["hotplug"]["data"]
    for subject in ("ours_debounce", "ours_no_debounce", "poller", "rescan"):
        assert hotplug[subject]["missed"] == 0, subject
        assert hotplug[subject]["all_ms"]["n"] == hotplug[subject]["events"], subject
