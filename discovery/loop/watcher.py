"""Discovery's one thread: udev events as doorbells, debounced, turned into new Snapshots.

Concurrency model: a single thread owns the device table and blocks in ``select()`` on the udev
monitor, the rules file's inotify fd and a wake-up pipe; nothing polls while udev is there. Readers
(gRPC streams, the CLI) never touch the table: they take the latest immutable Snapshot, or wait on a
condition variable for a newer version. Health checks and stats commands run in one small thread
pool and post their results back through the wake-up pipe, so a slow command never delays an event.
Readings never make a new Snapshot: they go into a ReadingsBook that the Stats stream reads.

An event only names what to look at again: the device it belongs to is re-read from udev when the
debounce window closes, so reordered or coalesced events cannot leave a stale picture, and a burst
(a hub with 20 devices) becomes one or a few snapshots.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import select
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from discovery.declared import declared_devices
from discovery.loop.filewatch import FileWatch
from discovery.checks.health import HealthResult, RunningChecks, run_check
from discovery.state.idstore import IdStore
from discovery.model import UsbDevice
from discovery.checks.readings import Problem, ReadingsResult
from discovery.checks.readings_book import ReadingsBook
from discovery.state.snapshot import Snapshot
from discovery.model import Device, UsbDevice
from discovery.sources.base import DeviceSource, EventsLostError, NodeSubsystems, SourceError
from discovery.checks.stats_command import run_stats_command
from discovery.state.table import DeviceTable

if TYPE_CHECKING:
    from discovery.rules.matching import Match
    from discovery.rules.ruleset import RuleSet

log = logging.getLogger(__name__)

MAX_DEBOUNCE_FACTOR = 4  # a steady trickle of events still publishes after 4 debounce windows
RESCAN_WITHOUT_UDEV_S = 5.0
RETRY_SOURCE_S = 1.0  # after the source failed to list or read devices, try again this much later,
RETRY_SOURCE_MAX_S = 60.0  # doubling while it keeps failing, up to this


RulesLoader = Callable[[], "RuleSet"]
# Which non-USB devices the rules need listed (see discovery.sources.base.NodeSubsystems).
NodeSubsystemsOf = Callable[["RuleSet"], NodeSubsystems]


class Discovery:
    """Owns the source, the rules and the device table; publishes Snapshots."""

    def __init__(
        self,
        source: DeviceSource,
        load_rules: RulesLoader,
        *,
        rules_file: str | None = None,
        debounce: float = 0.2,
        unplugged_grace: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        health_workers: int = 4,
        id_store: IdStore | None = None,
        node_subsystems: NodeSubsystemsOf | None = None,
        strict_commands: bool = True,
    ) -> None:
        self._source = source
        # As root, a health or stats command whose program others could change is not run (command_trust).
        self._strict_commands = strict_commands
        # Asked at start and at every reload; by default the rules say (RuleSet.node_subsystems).
        self._node_subsystems = node_subsystems or (lambda rules: rules.node_subsystems())
        self._id_store = id_store  # where the ID memory lives between runs; None: IDs are not remembered
        self._load_rules = load_rules
        self._rules_file = rules_file
        self._debounce = debounce
        self._clock = clock
        self._wall = wall
        self._table = DeviceTable(unplugged_grace=unplugged_grace)
        self._cond = threading.Condition()
        self._snapshot = Snapshot(version=0, source=source.name)
        self._rules_error: str | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_lock = threading.Lock()
        self._wake_closed = False
        self._health_results: queue.SimpleQueue[tuple[str, HealthResult]] = queue.SimpleQueue()
        self._health_pool = ThreadPoolExecutor(max_workers=health_workers, thread_name_prefix="health")
        self._running_checks = RunningChecks()  # killed at stop: a hanging check must not outlive the plugin
        self._health_due: dict[str, float] = {}
        self._health_running: set[str] = set()
        self._health_changed = False  # a health result arrived since the last publish
        self._readings = ReadingsBook()
        self._stats_results: queue.SimpleQueue[tuple[str, ReadingsResult, str | None]] = queue.SimpleQueue()
        self._stats_due: dict[str, float] = {}
        self._stats_running: set[str] = set()
        # Which devices have a health check or stats command changes only with the table or the rules;
        # read again only then, not on each of the many wake-ups that command results bring.
        self._commands_stale = True
        self._health_wanted: dict[str, Match] = {}
        self._stats_wanted: dict[str, Match] = {}
        self._filewatch: FileWatch | None = None
        self._thread: threading.Thread | None = None
        self._dirty: set[str] = set()
        self._full_rescan = False
        self._rules_dirty = False  # read again when the window closes
        self._rules_requested = False  # asked for since the last pass of the loop
        self._window_opened: float | None = None
        self._window_deadline: float | None = None
        self._next_rescan: float | None = None
        self._retry_at: float | None = None  # the source failed: read again then (devices kept meanwhile)
        self._source_failures = 0  # flushes in a row in which the source failed
        self._failed_this_flush = False
        self._overflowed = False  # events were lost and the rescan that answers it is not done yet

    # -- public ---------------------------------------------------------------------------
    def start(self) -> Snapshot:
        """Start the source, enumerate once and publish the first Snapshot before returning.

        If anything fails, everything opened so far is closed again and the error is raised.
        """
        try:
            rules = self._load_rules()
            self._table.set_rules(rules)
            self._table.set_declared(declared_devices(rules), self._wall())
            self._source.set_node_subsystems(self._node_subsystems(rules))
            if self._id_store is not None:
                self._table.memory = self._id_store.load()  # before the first IDs are given
            self._source.start()  # the monitor listens before we enumerate: no event falls in between
            if self._rules_file:
                self._filewatch = FileWatch(self._rules_file)
            self._table.replace_all(self._source.enumerate(), self._wall())
        except BaseException:
            self.stop()
            raise
        self._save_ids()
        if self._source.fileno() is None:
            log.warning("udev is not available; falling back to pyusb with a rescan every 5s")
            self._next_rescan = self._clock() + RESCAN_WITHOUT_UDEV_S
        self._publish()
        self._schedule_health(self._clock())  # devices present at start get their checks at once
        self._schedule_stats(self._clock())
        self._thread = threading.Thread(target=self._run, name="discovery", daemon=True)
        self._thread.start()
        return self.current()

    def current(self) -> Snapshot:
        with self._cond:
            return self._snapshot

    def wait_newer(
        self, version: int, timeout: float | None, cancelled: Callable[[], bool] = lambda: False
    ) -> Snapshot:
        """The first Snapshot newer than ``version``; the current one on timeout, stop or cancel.

        Whoever makes ``cancelled()`` true must call ``wake_waiters()`` so the wait ends at once.
        """
        with self._cond:
            self._cond.wait_for(
                lambda: self._snapshot.version > version or self._stop.is_set() or cancelled(), timeout
            )
            return self._snapshot

    def readings(self) -> Mapping[str, ReadingsResult]:
        """The latest result of every device's stats command (a copy; never waits for a command)."""
        return self._readings.latest()

    @property
    def settle_time(self) -> float:
        """How long after an event its snapshot is certainly out: the longest debounce window, and a margin."""
        return self._debounce * MAX_DEBOUNCE_FACTOR + 0.25

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wake_waiters(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def reload_rules(self) -> None:
        """Ask the thread to read the rules again (as a file change does)."""
        self._rules_requested = True
        self._wake()

    def stop(self) -> None:
        """Stop the thread, the health checks and the monitor; safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._running_checks.kill_all()  # first: the plugin may be ended soon after this returns
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._health_pool.shutdown(wait=False, cancel_futures=True)
        with self._cond:
            self._cond.notify_all()
        self._source.close()
        if self._filewatch is not None:
            self._filewatch.close()
        with self._wake_lock:  # a health thread finishing late must not write into a reused fd
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_closed = True

    # -- the loop -------------------------------------------------------------------------
    def _wake(self) -> None:
        with self._wake_lock:
            if self._wake_closed:
                return
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:
                log.debug("wake-up pipe already full; the thread is awake anyway")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # keep discovery (and every Fingerprint stream) alive
                log.exception("discovery loop error; continuing")
                self._full_rescan = True
                self._open_window(self._clock())
                self._stop.wait(0.5)

    def _step(self) -> None:
        fds = [self._wake_r]
        source_fd = self._source.fileno()
        if source_fd is not None:
            fds.append(source_fd)
        watch_fd = self._filewatch.fileno() if self._filewatch else None
        if watch_fd is not None:
            fds.append(watch_fd)
        poller = select.poll()  # poll, not select: no limit on descriptor numbers
        for fd in fds:
            poller.register(fd, select.POLLIN)
        timeout = self._timeout()
        ready = poller.poll(None if timeout is None else max(0, int(timeout * 1000 + 0.999)))
        readable = {fd for fd, _ in ready}
        now = self._clock()
        if self._wake_r in readable:
            self._drain_wake()
        if source_fd is not None and source_fd in readable:
            self._on_events(now)
        if self._filewatch is not None and (watch_fd in readable or watch_fd is None):
            if self._filewatch.changed():
                self._rules_requested = True
        self._collect_health(now)
        self._collect_stats()
        if self._rules_requested:  # once per request: the window must not be pushed out again
            self._rules_requested = False
            self._rules_dirty = True
            self._open_window(now)
        if self._next_rescan is not None and now >= self._next_rescan:
            self._full_rescan = True
            self._next_rescan = now + RESCAN_WITHOUT_UDEV_S
            self._open_window(now)
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            self._open_window(now)
        if self._window_deadline is not None and now >= self._window_deadline:
            self._flush()
        elif self._table.expire(self._wall()) or self._health_changed:
            self._publish()
        self._schedule_health(now)
        self._schedule_stats(now)

    def _timeout(self) -> float | None:
        now = self._clock()
        deadlines = []
        if self._window_deadline is not None:
            deadlines.append(self._window_deadline)
        if self._next_rescan is not None:
            deadlines.append(self._next_rescan)
        if self._retry_at is not None:
            deadlines.append(self._retry_at)
        if self._filewatch is not None and self._filewatch.fileno() is None:
            deadlines.append(now + 1.0)
        if self._health_due:
            pending = [t for i, t in self._health_due.items() if i not in self._health_running]
            if pending:
                deadlines.append(min(pending))
        stats_pending = [t for i, t in self._stats_due.items() if i not in self._stats_running]
        if stats_pending:
            deadlines.append(min(stats_pending))
        expiry = self._table.next_expiry()
        if expiry is not None:
            deadlines.append(now + max(0.0, expiry - self._wall()))
        if not deadlines:
            return None  # idle: block until something happens
        return max(0.0, min(deadlines) - now)

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            return

    def _on_events(self, now: float) -> None:
        try:
            events = self._source.drain()
        except EventsLostError as exc:
            self._on_overflow(now, exc)
            return
        except (SourceError, OSError) as exc:  # the monitor failed to read: what changed is unknown
            log.warning("reading device events failed; every device is listed again",
                        extra={"source": self._source.name, "error": str(exc)})
            self._full_rescan = True
            self._open_window(now)
            return
        if not events:
            return
        for event in events:
            # the usb_device itself or the one a tty/hidraw/... is below, or a listed non-USB node device
            if event.device_sys_path is not None:
                self._dirty.add(event.device_sys_path)
        self._open_window(now)

    def _on_overflow(self, now: float, exc: EventsLostError) -> None:
        """Events were lost: one warning, then every device is listed again when the window closes.

        Further overflows before that rescan are part of the same storm and are not logged again.
        """
        if not self._overflowed:
            self._overflowed = True
            log.warning("device events overflowed and some were lost; every device is listed again",
                        extra={"source": self._source.name, "error": str(exc)})
        self._full_rescan = True
        self._open_window(now)

    def _open_window(self, now: float) -> None:
        """Start or extend the debounce window: it closes ``debounce`` after the last event, capped."""
        if self._window_opened is None:
            self._window_opened = now
        cap = self._window_opened + self._debounce * MAX_DEBOUNCE_FACTOR
        self._window_deadline = min(now + self._debounce, cap)

    def _flush(self) -> None:
        self._window_opened = None
        self._window_deadline = None
        self._failed_this_flush = False
        wall = self._wall()
        if self._rules_dirty:
            self._rules_dirty = False
            self._reload()
        if self._full_rescan:
            try:
                devices = self._source.enumerate()
            except (SourceError, OSError) as exc:
                # Listing failed: nothing is known to be gone, so the table stays as it is.
                self._retry_source("listing devices failed", exc)
            else:
                self._full_rescan = False
                self._overflowed = False
                self._dirty.clear()
                self._table.replace_all(devices, wall)
        else:
            paths, self._dirty = sorted(self._dirty), set()  # parents before children
            try:
                read = self._source.devices_at(paths)  # a burst is read in one pass
            except (SourceError, OSError) as exc:
                self._dirty.update(paths)  # still unknown: read them again, keep what we know meanwhile
                self._retry_source("reading devices failed", exc, sys_path=paths[0] if paths else "")
            else:
                for path, device in zip(paths, read, strict=True):
                    self._table.update(path, device, wall)
        if self._source_failures and not self._failed_this_flush:
            log.info("the device source works again", extra={"source": self._source.name})
            self._source_failures = 0
        self._table.expire(wall)
        self._commands_stale = True
        self._save_ids()  # on disk before any client can see (and reserve) a new ID: a kill cannot lose it
        self._publish()

    def _retry_source(self, what: str, exc: Exception, **context: str) -> None:
        """The source said no (an expected condition, so no traceback): keep the devices, try again soon.

        Logged as a warning when a streak of failures starts, at debug level while it goes on; the
        wait doubles each time, up to RETRY_SOURCE_MAX_S, so a device that stays broken costs little.
        """
        if self._failed_this_flush:
            return  # one failure per flush is enough to count, log and retry
        self._failed_this_flush = True
        self._source_failures += 1
        delay = min(RETRY_SOURCE_S * 2 ** (self._source_failures - 1), RETRY_SOURCE_MAX_S)
        level = logging.WARNING if self._source_failures == 1 else logging.DEBUG
        log.log(level, what + "; the devices stay as they were and it is tried again",
                extra={"source": self._source.name, "error": str(exc), "retry_s": delay, **context})
        self._retry_at = self._clock() + delay

    def _save_ids(self) -> None:
        """Write the ID memory when a device got an ID it did not have before (a few times a day, not per event).

        Called before the snapshot with the new IDs is published, so an ID Nomad has seen is always on disk.
        """
        memory = self._table.memory
        if self._id_store is not None and memory is not None and memory.changed:
            self._id_store.save(memory)

    def _reload(self) -> None:
        try:
            rules = self._load_rules()
        except Exception as exc:  # RulesError carries file, line and field; keep the last good rules
            self._rules_error = str(exc)
            log.error(
                "rules file rejected; the last good rules stay in force",
                extra={"rules_file": self._rules_file, "errors": str(exc)},
            )
            return
        self._rules_error = None
        self._table.set_rules(rules)
        self._table.set_declared(declared_devices(rules), self._wall())  # added ones appear, removed ones go
        if self._source.set_node_subsystems(self._node_subsystems(rules)):
            self._full_rescan = True  # other non-USB devices are listed now: read them all again
        self._commands_stale = True
        self._health_due.clear()
        self._stats_due.clear()  # a changed command runs at once, with its problems logged anew
        self._readings.reset_logging()
        log.info("rules reloaded", extra={"rules_file": self._rules_file, "rules": len(rules.rules)})

    def _publish(self) -> None:
        self._health_changed = False
        with self._cond:
            candidate = self._table.build(
                self._snapshot.version + 1, rules_error=self._rules_error, source=self._source.name
            )
            if self._snapshot.version > 0 and _same(candidate, self._snapshot):
                return
            previous, self._snapshot = self._snapshot, candidate
            self._cond.notify_all()
        log_changes(previous, candidate)
        log.debug("snapshot published", extra={"version": candidate.version, "devices": len(candidate.devices)})

    # -- health checks --------------------------------------------------------------------
    def _refresh_commands(self) -> None:
        """Read again which devices have a health check or a stats command, if the table or rules changed."""
        if self._commands_stale:
            self._commands_stale = False
            self._health_wanted = dict(self._table.health_checks())
            self._stats_wanted = dict(self._table.stats_commands())
            self._readings.keep_only(self._stats_wanted)

    def _schedule_health(self, now: float) -> None:
        self._refresh_commands()
        wanted = self._health_wanted
        for dev_id in list(self._health_due):
            if dev_id not in wanted:
                del self._health_due[dev_id]
        for dev_id, match in wanted.items():
            due = self._health_due.setdefault(dev_id, now)
            if due <= now and dev_id not in self._health_running:
                check = match.health
                assert check is not None
                self._health_running.add(dev_id)
                self._health_due[dev_id] = now + check.interval
                self._health_pool.submit(self._run_health, dev_id, tuple(check.argv), check.timeout)

    def _run_health(self, dev_id: str, argv: tuple[str, ...], timeout: float) -> None:
        try:
            result = run_check(argv, timeout, running=self._running_checks, strict=self._strict_commands)
        except Exception as exc:  # a failing check must never kill the pool thread silently
            log.exception("health check crashed", extra={"device_id": dev_id})
            result = HealthResult(False, None, f"health check error: {exc}", 0.0, self._wall())
        self._health_results.put((dev_id, result))
        self._wake()

    def _collect_health(self, now: float) -> None:
        while True:
            try:
                dev_id, result = self._health_results.get_nowait()
            except queue.Empty:
                return
            self._health_running.discard(dev_id)
            self._table.set_health(dev_id, result)
            self._health_changed = True

    # -- stats commands -------------------------------------------------------------------
    def _schedule_stats(self, now: float) -> None:
        self._refresh_commands()
        wanted = self._stats_wanted
        for dev_id in [i for i in self._stats_due if i not in wanted]:
            del self._stats_due[dev_id]
        for dev_id, match in wanted.items():
            due = self._stats_due.setdefault(dev_id, now)
            if due <= now and dev_id not in self._stats_running:
                command = match.stats
                assert command is not None
                self._stats_running.add(dev_id)
                self._stats_due[dev_id] = next_in_phase(now, command.interval, dev_id)
                self._health_pool.submit(self._run_stats, dev_id, command.argv, command.timeout, command.summary)

    def _run_stats(self, dev_id: str, argv: tuple[str, ...], timeout: float, summary: str | None) -> None:
        try:
            result = run_stats_command(argv, timeout, wall=self._wall, running=self._running_checks,
                                       strict=self._strict_commands)
        except Exception as exc:  # a bug here must cost one reading, never the pool thread
            log.exception("stats command crashed", extra={"device_id": dev_id})
            result = ReadingsResult(error=Problem("crash", f"stats command error: {exc}"), taken_at=self._wall())
        self._stats_results.put((dev_id, result, summary))
        self._wake()

    def _collect_stats(self) -> None:
        while True:
            try:
                dev_id, result, summary = self._stats_results.get_nowait()
            except queue.Empty:
                return
            self._stats_running.discard(dev_id)
            if dev_id in self._stats_due:  # still wanted: not unplugged or dropped by a reload meanwhile
                self._readings.record(dev_id, result, summary)


def next_in_phase(now: float, interval: float, key: str) -> float:
    """When ``key``'s command runs next: on its own phase of the interval, at least half an interval from now.

    Devices that appear together (all of them at start, or after a rules reload) would otherwise run
    their commands in step: a burst of 200 adb calls every interval. A phase taken from the device
    ID spreads them evenly over the interval, and keeps each device's runs an interval apart.
    """
    phase = zlib.crc32(key.encode()) / 2**32 * interval
    turns = math.ceil((now + interval / 2 - phase) / interval)
    return phase + turns * interval


def log_changes(old: Snapshot, new: Snapshot) -> None:
    """One info line per device that appeared, left, or changed health: what an operator wants in the agent log."""
    for dev_id, state in new.devices.items():
        before = old.devices.get(dev_id)
        context = {"device_id": dev_id, "group": "/".join(state.group), **device_context(state.device)}
        if before is None:
            if state.healthy:
                log.info("device added", extra=context)
            else:
                log.warning("device added, unhealthy", extra={**context, "reason": state.reason})
        elif before.group != state.group:
            log.info("device regrouped", extra={**context, "was": "/".join(before.group)})
        elif (before.healthy, before.reason) != (state.healthy, state.reason):
            if state.healthy:
                log.info("device healthy", extra=context)
            else:
                log.warning("device unhealthy", extra={**context, "reason": state.reason})
    for dev_id, state in old.devices.items():
        if dev_id not in new.devices:
            log.info("device dropped", extra={"device_id": dev_id, "group": "/".join(state.group)})
    old_unmatched = {i for i, _ in old.unmatched}
    for dev_id, device in new.unmatched:
        if dev_id not in old_unmatched:
            log.debug("device matches no rule", extra={"device_id": dev_id, **device_context(device)})


def device_context(device: Device) -> dict[str, str]:
    """How a log line names a device: ``vid_pid`` for USB (as it always did), else its kind and label."""
    if isinstance(device, UsbDevice):
        return {"vid_pid": device.vid_pid}
    return {"kind": device.kind, "device": device.label}


def _same(a: Snapshot, b: Snapshot) -> bool:
    return (
        a.groups == b.groups
        and dict(a.devices) == dict(b.devices)
        and a.unmatched == b.unmatched
        and a.rules_error == b.rules_error
    )
