"""Shared pytest setup: test tiers by folder, the umockdev preload re-exec, and fake udev worlds.

Every test lives in the folder of its tier and gets that tier's marker (``-m unit`` works too):
``unit`` (no fake udev world, no plugin process), ``udev`` (real libudev and pyudev on a umockdev
world), ``process`` (the real executable or the real gRPC server), ``vm`` (a QEMU guest), ``nomad``
(a real Nomad server and clients). A test outside those folders, or a unit test that asks for a
udev world, stops the run at collection.

``LD_PRELOAD`` only takes effect when a process starts, so if the preload is not loaded yet,
``pytest_configure`` stops pytest's output capture and re-executes the same command line with
it (``pytest ...`` and ``python -m pytest ...`` alike). Without an LD_PRELOAD-aware start the
udev tier would silently read the machine's real, empty /sys; the fixtures check that the
testbed really is what /sys shows and fail loudly otherwise.

Set ``NOMAD_USB_NO_REEXEC=1`` to skip the re-exec (the udev-tier fixtures then fail).
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path
from typing import Iterator

import pytest

from discovery.fake.testbed import PRELOAD_SONAME, Testbed, preload_library, preload_loaded
from discovery.state.idstore import STATE_DIR_ENV
from discovery.sources.udev import UdevSource

_REEXEC_MARK = "NOMAD_USB_REEXECED"

TIERS = ("unit", "udev", "process", "vm", "nomad")
TESTS = Path(__file__).resolve().parent
WORLD_FIXTURES = frozenset({"testbed", "udev_source", "world"})  # what makes a test udev tier or above


def _started_as_pytest() -> bool:
    """Only re-exec a command line we understand: ``pytest ...`` or ``python -m pytest ...``."""
    argv0 = os.path.basename(sys.argv[0]) if sys.argv else ""
    return argv0 in ("pytest", "py.test", "__main__.py") and "pytest" in " ".join(sys.orig_argv[:3])


def pytest_configure(config: pytest.Config) -> None:
    if preload_loaded():
        # umockdev 0.17's preload leaks one socket per open() of any /dev/... path; give it room.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return
    if os.environ.get("NOMAD_USB_NO_REEXEC") or not _started_as_pytest():
        return
    library = preload_library()
    if not os.path.isabs(library):
        return  # umockdev not installed: the udev fixtures explain what is missing
    if os.environ.get(_REEXEC_MARK):
        raise pytest.UsageError(f"re-executed with LD_PRELOAD={os.environ.get('LD_PRELOAD')} "
                                f"but {PRELOAD_SONAME} is still not loaded")
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()  # the new process must write to the real stdout/stderr
    current = os.environ.get("LD_PRELOAD", "")
    env = {**os.environ, _REEXEC_MARK: "1", "LD_PRELOAD": f"{library}:{current}" if current else library}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def tier_of(path: Path) -> str | None:
    """The tier of a test file: the folder below tests/ it lives in, if that is a tier."""
    try:
        folder = Path(path).resolve().relative_to(TESTS).parts[0]
    except (ValueError, IndexError):
        return None
    return folder if folder in TIERS else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier; refuse a test outside the tier folders or a unit test in a udev world."""
    problems = []
    for item in items:
        tier = tier_of(item.path)
        if tier is None:
            problems.append(f"{item.nodeid}: not in a tier folder (tests/{{{','.join(TIERS)}}}/)")
            continue
        item.add_marker(getattr(pytest.mark, tier))
        if tier == "unit" and WORLD_FIXTURES & set(getattr(item, "fixturenames", ())):
            problems.append(f"{item.nodeid}: uses a fake udev world, so it belongs in tests/udev/ or above")
    if problems:
        raise pytest.UsageError("tests in the wrong tier:\n  " + "\n  ".join(problems))


@pytest.fixture(autouse=True)
def own_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test (and every plugin it starts) keeps the IDs it gives in a directory of its own.

    Without this, plugins started by tests would share /var/lib/nomad-device-usb with each other,
    with other runs on the machine and with a real plugin, and remember each other's IDs.
    """
    directory = tmp_path_factory.mktemp("state")
    monkeypatch.setenv(STATE_DIR_ENV, str(directory))
    return directory


@pytest.fixture
def testbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Testbed]:
    """A fresh, empty udev world on /dev/shm that this process sees as /sys and /dev for the test."""
    if not preload_loaded():
        pytest.fail(f"{PRELOAD_SONAME} is not loaded: run plain `pytest` (it re-executes itself), or "
                    f"`umockdev-wrapper python -m pytest`; install with `apt-get install umockdev`")
    bed = Testbed()
    try:
        # before any pyudev.Monitor exists: a monitor made earlier is a real netlink socket
        monkeypatch.setenv("UMOCKDEV_DIR", str(bed.root))
        if not bed.is_active() or os.path.exists("/sys/kernel"):
            pytest.fail(f"not mocked: /sys is not {bed.root}/sys")
        yield bed
    finally:
        bed.close()


@pytest.fixture
def udev_source(testbed: Testbed) -> Iterator[UdevSource]:
    """A started UdevSource (monitor bound) inside the test's testbed."""
    source = UdevSource()
    source.start()
    try:
        yield source
    finally:
        source.close()
