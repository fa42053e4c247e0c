"""The executable when a Nomad agent runs it: hclog logging, the runtime, the orphan watch, and serving.

``plugin.main`` hands over to :func:`run` once the magic cookie says an agent started us; only
then are grpc, the servicers and the discovery runtime imported.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import TYPE_CHECKING, NoReturn

from plugin.logs import setup_logging

if TYPE_CHECKING:
    from plugin.runtime import Runtime

log = logging.getLogger(__name__)

# Until SetConfig brings the operator's log_level.
DEFAULT_LOG_LEVEL = "info"
ORPHAN_CHECK_S = 2.0


def run() -> NoReturn:
    """Serve Nomad until Shutdown (or a signal), then end the process."""
    setup_logging(DEFAULT_LOG_LEVEL)
    from plugin import services
    from plugin.runtime import Runtime
    from plugin.server import serve_and_exit

    runtime = Runtime()
    watch_for_orphaning(runtime)
    serve_and_exit(lambda server: services.register(server, runtime), on_shutdown=runtime.stop)

