"""The plugin's live state between RPCs: the current config and the discovery it drives.

SetConfig may come several times (twice on Nomad's validation launch) and must be idempotent, so
configure() only checks and stores; discovery is built and started on first use and stopped at
Shutdown. Access is guarded by a lock because gRPC calls arrive on several threads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from plugin.logs import set_level

if TYPE_CHECKING:  # the config decoder and discovery load on first use, after the handshake line is out
    from discovery.sources.base import DeviceSource
    from discovery.rules.model import Rule
    from discovery.rules.ruleset import RuleSet
    from discovery.state.snapshot import Snapshot
    from discovery.loop.watcher import Discovery
    from plugin.config import PluginConfig

log = logging.getLogger(__name__)

RESET_SETTLE_S = 5.0  # how long Reserve waits for a reset device to be back


def all_rules(rules_file: str | None, inline: Sequence[Rule], *, strict: bool = True) -> RuleSet:
    """The plugin config's inline rules first, then the rules file's (read anew on each call).

    ``strict``: as root, a rules file anyone but root could change is refused (RulesError) before
    it is read, at SetConfig and at every reload alike. Inline rules are config, not a file: no check.
    """
    from discovery.rules.loader import load_rules
    from discovery.rules.ruleset import RuleSet
    from discovery.rules.trust import check_trusted

    if rules_file and strict:
        check_trusted(rules_file)
    return RuleSet.from_parts(list(inline), load_rules(rules_file) if rules_file else None)


class Runtime:
    def __init__(self, source_factory: Callable[[], DeviceSource] | None = None) -> None:
        self._source_factory = source_factory  # where devices come from (a test may wrap the real one)
        self._lock = threading.RLock()  # start() reads the rules back through _load_rules
        self._config: PluginConfig | None = None  # None until SetConfig: the defaults apply
        self._inline: Sequence[Rule] = ()
        self._discovery: Discovery | None = None
        self._stopped = False

    def configure(self, config: PluginConfig) -> None:
        """Check the whole config (the rules file included) before anything of it is applied."""
        from discovery.rules.loader import rules_from_dicts

        inline = rules_from_dicts([dict(r) for r in config.inline_rules], "plugin config", field_prefix="rule")
        # RulesError: file, line, field, a group two rules disagree on, or a file others could change
        all_rules(config.rules_file, inline, strict=config.strict_rules_permissions)
        with self._lock:
            changed = config != self._current_config()
            self._config = config
            self._inline = inline
            set_level(config.log_level)
            running = self._discovery
        if changed and running is not None:
            # Nomad never reconfigures a running plugin; if something does, the rules follow at once.
            log.warning("config changed while running; only the rules are re-read until restart")
            running.reload_rules()

    def _current_config(self) -> PluginConfig:
        from plugin.config import PluginConfig

        with self._lock:
            return self._config if self._config is not None else PluginConfig()

    def _load_rules(self) -> RuleSet:
        with self._lock:
            config, inline = self._current_config(), self._inline
        return all_rules(config.rules_file, inline, strict=config.strict_rules_permissions)

    @property
    def serving_devices(self) -> bool:
        """True once discovery has started: this is the long-lived instance Nomad may reattach to."""
        return self._discovery is not None or self._stopped

    def discovery(self) -> Discovery:
        from discovery.state.idstore import IdStore, state_dir_from
        from discovery.sources.default import default_source
        from discovery.loop.watcher import Discovery

        with self._lock:
            if self._discovery is None:
                if self._stopped:
                    raise RuntimeError("plugin is shutting down")
                config = self._current_config()
                discovery = Discovery(
                    (self._source_factory or default_source)(),
                    self._load_rules,
                    rules_file=config.rules_file,
                    debounce=config.debounce,
                    unplugged_grace=config.unplugged_grace,
                    id_store=IdStore(state_dir_from(config.state_dir, os.environ)),
                    strict_commands=config.strict_rules_permissions,
                )
                # Enumerating under the lock keeps a second caller from starting a second monitor;
                # only a started discovery is kept, so a failed start is tried again next time.
                discovery.start()
                self._discovery = discovery
                if not config.strict_rules_permissions:
                    _warn_unchecked(config.rules_file)
                log.info(
                    "discovery started",
                    extra={
                        "source": discovery.current().source,
                        "devices": len(discovery.current().devices),
                        "rules_file": config.rules_file or "",
                    },
                )
            return self._discovery

    def snapshot_for_reservation(self, device_ids: Sequence[str]) -> Snapshot:
        """The snapshot to plan a reservation from; devices whose rule asks for it are reset first.

        A reset makes the kernel unbind and rebind drivers, so child nodes (a tty) vanish and come
        back: the plan is made from the first snapshot after the reset in which the devices are
        present and healthy again, or from the latest one when that does not come in time.
        """
        discovery = self.discovery()
        snapshot = discovery.current()
        from discovery.model import UsbDevice

        to_reset = [
            (dev_id, state)
            for dev_id in device_ids
            if (state := snapshot.devices.get(dev_id)) is not None and state.match.reset and state.present
            and isinstance(state.device, UsbDevice)  # reset is USB-only (the rules refuse it elsewhere)
        ]
        if not to_reset:
            return snapshot
        from discovery.nodes import handed_over_children
        from discovery.reservation import DeviceUnavailableError
        from discovery.sources.usbfs import UsbResetError, reset_device

        for dev_id, state in to_reset:
            device = state.device
            assert isinstance(device, UsbDevice)  # to_reset holds USB devices only
            try:
                reset_device(device.busnum, device.devnum)
            except UsbResetError as exc:
                raise DeviceUnavailableError(f"device {dev_id} could not be reset: {exc}") from exc
            log.info("device reset before hand-over", extra={"device_id": dev_id})
        # Ready: present, healthy, and holding at least as many handed-over nodes as before.
        wanted = {dev_id: len(handed_over_children(st.device, st.match.children)) for dev_id, st in to_reset}

        def ready(snap: Snapshot) -> bool:
            states = {i: snap.devices.get(i) for i in device_ids}
            return all(st is not None and st.present and st.healthy for st in states.values()) and all(
                len(handed_over_children(st.device, st.match.children)) >= wanted[i]
                for i, st in states.items()
                if st is not None and i in wanted
            )

        quiet = discovery.settle_time  # no event for this long: the reset's events are all in
        deadline = time.monotonic() + RESET_SETTLE_S
        version = snapshot.version
        while (left := deadline - time.monotonic()) > 0:
            # A new snapshot, or none for a quiet period (the reset's events are all in): plan if ready.
            newer = discovery.wait_newer(version, min(left, quiet))
            if ready(newer):
                return newer
            version = newer.version
        return discovery.current()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            discovery, self._discovery = self._discovery, None
        if discovery is not None:
            discovery.stop()


def _warn_unchecked(rules_file: str | None) -> None:
    """Said at every start while the operator has the ownership and mode check of the rules file
    and of the commands' programs off."""
    from discovery.rules.trust import ROOT_UID, SWITCH, untrusted_reasons

    reasons = untrusted_reasons(rules_file) if rules_file and os.geteuid() == ROOT_UID else []
    log.warning(
        f"{SWITCH}: the rules file is used even if users other than root can change it, "
        "and its health and stats commands run as root even if others can change their programs",
        extra={"rules_file": rules_file or "", "problems": "; ".join(reasons) or "none now"},
    )
