"""The plugin's live state between RPCs: the current config and the discovery it drives.

SetConfig may come several times (twice on Nomad's validation launch) and must be idempotent, so
configure() only checks and stores; discovery is built and started on first use and stopped at
Shutdown. Access is guarded by a lock because gRPC calls arrive on several threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from discovery.rules import RuleSet, load_rules, rules_from_dicts
from discovery.sources import default_source
from discovery.watcher import Discovery
from plugin.config import PluginConfig
from plugin.logs import set_level

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self) -> None:
        self._lock = threading.RLock()  # start() reads the rules back through _load_rules
        self._config = PluginConfig()
        self._inline: Sequence[object] = ()
        self._discovery: Discovery | None = None
        self._stopped = False

    def configure(self, config: PluginConfig) -> None:
        """Check the whole config (the rules file included) before anything of it is applied."""
        inline = rules_from_dicts([dict(r) for r in config.inline_rules], "plugin config", field_prefix="rule")
        file_rules = load_rules(config.rules_file) if config.rules_file else None  # RulesError: file, line, field
        RuleSet.from_parts(inline, file_rules)  # inline and file rules must not disagree on a group
        with self._lock:
            changed = config != self._config
            self._config = config
            self._inline = inline
            set_level(config.log_level)
            running = self._discovery
        if changed and running is not None:
            # Nomad never reconfigures a running plugin; if something does, the rules follow at once.
            log.warning("config changed while running; only the rules are re-read until restart")
            running.reload_rules()

    def _load_rules(self) -> RuleSet:
        with self._lock:
            config, inline = self._config, list(self._inline)
        file_rules = load_rules(config.rules_file) if config.rules_file else None
        return RuleSet.from_parts(inline, file_rules)  # type: ignore[arg-type]

    @property
    def serving_devices(self) -> bool:
        """True once discovery has started: this is the long-lived instance Nomad may reattach to."""
        return self._discovery is not None or self._stopped

    def discovery(self) -> Discovery:
        with self._lock:
            if self._discovery is None:
                if self._stopped:
                    raise RuntimeError("plugin is shutting down")
                config = self._config
                discovery = Discovery(
                    default_source(),
                    self._load_rules,
                    rules_file=config.rules_file,
                    debounce=config.debounce,
                    unplugged_grace=config.unplugged_grace,
                )
                # Enumerating under the lock keeps a second caller from starting a second monitor;
                # only a started discovery is kept, so a failed start is tried again next time.
                discovery.start()
                self._discovery = discovery
                log.info(
                    "discovery started",
                    extra={
                        "source": discovery.current().source,
                        "devices": len(discovery.current().devices),
                        "rules_file": config.rules_file or "",
                    },
                )
            return self._discovery

    def reset_if_asked(self, device_ids: Sequence[str]) -> None:
        """Reset devices whose rule says so, before a task gets them (boards stuck from the last job)."""
        discovery = self._discovery
        if discovery is None:
            return
        snapshot = discovery.current()
        for dev_id in device_ids:
            state = snapshot.devices.get(dev_id)
            if state is None or not state.match.reset:
                continue
            from discovery.reservation import DeviceUnavailableError
            from discovery.usbfs import UsbResetError, reset_device

            try:
                reset_device(state.device.busnum, state.device.devnum)
            except UsbResetError as exc:
                raise DeviceUnavailableError(f"device {dev_id} could not be reset: {exc}") from exc
            log.info("device reset before hand-over", extra={"device_id": dev_id})

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            discovery, self._discovery = self._discovery, None
        if discovery is not None:
            discovery.stop()
