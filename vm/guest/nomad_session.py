"""Guest side: a Nomad dev agent with our plugin in its plugin dir, its log lines and node changes timed.

The guest has no network to the host, so whatever talks to the agent runs here. ``start`` writes the
agent's config, links the installed plugin into a plugin dir, brings up loopback and runs
``nomad agent -dev``. One thread reads the agent's JSON log lines (``log_json = true``) as they come;
another follows the node with blocking queries and keeps every version of its devices with the time
it arrived. ``wait_list`` waits on a list endpoint (evaluations, allocations) with blocking queries.

Times are seconds since the host's mark (the event log's, set just before a plug). Nomad's own
timestamps are wall-clock times of this guest; every answer carries ``mark_wall``, the guest's wall
clock at the mark, so the host can place them on the same scale.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loopback
import udevlog
from nomad_queries import devices_from_node, find_instance, item_matches, wall_from_hclog

API = "http://127.0.0.1:4646"
BLOCKING_WAIT = 30  # seconds a blocking query may hang before it returns unchanged


class NomadError(RuntimeError):
    """The agent exited, refused a request, or a watch broke."""


@dataclass(frozen=True)
class LogLine:
    """One line of the agent's output: when it was read, and the JSON object it held (if any)."""

    t: float  # time.monotonic() when the reader got it
    text: str
    record: Mapping[str, Any] | None


def processes_running(argv_names: set[str]) -> list[dict[str, Any]]:
    """Live processes (not zombies) with an argv element whose file name is in ``argv_names``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # it exited meanwhile
        names = {os.path.basename(a.decode(errors="replace")) for a in argv if a}
        if names & argv_names:
            found.append({"pid": int(entry.name), "argv": [a.decode(errors="replace") for a in argv if a]})
    return found


class NomadSession:
    """One dev agent, its log, and the node it registered."""

    def __init__(self, events: udevlog.EventLog) -> None:
        self._events = events
        self._process: subprocess.Popen[bytes] | None = None
        self._binary = ""
        self._plugin_name = ""
        self._lines: list[LogLine] = []
        self._log_closed = False
        self._node_versions: list[tuple[float, list[dict[str, Any]]]] = []
        self._node_error: str | None = None
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self.node_id = ""

    # --- clocks --------------------------------------------------------------------------------
    def mark_wall(self) -> float:
        """The guest's wall clock at the host's mark."""
        return self._events.mark_time + (time.time() - time.monotonic())

    # --- the agent -----------------------------------------------------------------------------
    def start(
        self, binary: str, workdir: str, config: str, plugin_executable: str, plugin_name: str,
        log_path: str, timeout: float = 300,
    ) -> dict[str, Any]:
        """Write the config, link the plugin, bring up lo, run the dev agent; wait for its node and first Fingerprint.

        The agent's output is copied to ``log_path`` (in the share, the host keeps it). Returns the
        node ID and seconds from the start to node registration and to the plugin's first
        Fingerprint in the agent's log.
        """
        if self._process is not None:
            raise NomadError("the agent is already running")
        work = Path(workdir)
        plugins = work / "plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        link = plugins / plugin_name
        if not link.is_symlink():
            link.symlink_to(plugin_executable)
        config_file = work / "agent.hcl"
        config_file.write_text(config)
        lo_was_down = loopback.bring_up("lo")
        self._binary, self._plugin_name = binary, plugin_name
        argv = [binary, "agent", "-dev", "-bind=127.0.0.1", f"-plugin-dir={plugins}", f"-config={config_file}"]
        started = time.monotonic()
        self._process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=work
        )
        threading.Thread(target=self._read_log, args=(Path(log_path),), daemon=True, name="nomad-log").start()
        try:
            _, registered = self._wait_log({"@message": "node registration complete"}, timeout, since=started)
            nodes, _ = self.api("GET", "/v1/nodes")
            if len(nodes) != 1:
                raise NomadError(f"a dev agent should have one node, found {nodes}")
            self.node_id = nodes[0]["ID"]
            _, first = self._wait_log({"@message": "fingerprint sent"}, timeout, since=started)
            threading.Thread(target=self._follow_node, daemon=True, name="nomad-node").start()
            version, _ = self.api("GET", "/v1/agent/self")
        except BaseException:
            self._process.kill()  # an agent that failed to come up must not linger in the guest
            self._process.wait(30)
            self._process = None
            raise
        return {
            "node_id": self.node_id,
            "version": version["config"]["Version"]["Version"],
            "lo_was_down": lo_was_down,
            "registered_s": round(registered.t - started, 3),
            "first_fingerprint_s": round(first.t - started, 3),
            "pid": self._process.pid,
        }

    def _read_log(self, path: Path) -> None:
        assert self._process is not None and self._process.stdout is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as copy:
            for raw in self._process.stdout:
                now = time.monotonic()
                copy.write(raw)
                copy.flush()
                text = raw.decode(errors="replace").rstrip("\n")
                record = None
                if text.startswith("{"):
                    try:
                        record = json.loads(text)
                    except ValueError:
                        record = None  # a long line the agent split; kept as text
                with self._changed:
                    self._lines.append(LogLine(now, text, record))
                    self._changed.notify_all()
        with self._changed:
            self._log_closed = True
            self._changed.notify_all()

    def log_tail(self, lines: int = 40) -> str:
        """The agent's last output lines."""
        with self._changed:
            return "\n".join(line.text for line in self._lines[-lines:])

    def _wait_log(self, query: Mapping[str, Any], timeout: float, since: float, after: int = -1) -> tuple[int, LogLine]:
        deadline = time.monotonic() + timeout
        index = after + 1
        with self._changed:
            while True:
                while index < len(self._lines):
                    line = self._lines[index]
                    index += 1
                    if line.t >= since and line.record is not None and item_matches(line.record, query):
                        return index - 1, line
                if self._log_closed:
                    raise NomadError(f"the agent exited before logging {dict(query)}:\n{self.log_tail()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"the agent logged no {dict(query)} within {timeout} s:\n{self.log_tail()}")
                self._changed.wait(remaining)

    def wait_log(self, query: Mapping[str, Any], timeout: float = 30, after: int = -1) -> dict[str, Any]:
        """The first JSON log line since the mark (and after line ``after``) with the fields of ``query``.

        ``seq``: the line's place in the log; ``dt_read``: when this guest read it; ``dt_agent``: the
        agent's ``@timestamp``; ``dt_plugin``: the plugin's own ``timestamp``, for lines the agent
        relays from a plugin (else None). All in seconds since the mark.
        """
        mark = self._events.mark_time
        seq, line = self._wait_log(query, timeout, since=mark, after=after)
        assert line.record is not None
        mark_wall = self.mark_wall()
        plugin_stamp = line.record.get("timestamp")
        return {
            "seq": seq,
            "dt_read": round(line.t - mark, 6),
            "dt_agent": round(wall_from_hclog(line.record["@timestamp"]) - mark_wall, 6),
            "dt_plugin": round(wall_from_hclog(plugin_stamp) - mark_wall, 6) if plugin_stamp else None,
            "record": dict(line.record),
        }

    # --- the HTTP API --------------------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None, timeout: float = 60) -> tuple[Any, int]:
        """One request to the agent's HTTP API: the decoded answer and its X-Nomad-Index (0 if none)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(API + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = response.read()
                index = int(response.headers.get("X-Nomad-Index") or 0)
        except urllib.error.HTTPError as exc:
            raise NomadError(f"{method} {path}: HTTP {exc.code}: {exc.read().decode(errors='replace')}") from exc
        return (json.loads(payload) if payload else None), index

    def _blocking_get(self, path: str, index: int, wait: float) -> tuple[Any, int]:
        separator = "&" if "?" in path else "?"
        seconds = max(1, int(wait))
        return self.api("GET", f"{path}{separator}index={index}&wait={seconds}s", timeout=seconds + 30)

    def _follow_node(self) -> None:
        index = 0
        while not self._stopping.is_set():
            try:
                node, new_index = self._blocking_get(f"/v1/node/{self.node_id}", index, BLOCKING_WAIT)
            except (OSError, NomadError) as exc:
                with self._changed:
                    self._node_error = f"{type(exc).__name__}: {exc}"
                    self._changed.notify_all()
                return
            now = time.monotonic()
            if new_index != index or not self._node_versions:
                with self._changed:
                    self._node_versions.append((now, devices_from_node(node)))
                    self._changed.notify_all()
            index = new_index

    def wait_node_device(self, group: list[str], id_contains: str, healthy: bool, timeout: float = 30) -> dict[str, Any]:
        """The first version of the node since the mark whose ``group`` has an instance like that.

        ``dt`` is when that version reached this guest's blocking query.
        """
        mark = self._events.mark_time
        deadline = time.monotonic() + timeout
        index = 0
        with self._changed:
            while True:
                while index < len(self._node_versions):
                    t, groups = self._node_versions[index]
                    index += 1
                    if t < mark:
                        continue
                    hit = find_instance(groups, group, id_contains, healthy)
                    if hit is not None:
                        return {"dt": round(t - mark, 6), **hit, "groups": groups}
                if self._node_error:
                    raise NomadError(f"following the node failed: {self._node_error}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    last = self._node_versions[-1][1] if self._node_versions else None
                    raise TimeoutError(
                        f"node {self.node_id} showed no {'healthy' if healthy else 'unhealthy'} {id_contains} "
                        f"in {'/'.join(group)} within {timeout} s; its devices: {last}"
                    )
                self._changed.wait(remaining)

    def wait_list(self, path: str, match: Mapping[str, Any], timeout: float = 30) -> dict[str, Any]:
        """Blocking queries on a list endpoint until an item matches ``match`` (see item_matches)."""
        deadline = time.monotonic() + timeout
        index = 0
        items: Any = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no item of {path} matched {dict(match)} within {timeout} s; last: {items}")
            items, index = self._blocking_get(path, index, min(remaining, BLOCKING_WAIT))
            for item in items or []:
                if item_matches(item, match):
                    return {"dt_read": round(time.monotonic() - self._events.mark_time, 6), "item": item,
                            "mark_wall": self.mark_wall()}

    # --- stopping ------------------------------------------------------------------------------
    def stop(self, purge_jobs: list[str], timeout: float = 120) -> dict[str, Any]:
        """Purge the jobs, SIGINT the agent and wait for it; the exit code and what is still running.

        The agent stops its plugins before it exits, so nothing of ours or Nomad's should be left.
        """
        process, self._process = self._process, None
        if process is None:
            return {"exit_code": None}
        purged = []
        for job in purge_jobs:
            try:
                self.api("DELETE", f"/v1/job/{job}?purge=true")
                purged.append(job)
            except NomadError:
                pass  # never submitted, or gone already
        self._stopping.set()
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)
            raise NomadError(f"the agent did not exit within {timeout} s of SIGINT:\n{self.log_tail()}") from None
        leftovers = processes_running({os.path.basename(self._binary), self._plugin_name})
        return {
            "exit_code": code,
            "seconds": round(time.monotonic() - started, 3),
            "purged": purged,
            "leftovers": leftovers,
            "log_tail": self.log_tail(),
        }
