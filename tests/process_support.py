"""Helpers for process-tier tests: plugins started one after the other in one world, /proc scans, polled waits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from discovery.fake.testbed import Testbed
from plugin.config import encode_config
from plugin.host import FingerprintStream, PluginProcess
from polling import wait_until  # noqa: F401  (the process tier's polled wait, imported from here)


def pids_with_argument(wanted: Callable[[bytes], bool]) -> list[int]:
    """PIDs of the processes that have an argument for which ``wanted`` is true (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile
        if any(wanted(arg) for arg in argv):
            found.append(int(entry.name))
    return found


class Plugins:
    """Starts plugins one after the other in one world, each reading ``rules_file`` and keeping IDs in ``state``."""

    def __init__(self, testbed: Testbed, tmp_path: Path) -> None:
        self.testbed = testbed
        self.rules_file = tmp_path / "rules.yaml"
        self.state = tmp_path / "state"
        self.running: PluginProcess | None = None

    def start(self, rules: str, *, state: Path | None = None, **config: str) -> FingerprintStream:
        """Write ``rules``, start the executable, SetConfig (``config`` adds keys) and open the Fingerprint stream."""
        self.rules_file.write_text(rules)
        self.running = PluginProcess.start(env_extra=self.testbed.env())
        self.running.set_config(encode_config({"rules_file": str(self.rules_file), "debounce": "50ms",
                                               "state_dir": str(state or self.state), **config}))
        return self.running.fingerprint()

    @property
    def plugin(self) -> PluginProcess:
        assert self.running is not None, "no plugin running"
        return self.running

    def reload(self, rules: str) -> None:
        """Write the new rules beside the file and rename it over, as an editor or config manager does."""
        aside = self.rules_file.with_suffix(".new")
        aside.write_text(rules)
        aside.rename(self.rules_file)

    def stop(self) -> None:
        """Shutdown: exit code 0 and nothing on stderr that is not an hclog line."""
        running, self.running = self.plugin, None
        with running:  # closes its pipes on the way out
            assert running.shutdown() == 0
            assert not running.bad_stderr_lines, running.bad_stderr_lines

    def close(self) -> None:
        """Kill a plugin a failed test left running."""
        if self.running is not None:
            self.running.__exit__(None, None, None)
