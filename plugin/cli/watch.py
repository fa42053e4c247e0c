"""``watch``: udev hotplug events as they come, each with the device's ID and what the rules make of it now.

This is the plugin's view event by event, without its debounce: one ``UdevSource`` monitor, one
``DeviceTable`` (so IDs are the sticky ones the plugin gives, and a replugged device gets its old
ID back), and the table's snapshot for the match and health. After each event the device it belongs
to is read again, so a line shows the device as it is after that event: the usb_device ``add``
often comes before its tty exists, and the tty's own ``add`` line then shows the rule that needs it.

Shown: every event of a usb_device, events of children with a /dev node (tty, hidraw, ...) and
driver bind/unbind on interfaces; anything else only updates the table. The add, change and remove
events of devices with a node outside USB (kind ``udev``: ``tty ttyAMA0``) are shown for the
subsystems the ``kind: udev`` rules name, as the plugin would see them; ``--all`` shows them for
every such device. With ``--rules`` the file
is watched too: after a change, every attached device is matched again and printed. Ends on
SIGINT (Ctrl-C) or SIGTERM with exit 0.
"""

from __future__ import annotations

import argparse
import json
import select
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from types import FrameType

from discovery.rules.errors import RulesError
from discovery.loop.filewatch import FileWatch
from discovery.state.inventory import Entry, Inventory
from discovery.model import Device, UsbDevice
from discovery.sources.base import ALL_NODE_SUBSYSTEMS
from discovery.rules.loader import load_rules
from discovery.rules.ruleset import RuleSet
from discovery.state.snapshot import Snapshot
from discovery.sources.base import EventsLostError
from discovery.state.table import DeviceTable
from discovery.sources.udev import UdevEvent, UdevSource, udev_available, usb_device_path_of
from plugin.cli.context import EXIT_ENVIRONMENT, EXIT_OK, CliError, Context, rules_error_line
from plugin.cli.view import MATCHED, Result, result_json, result_of

SHOWN_INTERFACE_ACTIONS = frozenset({"bind", "unbind"})
PRESENT, REMOVED, VANISHED = "present", "removed", "vanished"  # the device after the event
FALLBACK_POLL_S = 1.0  # longest wait: the rules file without inotify is looked at this often too


class _Stop(Exception):
    """SIGTERM arrived: end like Ctrl-C."""


def run(ctx: Context, args: argparse.Namespace) -> int:
    path = ctx.rules_path(args.rules)
    rules = ctx.load_rules(path)
    if not udev_available():
        raise CliError("watch needs udev (no /run/udev here); 'list' works without it", EXIT_ENVIRONMENT)
    watcher = _Watcher(ctx, rules, path, args.json, clock=time.time, every=args.all)
    try:
        with _sigterm_stops():
            watcher.run()
    except (KeyboardInterrupt, _Stop):
        ctx.note("stopped")
    finally:
        watcher.close()
    return EXIT_OK


@contextmanager
def _sigterm_stops() -> Iterator[None]:
    """SIGINT and SIGTERM end the watch, set here explicitly: a process started from a script in the
    background inherits SIGINT as ignored, and Ctrl-C (or a test's SIGINT) would then do nothing."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise _Stop

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Watcher:
    """One monitor, one device table, one line per shown event (see the module docstring)."""

    def __init__(self, ctx: Context, rules: RuleSet, path: str | None, as_json: bool,
                 clock: Callable[[], float], every: bool = False) -> None:
        self.ctx = ctx
        self.rules = rules
        self.path = path
        self.as_json = as_json
        self.clock = clock
        self.every = every
        # What the plugin would look at (USB, and the subsystems the kind: udev rules name); --all: every node.
        self.source = UdevSource(node_subsystems=ALL_NODE_SUBSYSTEMS if every else rules.node_subsystems())
        self.table = DeviceTable(unplugged_grace=0.0)
        self.files: FileWatch | None = None
        self.version = 0

    def close(self) -> None:
        self.source.close()
        if self.files is not None:
            self.files.close()

    def run(self) -> None:
        self.source.start()  # bound before we enumerate: nothing falls in between
        self.table.set_rules(self.rules)
        self.table.replace_all(self.source.enumerate(), self.clock())
        if self.path is not None:
            self.files = FileWatch(self.path)
        attached = self.table.attached()
        count = sum(1 for _, d in attached if isinstance(d, UsbDevice))
        rules = f"rules: {self.path}" if self.path else "no rules file"
        listed = self.source.node_subsystems is not None  # devices outside USB are watched too
        others = f" and {len(attached) - count} other device{'s' if len(attached) - count != 1 else ''} with a node" \
            if listed else ""
        # the ready line: the monitor listens from here on (tests wait for it before plugging)
        self.ctx.note(f"watching {count} attached USB device{'s' if count != 1 else ''}{others} ({rules}); "
                      "press Ctrl-C to stop")
        self.ctx.err.flush()
        while True:
            fds = [self.source.fileno()]
            file_fd = self.files.fileno() if self.files is not None else None
            if file_fd is not None:
                fds.append(file_fd)
            # Never block for good: waking now and then lets a pending Ctrl-C run even if some layer
            # below (umockdev's preload in tests, say) retried the interrupted call itself.
            readable, _, _ = select.select(fds, [], [], FALLBACK_POLL_S)
            if self.source.fileno() in readable:
                try:
                    events = self.source.drain()
                except EventsLostError:
                    # a storm overflowed the monitor: which events are missing is unknown, so read everything
                    self.ctx.note("udev events were lost (the monitor overflowed); every device is read again")
                    self.table.replace_all(self.source.enumerate(), self.clock())
                    continue
                for event in events:
                    self._on_event(event)
            if self.files is not None and (file_fd is None or file_fd in readable) and self.files.changed():
                self._reload()

    # -- events -----------------------------------------------------------------------------
    def _on_event(self, event: UdevEvent) -> None:
        if event.devtype == "usb_device":
            owner: str | None = event.sys_path
        else:
            owner = usb_device_path_of(event.sys_path) or event.node_sys_path
        if owner is None:
            return
        whole = event.devtype == "usb_device" or owner == event.node_sys_path  # the event is the device's own
        old_id = self.table.id_of(owner)
        old_device = dict(self.table.attached()).get(old_id) if old_id else None
        shown = self._shown(event)
        if whole and event.action == "remove":
            before = self._snapshot()  # the device's last result, to say what went
            self.table.update(owner, None, self.clock())
            if shown and old_id is not None and old_device is not None:
                self._print(event, old_id, old_device, self._result(before, old_id, old_device), REMOVED)
            return
        device = self.source.device_at(owner)
        if device is None:
            # Gone already (we are behind a burst): its own remove event follows, keep what we know till then.
            if shown and whole:
                self._print(event, old_id or owner.rsplit("/", 1)[-1], old_device, None, VANISHED)
            return
        self.table.update(owner, device, self.clock())
        if shown:
            dev_id = self.table.id_of(owner)
            assert dev_id is not None
            self._print(event, dev_id, device, self._result(self._snapshot(), dev_id, device), PRESENT)

    def _result(self, snapshot: Snapshot, dev_id: str, device: Device) -> Result:
        entry = Entry(dev_id, device, snapshot.devices.get(dev_id))
        return result_of(Inventory(self.rules, snapshot, ()), entry)

    def _shown(self, event: UdevEvent) -> bool:
        if event.devtype == "usb_device":
            return True
        if event.node_sys_path is not None:  # a device outside USB (watch --all): its own events
            return event.action in ("add", "change", "remove")
        if event.devtype == "usb_interface":
            return event.action in SHOWN_INTERFACE_ACTIONS
        return event.device_node is not None and event.action in ("add", "remove")

    def _snapshot(self) -> Snapshot:
        self.version += 1
        return self.table.build(self.version)

    def _reload(self) -> None:
        assert self.path is not None
        try:
            rules = load_rules(self.path)
        except RulesError as exc:
            self.ctx.note(f"rules file rejected, keeping the previous rules: {rules_error_line(self.path, exc)}")
            self.ctx.err.flush()
            return
        self.rules = rules
        self.table.set_rules(rules)
        if not self.every and self.source.set_node_subsystems(rules.node_subsystems()):
            self.table.replace_all(self.source.enumerate(), self.clock())  # a rule names a new subsystem
        snapshot = self._snapshot()
        count = len(rules.rules)
        self.ctx.note(f"rules reloaded from {self.path} ({count} rule{'s' if count != 1 else ''})")
        self.ctx.err.flush()
        for dev_id, device in sorted(self.table.attached(), key=lambda item: item[1].sys_path):
            self._print(None, dev_id, device, self._result(snapshot, dev_id, device), PRESENT)

    # -- output -----------------------------------------------------------------------------
    def _print(self, event: UdevEvent | None, dev_id: str, device: Device | None, result: Result | None,
               state: str) -> None:
        """One line; ``device`` is what the table knew of it (None: a device gone before it was ever read)."""
        now = datetime.fromtimestamp(self.clock()).astimezone()
        action = event.action if event is not None else "rules"
        what = _what(event) if event is not None else "device"
        if isinstance(device, UsbDevice) or device is None:
            vid_pid: str | None = device.vid_pid if device is not None else "????:????"
            label = vid_pid
        else:
            vid_pid, label = None, device.label
        if self.as_json:
            self.ctx.out.write(_json_line({
                "time": now.isoformat(timespec="milliseconds"),
                "action": action,
                "id": dev_id,
                "kind": device.kind if device is not None else "usb",
                "vid_pid": vid_pid,
                "what": what,
                "sys_path": event.sys_path if event is not None else None,
                "state": state,
                "match": result_json(result) if result is not None else None,
            }))
        else:
            style = self.ctx.style
            if result is None:
                outcome, color = "gone before it could be read", "dim"
            elif state == REMOVED:
                # health left out: the device's interfaces went first, so it looks driverless by now
                outcome, color = f"was {result.summary(health=False)}", "dim"
            else:
                outcome = result.summary()
                color = "green" if result.status == MATCHED and result.healthy else "yellow"
            self.ctx.out.write(f"{now.strftime('%H:%M:%S.%f')[:-3]}  {style.paint(f'{action:<7}', 'bold')}  "
                               f"{dev_id}  {label}  {what}  -> {style.paint(outcome, color)}\n")
        self.ctx.out.flush()  # one line per event, also through a pipe


def _what(event: UdevEvent) -> str:
    if event.devtype == "usb_device":
        return "device"
    if event.sys_path == event.node_sys_path:  # a device outside USB: the node is the device
        return f"node {event.device_node}"
    if event.devtype == "usb_interface":
        return f"interface {event.sys_path.rsplit('/', 1)[-1]}"
    return f"{event.subsystem} {event.device_node}"


def _json_line(value: dict[str, object]) -> str:
    return json.dumps(value, ensure_ascii=False) + "\n"
