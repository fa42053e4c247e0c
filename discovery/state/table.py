"""The device table: attached devices, their sticky IDs, plug history and health, turned into Snapshots.

IDs come from ``discovery.state.ids`` (serial, else port), and from the ID memory when one is given: a
unit it knows gets the ID it had before, which is how two units sharing a serial keep theirs.
Devices of every kind (USB, other udev devices, declared) share the table, keyed by sys_path;
only the USB-only checks (a bound driver on an interface) look at the kind.

Pure bookkeeping with the clock passed in: no threads, no udev, no I/O except the stat() of
device nodes (injectable for tests). The watcher feeds it; ``build`` makes the next Snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from discovery.attributes import builtin_attributes
from discovery.checks.health import HealthResult
from discovery.state.ids import Identity, stable_id, twin_key
from discovery.state.idmemory import IdMemory
from discovery.model import DeclaredDevice, Device, UsbDevice
from discovery.nodes import NodeCheck, check_node, handed_over_nodes
from discovery.rules.model import HEALTHY_COUNT, AttrValue
from discovery.state.snapshot import DeviceState, Group, GroupKey, Snapshot

if TYPE_CHECKING:
    from discovery.rules.matching import Match
    from discovery.rules.ruleset import RuleSet

log = logging.getLogger(__name__)

@dataclass
class _History:
    """What we remember of one ID between plugs."""

    device: Device
    plugged_at: float
    unplugged_at: float | None = None
    replug_count: int = 0
    match: Match | None = None


class DeviceTable:
    """Attached devices by sysfs path, and the memory that makes IDs and health survive replugs."""

    def __init__(
        self, *, unplugged_grace: float, node_check: NodeCheck = check_node, memory: IdMemory | None = None
    ) -> None:
        self.unplugged_grace = unplugged_grace
        self._node_check = node_check
        self.memory = memory  # IDs given before (this run, or an earlier one through the saved state)
        self._attached: dict[str, Device] = {}
        self._declared: dict[str, DeclaredDevice] = {}  # sys_path -> device, while the rules declare it
        self._ids: dict[str, str] = {}  # sys_path -> ID, kept while attached
        self._history: dict[str, _History] = {}  # ID -> history, kept for the grace period
        self._health: dict[str, HealthResult] = {}
        self._matches: dict[str, Match | None] = {}  # ID -> cached match for the current rules
        self._rules: RuleSet | None = None

    # -- inputs ---------------------------------------------------------------------------
    def set_rules(self, rules: RuleSet) -> None:
        self._rules = rules
        self._matches.clear()

    def set_declared(self, devices: Iterable[DeclaredDevice], now: float) -> None:
        """The devices the rules declare now: new ones appear, dropped ones are gone at once.

        A declared device's ID is the operator's, so there is nothing to remember for a replug: one
        the rules no longer declare is forgotten (no unplugged grace: it will not come back by itself).
        """
        fresh = {d.sys_path: d for d in devices}
        for path, device in list(self._declared.items()):
            if path not in fresh:
                del self._declared[path]
                del self._ids[path]
                self._history.pop(device.device_id, None)
                self._health.pop(device.device_id, None)
                self._matches.pop(device.device_id, None)
        for path, device in fresh.items():
            dev_id = device.device_id
            before = self._declared.get(path)
            self._declared[path] = device
            self._ids[path] = dev_id
            self._matches.pop(dev_id, None)
            if before is None:
                self._history[dev_id] = _History(device=device, plugged_at=now)
            elif before != device:  # new values or nodes: judge it anew
                self._history[dev_id].device = device
                self._health.pop(dev_id, None)

    def replace_all(self, devices: Iterable[Device], now: float) -> None:
        """A full enumeration: everything not listed is gone."""
        fresh = {d.sys_path: d for d in devices}
        for path in list(self._attached):
            if path not in fresh:
                self.update(path, None, now)
        # A device the memory knows gets its ID back first, whatever order udev lists devices in,
        # so no other device can take it. The rest are judged against the whole enumeration, so two
        # new devices sharing a serial both get port IDs. Only devices of the same kind and serial
        # (USB: vendor, product, serial; udev: subsystem, serial) can collide: compare within those.
        twins: dict[Identity, list[Device]] = {}
        for device in fresh.values():
            twins.setdefault(twin_key(device), []).append(device)
        remembered = [p for p, d in fresh.items() if self.memory is not None and self.memory.recall(d)]
        for path in sorted(remembered) + sorted(set(fresh) - set(remembered)):
            device = fresh[path]
            self.update(path, device, now, peers=twins[twin_key(device)])

    def update(
        self, sys_path: str, device: Device | None, now: float, peers: Iterable[Device] | None = None
    ) -> None:
        """The device at ``sys_path`` is now ``device`` (None: it is gone).

        ``peers`` are the devices its ID must be told apart from; by default the attached ones.
        """
        old_id = self._ids.get(sys_path)
        if device is None:
            if old_id is None:
                return
            del self._attached[sys_path]
            del self._ids[sys_path]
            hist = self._history.get(old_id)
            if hist is not None:
                hist.unplugged_at = now
            return
        before = self._attached.get(sys_path)
        if old_id is not None and before is not None and same_unit(before, device):
            # The same device changed (a child appeared, a property changed): keep its ID. Another
            # unit swapped in at this port (new devnum or serial) goes through unplug and plug.
            self._attached[sys_path] = device
            self._history[old_id].device = device
            self._matches.pop(old_id, None)
            return
        if old_id is not None:
            self.update(sys_path, None, now)
        new_id = self._assign(device, self._attached.values() if peers is None else peers)
        self._attached[sys_path] = device
        self._ids[sys_path] = new_id
        self._matches.pop(new_id, None)
        hist = self._history.get(new_id)
        if hist is None:
            self._history[new_id] = _History(device=device, plugged_at=now)
        else:  # a replug of a device we remember
            hist.device = device
            hist.plugged_at = now
            hist.unplugged_at = None
            hist.replug_count += 1
            self._health.pop(new_id, None)  # judge the fresh plug anew

    def set_health(self, device_id: str, result: HealthResult) -> None:
        if device_id in self._history:
            self._health[device_id] = result

    def _assign(self, device: Device, peers: Iterable[Device]) -> str:
        """The ID the memory has for this unit if no attached device holds it, else the computed one."""
        remembered = self.memory.recall(device) if self.memory is not None else None
        if remembered is not None and remembered not in self._ids.values():
            new_id = remembered
        else:
            new_id = self._unique(stable_id(device, peers))
        if self.memory is not None:
            self.memory.remember(device, new_id)
        return new_id

    def _unique(self, candidate: str) -> str:
        """IDs are unique among attached devices even if two devices claim the same port (should not happen)."""
        if candidate not in self._history or self._history[candidate].unplugged_at is not None:
            return candidate  # free, or the ID of an unplugged device coming back
        taken = set(self._ids.values())
        if candidate not in taken:
            return candidate
        n = 2
        while f"{candidate}~{n}" in taken:
            n += 1
        return f"{candidate}~{n}"

    # -- queries --------------------------------------------------------------------------
    def attached(self) -> list[tuple[str, Device]]:
        return [(self._ids[p], d) for p, d in self._attached.items()]

    def declared(self) -> list[tuple[str, DeclaredDevice]]:
        """The declared devices, in the order the rules declare them."""
        return [(d.device_id, d) for d in self._declared.values()]

    def id_of(self, sys_path: str) -> str | None:
        return self._ids.get(sys_path)

    def expire(self, now: float) -> bool:
        """Forget devices unplugged longer than the grace period; True when any was dropped."""
        dropped = False
        for dev_id, hist in list(self._history.items()):
            if hist.unplugged_at is not None and hist.unplugged_at + self.unplugged_grace <= now:
                del self._history[dev_id]
                self._health.pop(dev_id, None)
                self._matches.pop(dev_id, None)
                dropped = True
        return dropped

    def next_expiry(self) -> float | None:
        """When the next unplugged device's grace period ends (wall clock), if any is waiting."""
        ends = [h.unplugged_at + self.unplugged_grace for h in self._history.values() if h.unplugged_at is not None]
        return min(ends, default=None)

    def match_of(self, dev_id: str) -> Match | None:
        if self._rules is None:
            return None
        if dev_id not in self._matches:
            hist = self._history[dev_id]
            try:
                match = self._rules.match(hist.device, dev_id)
            except Exception:  # a matcher bug must cost one device, not the stream
                log.exception("matching failed", extra={"device_id": dev_id})
                match = None
            if match is not None and match.notes:
                # Logged once per (re)match: what the rule wanted but this device could not give.
                log.warning("rule only partly applies", extra={"device_id": dev_id, "notes": "; ".join(match.notes)})
            self._matches[dev_id] = match
        return self._matches[dev_id]

    def health_checks(self) -> list[tuple[str, Match]]:
        """Present, matched devices whose rule has a health check."""
        out = []
        for dev_id in self._ids.values():
            match = self.match_of(dev_id)
            if match is not None and match.health is not None:
                out.append((dev_id, match))
        return out

    def stats_commands(self) -> list[tuple[str, Match]]:
        """Present, matched devices whose rule has a stats command."""
        out = []
        for dev_id in self._ids.values():
            match = self.match_of(dev_id)
            if match is not None and match.stats is not None:
                out.append((dev_id, match))
        return out

    def build(self, version: int, *, rules_error: str | None = None, source: str = "udev") -> Snapshot:
        """The Snapshot of the table as it is now."""
        states: dict[str, DeviceState] = {}
        unmatched: list[tuple[str, Device]] = []
        present_ids = set(self._ids.values())
        for dev_id, hist in self._history.items():
            present = dev_id in present_ids
            # An unplugged device keeps the match it had while attached (computed now if never built).
            match = self.match_of(dev_id) if present or hist.match is None else hist.match
            if present:
                hist.match = match
            if match is None:
                if present:
                    unmatched.append((dev_id, hist.device))
                continue
            reason = self._problem(dev_id, hist, match, present)
            states[dev_id] = DeviceState(
                id=dev_id,
                device=hist.device,
                match=match,
                present=present,
                healthy=not reason,
                reason=reason,
                plugged_at=hist.plugged_at,
                unplugged_at=hist.unplugged_at,
                replug_count=hist.replug_count,
                health=self._health.get(dev_id) if match.health is not None else None,
            )
        return Snapshot(
            version=version,
            groups=build_groups(states.values()),
            devices=MappingProxyType(states),
            unmatched=tuple(sorted(unmatched, key=lambda t: t[0])),
            rules_error=rules_error,
            source=source,
        )

    def _problem(self, dev_id: str, hist: _History, match: Match, present: bool) -> str:
        if not present:
            return "unplugged"
        device = hist.device
        if match.require_driver and isinstance(device, UsbDevice) and not any(i.driver for i in device.interfaces):
            return "no driver bound"
        for path in handed_over_nodes(device, match.children, match.nodes):
            problem = self._node_check(path)
            if problem:
                return problem
        result = self._health.get(dev_id) if match.health is not None else None  # a dropped check no longer counts
        if result is not None and not result.ok:
            return result.detail
        return ""


def same_unit(before: Device, after: Device) -> bool:
    """Is ``after`` the same unit as ``before`` at one sys_path, only changed (a child came, a property changed)?

    Another unit swapped in at the port (USB: a new devnum or serial; udev: a new node or serial)
    is not: it goes through unplug and plug.
    """
    if isinstance(before, UsbDevice):
        return (isinstance(after, UsbDevice)
                and (before.vid_pid, before.serial, before.devnum) == (after.vid_pid, after.serial, after.devnum))
    return (before.kind, before.serial, before.device_node) == (after.kind, after.serial, after.device_node)


def device_attributes(state: DeviceState) -> dict[str, AttrValue]:
    """The built-in attributes of the device, overridden by its rule's."""
    attrs = builtin_attributes(state.device)  # a declared device has none
    attrs.update(state.match.attributes)
    return attrs


def build_groups(states: Iterable[DeviceState]) -> tuple[Group, ...]:
    """One Group per vendor/type/name: the attributes every device in it agrees on, and its healthy count."""
    members: dict[GroupKey, list[DeviceState]] = {}
    for state in states:
        members.setdefault(state.group, []).append(state)
    groups = []
    for key in sorted(members):
        devs = sorted(members[key], key=lambda s: s.id)
        common = device_attributes(devs[0])
        for other in devs[1:]:
            theirs = device_attributes(other)
            for name in list(common):
                if theirs.get(name) != common[name]:
                    # Normal for a broad group (two adapter models under one name); debug only.
                    log.debug(
                        "devices in one group disagree on an attribute; it is left out",
                        extra={"group": "/".join(key), "attribute": name},
                    )
                    del common[name]
        # Set last and always: this is what makes Nomad re-check a waiting job (see HEALTHY_COUNT).
        common[HEALTHY_COUNT] = AttrValue(sum(1 for s in devs if s.healthy))
        groups.append(
            Group(
                vendor=key[0],
                type=key[1],
                name=key[2],
                attributes=MappingProxyType(common),
                device_ids=tuple(s.id for s in devs),
            )
        )
    return tuple(groups)

