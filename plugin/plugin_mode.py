"""The executable when a Nomad agent runs it: hclog logging, the runtime, the orphan watch, and serving.

``plugin.main`` hands over to :func:`run` once the magic cookie says an agent started us; only
then are grpc and the servicers imported, and the rest (config decoding, rules, discovery) after
the handshake line, in the background, where the commands a dead instance left running are killed too.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from plugin.logs import setup_logging

if TYPE_CHECKING:
    from discovery.sources.base import DeviceSource
    from plugin.runtime import Runtime

log = logging.getLogger(__name__)

# Until SetConfig brings the operator's log_level.
DEFAULT_LOG_LEVEL = "info"
ORPHAN_CHECK_S = 2.0
# What ConfigSchema and SetConfig import on first use, then what the first Fingerprint does, then
# Reserve and Stats: loaded in this order in the background right after the handshake line, while the
# agent makes its first calls.
BEFORE_SET_CONFIG = ("plugin.config", "plugin.schema", "discovery.rules.loader", "discovery.rules.trust")
BEFORE_FINGERPRINT = ("discovery.sources.default", "discovery.sources.udev", "discovery.loop.watcher",
                      "discovery.state.idstore", "plugin.fingerprint")
LATER = ("discovery.reservation", "plugin.stats")
FIRST_USE_MODULES = BEFORE_SET_CONFIG + BEFORE_FINGERPRINT + LATER


def run(source_factory: Callable[[], DeviceSource] | None = None) -> NoReturn:
    """Serve Nomad until Shutdown (or a signal), then end the process.

    ``source_factory`` replaces where devices come from (the fault-injection tests wrap the real
    source); by default the machine's own (udev, else pyusb).
    """
    # Start-up makes some hundred thousand objects that live as long as the process: collecting
    # cycles among them only costs time. Back on (those objects set aside) once start-up is done.
    gc.disable()
    setup_logging(DEFAULT_LOG_LEVEL)
    from plugin import services
    from plugin.runtime import Runtime
    from plugin.server import serve_and_exit

    runtime = Runtime(source_factory) if source_factory is not None else Runtime()
    watch_for_orphaning(runtime)
    serve_and_exit(lambda server: services.register(server, runtime), on_shutdown=runtime.stop,
                   on_serving=load_in_background)


def load_in_background() -> None:
    """In a thread: what the agent's first calls import, in the order it calls, then the commands a dead
    instance left running are killed, then the rest is imported. The handshake does not wait for it, and
    the first Fingerprint seldom does."""

    def load() -> None:
        try:
            _import_all(BEFORE_SET_CONFIG + BEFORE_FINGERPRINT)
        finally:
            gc.freeze()  # what start-up made stays: later collections need not look at it
            gc.enable()
        reap_left_behind()
        _import_all(LATER)

    threading.Thread(target=load, name="first-use-imports", daemon=True).start()


def reap_left_behind() -> None:
    """Kill what the health and stats commands of plugin instances that died without stopping them (SIGKILL,
    a crash) left in their groups: each command died with its plugin, but not what it started beside it,
    which would otherwise run for ever (``discovery.checks.orphans``)."""
    from discovery.checks.orphans import reap_orphans

    try:
        reap_orphans()  # logs a warning naming the dead owners when it killed anything
    except OSError as exc:  # /proc unreadable as a whole: nothing to reap that this process could find
        log.warning("could not look for commands left running by a dead plugin instance",
                    extra={"error": exc.strerror or str(exc)})


def _import_all(modules: tuple[str, ...]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # the call that needs it imports it again and reports the error there
            log.debug("background import failed", extra={"module": name}, exc_info=True)


def watch_for_orphaning(runtime: Runtime, interval: float = ORPHAN_CHECK_S) -> None:
    """Exit when the agent is gone and this process never served devices.

    Nomad stops a plugin whose SetConfig failed only by forgetting it (the process lives on), and an
    agent that dies during its start-up launches leaves them behind too. A long-lived instance that
    served devices must outlive an agent crash instead, so the next agent can reattach and stop it.
    """
    parent = os.getppid()

    def watch() -> None:
        tick = threading.Event()  # never set: a sleep that is not time.sleep
        while not tick.wait(interval):
            if os.getppid() != parent and not runtime.serving_devices:
                log.info("the Nomad agent that started this plugin is gone; exiting", extra={"parent": parent})
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()
