"""Entry point of the nomad-device-usb executable: Nomad plugin mode or CLI.

Plugin mode is chosen by the magic cookie rather than by an empty argv,
because the agent appends the `args` list of the `plugin` block to our command
line. Without the cookie and without arguments, we explain to the person at the
terminal what this executable is (and point at --help); with arguments, the CLI
(plugin.cli) runs. Neither of those two paths imports grpc.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

from plugin.handshake import NOT_A_PROGRAM_MESSAGE, check_cookie
from plugin.logs import setup_logging

DEFAULT_LOG_LEVEL = "debug"


def _device_services() -> tuple[Callable[[Any], None], Callable[[], None] | None]:
    """register/on_shutdown for the device servicers, or no-ops until they exist."""
    if importlib.util.find_spec("plugin.services") is None:
        return (lambda _server: None), None
    from plugin import services
    from plugin.runtime import Runtime

    runtime = Runtime()
    return (lambda server: services.register(server, runtime)), runtime.stop


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not check_cookie(os.environ):
        if not args:
            # Run by hand without a command: say what this is (the message points at --help).
            sys.stderr.write(NOT_A_PROGRAM_MESSAGE)
            sys.stderr.flush()
            return 1
        from plugin import cli

        return cli.main(args)
    setup_logging(DEFAULT_LOG_LEVEL)
    # Imported only in plugin mode, so the CLI never loads grpc.
    from plugin.server import serve_and_exit

    register, on_shutdown = _device_services()
    serve_and_exit(register, on_shutdown=on_shutdown)

if __name__ == "__main__":
    sys.exit(main())
