"""Helpers for the CLI tests: a fake USB world with every fixture, running the CLI, golden files.

Golden files live in tests/golden/. After a deliberate output change, regenerate them with
``NOMAD_USB_UPDATE_GOLDEN=1 python3 -m pytest -q tests/*/test_cli_*.py`` and review the diff.
"""

from __future__ import annotations

import io
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from discovery.state.idstore import STATE_DIR_ENV
from discovery.fake.testbed import Testbed, list_fixtures, load_fixture
from discovery.sources.usbfs import UsbfsUnavailableError
from plugin.cli.main import main as cli_main

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
RULES = "tests/golden/rules.yaml"  # relative to ROOT, so paths in the output do not depend on the checkout
UPDATE_ENV = "NOMAD_USB_UPDATE_GOLDEN"
# Where list and explain ask for allocations unless a test says otherwise: a port nothing listens on
# (the privileged discard port), so the output never depends on an agent running on this machine.
NO_AGENT = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Run:
    """What one CLI run gave: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


class _Utf8Buffer(io.StringIO):
    """A captured stream that, like a UTF-8 terminal, can take the ellipsis."""

    encoding = "utf-8"


def run_cli(*args: str, columns: int | None = 100, environ: Mapping[str, str] | None = None,
            open_source=None) -> Run:
    """Run the CLI in this process (inside the current testbed world) and capture everything."""
    out, err = _Utf8Buffer(), _Utf8Buffer()
    env = dict(environ or {})
    if columns is not None:
        env.setdefault("COLUMNS", str(columns))
    env.setdefault("NOMAD_ADDR", NO_AGENT)
    if STATE_DIR_ENV in os.environ:  # the test's own state directory (tests/conftest.py), never the machine's
        env.setdefault(STATE_DIR_ENV, os.environ[STATE_DIR_ENV])
    code = cli_main(list(args), stdout=out, stderr=err, environ=env, open_source=open_source)
    return Run(code, out.getvalue(), err.getvalue())


def one_line_error(run_err: str) -> str:
    """The message of the CLI's one-line error on stderr (checking that it is one line, without a traceback)."""
    assert run_err.count("\n") == 1 and run_err.startswith("nomad-device-usb: error: "), run_err
    assert "Traceback" not in run_err
    return run_err.removeprefix("nomad-device-usb: error: ").rstrip("\n")


@pytest.fixture
def world(testbed: Testbed, monkeypatch: pytest.MonkeyPatch) -> Iterator[Testbed]:
    """Every device of fixtures/ plugged into one testbed; the working directory is the repository."""
    for name in list_fixtures():
        testbed.plug(load_fixture(name))
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("NOMAD_DEVICE_USB_RULES", raising=False)
    yield testbed


def golden(name: str, text: str) -> None:
    """``text`` equals tests/golden/<name> (or replaces it when NOMAD_USB_UPDATE_GOLDEN=1)."""
    path = GOLDEN / name
    if os.environ.get(UPDATE_ENV):
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"no golden file {path}; create it with {UPDATE_ENV}=1 and review it")
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"output differs from {path} (regenerate with {UPDATE_ENV}=1 if intended)"


class NoUsbSource:
    """A device source on a machine without udev whose pyusb has no backend (libusb missing)."""

    name = "usbfs"

    def start(self) -> None:
        return None

    def enumerate(self) -> list[object]:
        raise UsbfsUnavailableError("pyusb has no backend: no libusb found")

    def device_at(self, sys_path: str) -> None:
        return None

    def set_node_subsystems(self, wanted: object) -> bool:
        return False

    def fileno(self) -> None:
        return None

    def drain(self) -> list[object]:
        return []

    def close(self) -> None:
        return None


class CliProcess:
    """The real executable as a subprocess in a testbed world, its output read line by line with deadlines."""

    def __init__(self, args: list[str], env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plugin.main", *args], cwd=ROOT, env=dict(env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
        )
        self.out: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.err: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.err_lines: list[str] = []
        self.pumps = [
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True)
            for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for pump in self.pumps:
            pump.start()

    @staticmethod
    def _pump(stream, sink: queue.SimpleQueue[str | None]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            sink.put(line.rstrip("\n"))
        sink.put(None)

    @staticmethod
    def _next(sink: queue.SimpleQueue[str | None], deadline: float) -> str | None:
        try:
            return sink.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError("no output line before the deadline") from None

    def wait_err(self, needle: str, timeout: float = 20.0) -> str:
        """The first stderr line containing ``needle``."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._next(self.err, deadline)
            if line is None:
                raise AssertionError(f"stderr ended without {needle!r}: {self.err_lines}")
            self.err_lines.append(line)
            if needle in line:
                return line

    def wait_out(self, predicate, timeout: float = 20.0) -> list[str]:  # type: ignore[no-untyped-def]
        """stdout lines up to and including the first one ``predicate`` accepts."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            line = self._next(self.out, deadline)
            if line is None:
                raise AssertionError(f"stdout ended; lines so far: {seen}")
            seen.append(line)
            if predicate(line):
                return seen

    def stop(self, signum: int, timeout: float = 20.0) -> int:
        """Send ``signum`` and wait for the exit code."""
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """Kill the process if it still runs, and release its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for pump in self.pumps:
            pump.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
