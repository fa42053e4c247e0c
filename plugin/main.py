"""Entry point of the nomad-device-usb executable: Nomad plugin mode or CLI.

Plugin mode is chosen by the magic cookie rather than by an empty argv,
because the agent appends the `args` list of the `plugin` block to our command
line. Without the cookie and without arguments, we explain to the person at the
terminal what this executable is (and point at --help); with arguments, the CLI
(plugin.cli.main) runs. Neither of those two paths imports grpc, and this module
imports nothing but the cookie check, so each path loads only what it uses
(plugin mode: plugin.plugin_mode).
"""

from __future__ import annotations

import os
import sys

from plugin.cookie import NOT_A_PROGRAM_MESSAGE, check_cookie


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
    from plugin.plugin_mode import run

    run()


if __name__ == "__main__":
    sys.exit(main())
