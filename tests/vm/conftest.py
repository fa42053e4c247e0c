"""VM tier fixtures: the cached image, one guest for the whole session, devices that unplug themselves.

Every test here is marked ``vm`` and skipped unless ``NDU_VM=1`` (scripts/vm-test sets it): a guest
boots in ~15 s and needs qemu-system-x86 and a built image. The measured hotplug latencies are
collected in ``REPORT`` and printed at the end of the run (and written to $NDU_VM_REPORT as JSON).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the vm package is not installed; it lives at the repo root
    sys.path.insert(0, str(REPO))

from vm.machine import Guest  # noqa: E402
from vm.testing import Devices, Report, running_guest  # noqa: E402

VM_ENABLED = os.environ.get("NDU_VM") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tier unless asked for: it boots a VM."""
    if VM_ENABLED:
        return
    skip = pytest.mark.skip(reason="VM tier: run scripts/vm-test (or set NDU_VM=1)")
    for item in items:
        if item.get_closest_marker("vm"):
            item.add_marker(skip)


REPORT = Report()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print what the tier measured; write it as JSON when $NDU_VM_REPORT names a file."""
    if not (REPORT.notes or REPORT.timings or REPORT.latencies):
        return
    terminalreporter.section("VM tier measurements")
    for line in REPORT.lines():
        terminalreporter.write_line(line)
    target = os.environ.get("NDU_VM_REPORT")
    if target:
        Path(target).write_text(json.dumps(REPORT.as_json(), indent=2) + "\n")


@pytest.fixture(scope="session")
def report() -> Report:
    """The run's measurements."""
    return REPORT


@pytest.fixture(scope="session")
def guest(report: Report) -> Iterator[Guest]:
    """One booted guest for the session, with the plugin wheel in its share (not yet installed)."""
    with running_guest(report, with_plugin=True) as machine:
        yield machine


@pytest.fixture
def devices(guest: Guest, report: Report) -> Iterator[Devices]:
    """Device factory; whatever a test leaves plugged is unplugged after it."""
    made = Devices(guest, report)
    yield made
    made.cleanup()

