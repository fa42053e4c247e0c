"""Nomad tier fixtures: a real Nomad server and two clients on loopback, each client's plugin in a fake world.

Every test here is marked ``nomad`` and skipped unless ``NDU_NOMAD=1`` (scripts/nomad-test sets it)
and a Nomad binary is found (``vm.nomad.find_nomad``: ``NOMAD_BIN``, ``~/.cache/nomad-peer/bin/nomad``
or ``nomad`` on PATH).
The phases each scenario measured are printed at the end of the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from nomad_cluster import Cluster, ClusterSpec, start_cluster
from nomad_scenario import Report

from discovery.fake import usb_devices
from discovery.fake.testbed import Plugged, Testbed
from vm.nomad import find_nomad

NOMAD_ENABLED = os.environ.get("NDU_NOMAD") == "1"
_FOUND = find_nomad()
NOMAD_BINARY, NO_NOMAD_REASON = (str(_FOUND.path) if _FOUND.path else None), _FOUND.reason
DOCKER_IMAGE = "local/busybox:1"
CLIENTS = ("client1", "client2")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tier unless asked for, and say why when there is no Nomad to run."""
    if NOMAD_ENABLED and NOMAD_BINARY:
        return
    why = NO_NOMAD_REASON if NOMAD_ENABLED else "Nomad tier: run scripts/nomad-test (or set NDU_NOMAD=1)"
    for item in items:
        if item.get_closest_marker("nomad"):
            item.add_marker(pytest.mark.skip(reason=why))


# -- the measured phases ----------------------------------------------------------------------------


REPORT = Report()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The table of phases, in milliseconds."""
    if not (REPORT.phases or REPORT.notes):
        return
    terminalreporter.section("Nomad tier measurements (ms)")
    terminalreporter.write_line(f"{'scenario':<44} {'plugin':>8} {'node upd':>8} {'schedule':>8} {'total':>8}")
    for phases in REPORT.phases:
        terminalreporter.write_line(phases.row())
    terminalreporter.write_line("plugin: event -> Fingerprint sent; node upd: -> server's node shows it; "
                                "schedule: -> task Started")
    for note in REPORT.notes:
        terminalreporter.write_line(note)


@pytest.fixture(scope="session")
def report() -> Report:
    return REPORT


# -- worlds, rules, docker and the cluster ---------------------------------------------------------


@pytest.fixture(scope="session")
def tier_root() -> Iterator[Path]:
    """Short paths (unix sockets live below); removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="ndu-nomad-", dir="/tmp"))
    root.chmod(0o755)  # tasks of the exec driver run as nobody and read their task dirs below
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def ready_dir(tier_root: Path) -> Path:
    """Where a gated board's health check looks for its ready-<serial> file."""
    path = tier_root / "ready"
    path.mkdir()
    return path


RULES = """\
rules:
  - name: boards the first job waits for
    match: {{vendor_id: 10c4, product_id: ea60, serial: "FIRST*"}}
    group: {{vendor: espressif, type: board, name: esp32-devkit}}
    env: {{BOARD_SERIAL: "{{serial}}"}}
  - name: boards wanted in pairs
    match: {{vendor_id: 10c4, product_id: ea60, serial: "PAIR*"}}
    group: {{vendor: espressif, type: board, name: esp32-pair}}
  - name: boards usable once flashed
    match: {{vendor_id: 10c4, product_id: ea60, serial: "GATED*"}}
    group: {{vendor: espressif, type: board, name: esp32-gated}}
    health: {{command: [/usr/bin/test, -e, "{ready}/ready-{{serial}}"], interval: 1s, timeout: 1s}}
  - name: a board that moves between clients
    match: {{vendor_id: 10c4, product_id: ea60, serial: "ROAM*"}}
    group: {{vendor: espressif, type: board, name: esp32-roaming}}
  - name: boards a container may only read
    match: {{vendor_id: 10c4, product_id: ea60, serial: "READONLY*"}}
    group: {{vendor: espressif, type: board, name: esp32-readonly}}
    children: [tty]
    permissions: r
  - name: boards for exec tasks
    match: {{vendor_id: 10c4, product_id: ea60, serial: "EXEC*"}}
    group: {{vendor: espressif, type: board, name: esp32-exec}}
    children: [tty]
  - name: farm boards with readings
    match: {{vendor_id: 10c4, product_id: ea60, serial: "FARM*"}}
    group: {{vendor: espressif, type: board, name: esp32-farm}}
    stats: {{command: [/bin/sh, "{readings}", "{{serial}}"], interval: 1s, timeout: 1s, summary: vbus}}
  - name: the UART of a Raspberry Pi HAT, a udev device outside USB
    kind: udev
    match: {{subsystem: tty, platform: fe201000.serial}}
    group: {{vendor: raspberrypi, type: serial, name: pl011}}
    env: {{HAT_UART: "{{devnode}}"}}
  - name: a car on the test bench, declared (udev cannot see it)
    kind: declared
    group: {{vendor: doyota, type: car, name: mius}}
    devices:
      - id: mius-bench-1
        values: {{address: 192.0.2.10}}
    env: {{CAR_ADDRESS: "{{address}}"}}
    health: {{command: [/usr/bin/test, -e, "{ready}/car-{{id}}"], interval: 1s, timeout: 1s}}
"""
# What a farm board's stats command prints: as a board answering its status query would (docs/rules.md).
READINGS_SCRIPT = """\
#!/bin/sh
echo '{"vbus": {"value": 5.02, "unit": "V"}, "temp": {"value": 41.5, "unit": "celsius"}, "resets": 2}'
"""


@pytest.fixture(scope="session")
def rules_file(tier_root: Path, ready_dir: Path) -> Path:
    readings = tier_root / "readings.sh"
    readings.write_text(READINGS_SCRIPT)
    path = tier_root / "rules.yaml"
    path.write_text(RULES.format(ready=ready_dir, readings=readings))
    return path


@pytest.fixture(scope="session")
def worlds() -> Iterator[dict[str, Testbed]]:
    made = {name: Testbed() for name in CLIENTS}
    yield made
    for world in made.values():
        world.close()


def _docker_answers() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True, timeout=30, check=False
    ).returncode == 0


@pytest.fixture(scope="session")
def docker(tier_root: Path) -> Iterator[str | None]:
    """A docker daemon with the local busybox image, or None and a note why not (docker tests skip)."""
    started: subprocess.Popen[bytes] | None = None
    reason = ""
    if not _docker_answers() and shutil.which("dockerd"):
        # dockerd gets its own copy of the descriptor; ours is closed at once so nothing leaks into teardown.
        with open(tier_root / "dockerd.log", "wb") as log:
            started = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _docker_answers() and started.poll() is None:
            time.sleep(0.5)
    if not _docker_answers():
        reason = "no docker daemon (scripts/nomad-test installs docker.io and starts dockerd)"
    elif not _make_image(tier_root):
        reason = "could not import the busybox image (busybox-static missing?)"
    if reason:
        REPORT.notes.append(f"docker scenarios skipped: {reason}")
    yield None if reason else DOCKER_IMAGE
    if started is not None:
        started.terminate()
        started.wait(60)


def _make_image(tier_root: Path) -> bool:
    """A local image from Debian's static busybox, imported without a registry."""
    busybox = shutil.which("busybox")
    if busybox is None:
        return False
    root = tier_root / "image"
    (root / "bin").mkdir(parents=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    for applet in ("sh", "ls", "cat", "echo", "sleep", "env", "stat"):
        (root / "bin" / applet).symlink_to("busybox")
    with subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE) as tar:
        imported = subprocess.run(["docker", "import", "-", DOCKER_IMAGE], stdin=tar.stdout, capture_output=True,
                                  check=False)
    return imported.returncode == 0 and tar.returncode == 0


@pytest.fixture(scope="session")
def cluster(
    tier_root: Path, rules_file: Path, worlds: dict[str, Testbed], docker: str | None, report: Report
) -> Iterator[Cluster]:
    assert NOMAD_BINARY is not None
    drivers = ("raw_exec", "exec") + (("docker",) if docker else ())
    spec = ClusterSpec(NOMAD_BINARY, tier_root, rules_file, worlds, drivers)
    for started in start_cluster(spec):
        report.notes.append(f"{_FOUND.version}: server and {len(worlds)} clients ready in {started.seconds:.1f} s")
        yield started.cluster


# -- boards ---------------------------------------------------------------------------------------


class Boards:
    """ESP32 devkits (CP2102 bridge) with distinct ports, device numbers and tty names in every world."""

    def __init__(self) -> None:
        self._next = 1

    def make(self, serial: str) -> usb_devices.FakeUsbDevice:
        n = self._next
        self._next += 1
        return usb_devices.make_cp210x(tty=n, serial=serial, port=f"1-{n}", devnum=10 + n)


@pytest.fixture(scope="session")
def boards() -> Boards:
    return Boards()


@dataclass
class HostNodes:
    """Real /dev nodes with the fake world's numbers: docker and exec create a task's nodes from the host's."""

    made: list[str] = field(default_factory=list)

    def add(self, world: Testbed, handle: Plugged) -> list[str]:
        paths = []
        for record in world.records:
            if record.devpath not in handle.devpaths or not record.node:
                continue
            path = "/dev/" + record.node
            major, minor = int(record.properties["MAJOR"]), int(record.properties["MINOR"])
            if os.path.lexists(path):
                found = os.stat(path).st_rdev
                assert (os.major(found), os.minor(found)) == (major, minor), f"{path} exists on this host"
            else:
                parent = os.path.dirname(path)
                missing = []
                while not os.path.isdir(parent):
                    missing.append(parent)
                    parent = os.path.dirname(parent)
                for directory in reversed(missing):
                    os.mkdir(directory)
                    self.made.append(directory)
                os.mknod(path, 0o666 | 0o020000, os.makedev(major, minor))
                self.made.append(path)
            paths.append(path)
        return paths

    def remove(self) -> None:
        for path in reversed(self.made):
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.unlink(path)
        self.made.clear()


@pytest.fixture
def host_nodes() -> Iterator[HostNodes]:
    nodes = HostNodes()
    yield nodes
    nodes.remove()
