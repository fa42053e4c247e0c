"""Entry point of the nomad-device-usb executable: Nomad plugin mode or CLI.

Plugin mode is chosen by the magic cookie rather than by an empty argv,
because the agent appends the `args` list of the `plugin` block to our command
line. Without the cookie and without arguments, we explain to the person at the
terminal what this executable is (and point at --help); with arguments, the CLI
(plugin.cli.main) runs. Neither of those two paths imports grpc.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from plugin.handshake import NOT_A_PROGRAM_MESSAGE, check_cookie
from plugin.logs import setup_logging

if TYPE_CHECKING:
    from discovery.sources.base import DeviceSource
    from plugin.runtime import Runtime

log = logging.getLogger(__name__)

# Until SetConfig brings the operator's log_level.
DEFAULT_LOG_LEVEL = "info"
ORPHAN_CHECK_S = 2.0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not check_cookie(os.environ):
        if not args:
            # Run by hand without a command: say what this is (the message points at --help).
            sys.stderr.write(NOT_A_PROGRAM_MESSAGE)
            sys.stderr.flush()
            return 1
        from plugin.cli.main import main as cli_main

        return cli_main(args)
    serve_plugin()


def serve_plugin(source_factory: Callable[[], DeviceSource] | None = None) -> NoReturn:
    """Plugin mode: log as hclog JSON, serve go-plugin until Shutdown, exit.

    ``source_factory`` replaces where devices come from (the fault-injection tests wrap the real
    source); by default the machine's own (udev, else pyusb).
    """
    setup_logging(DEFAULT_LOG_LEVEL)
    # Imported only in plugin mode, so the CLI never loads grpc.
    from plugin import services
    from plugin.runtime import Runtime
    from plugin.server import serve_and_exit

    runtime = Runtime(source_factory) if source_factory is not None else Runtime()
    watch_for_orphaning(runtime)
    serve_and_exit(lambda server: services.register(server, runtime), on_shutdown=runtime.stop)


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


if __name__ == "__main__":
    sys.exit(main())
