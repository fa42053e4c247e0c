"""The executable when a Nomad agent runs it: hclog logging, the runtime, the orphan watch, and serving.

``plugin.main`` hands over to :func:`run` once the magic cookie says an agent started us; only
then are grpc, the servicers and the discovery runtime imported.
"""

from __future__ import annotations

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
# What SetConfig, Fingerprint, Reserve and Stats import on first use; loaded in the background right
# after the handshake line, while the agent makes its first calls (PluginInfo, ConfigSchema).
FIRST_USE_MODULES = (
    "discovery.rules.loader", "discovery.sources.udev", "discovery.watcher", "plugin.fingerprint",
    "discovery.reservation", "plugin.stats",
)


def run(source_factory: Callable[[], DeviceSource] | None = None) -> NoReturn:
    """Serve Nomad until Shutdown (or a signal), then end the process.

    ``source_factory`` replaces where devices come from (the fault-injection tests wrap the real
    source); by default the machine's own (udev, else pyusb).
    """
    setup_logging(DEFAULT_LOG_LEVEL)
    from plugin import services
    from plugin.runtime import Runtime
    from plugin.server import serve_and_exit

    runtime = Runtime(source_factory) if source_factory is not None else Runtime()
    watch_for_orphaning(runtime)
    serve_and_exit(lambda server: services.register(server, runtime), on_shutdown=runtime.stop,
                   on_serving=load_in_background)


def load_in_background(modules: tuple[str, ...] = FIRST_USE_MODULES) -> None:
    """Import ``modules`` in a thread: the handshake does not wait for them, the first SetConfig seldom does."""

    def load() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # the call that needs it imports it again and reports the error there
                log.debug("background import failed", extra={"module": name}, exc_info=True)

    threading.Thread(target=load, name="first-use-imports", daemon=True).start()


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
