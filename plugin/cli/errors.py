"""How a CLI run ends: the program's name, its exit codes and their help text, and the one-line CliError.

Apart from ``plugin.cli.context`` (which re-exports all of it) because the parser needs these and
nothing else: ``--help`` then loads no dataclasses, JSON or logging.
"""

from __future__ import annotations

PROG = "nomad-device-usb"
RULES_ENV = "NOMAD_DEVICE_USB_RULES"

EXIT_OK = 0
EXIT_FAILED = 1  # validation failed, rules rejected, device not found or ambiguous
EXIT_USAGE = 2  # bad command line (argparse)
EXIT_ENVIRONMENT = 3  # USB cannot be seen here: no udev and no usbfs access
EXIT_BROKEN_PIPE = 128 + 13  # the reader of stdout left early: what a shell reports for a tool killed by SIGPIPE

EXIT_CODES_HELP = f"""\
exit codes:
  {EXIT_OK}  success
  {EXIT_FAILED}  failed: the rules file has errors or cannot be read, validate found errors, or DEVICE
     matches no attached device (or several)
  {EXIT_USAGE}  usage error: unknown subcommand or option, missing argument
  {EXIT_ENVIRONMENT}  environment problem: USB devices cannot be listed here (no udev and no usable
     libusb), or watch without udev
  {EXIT_BROKEN_PIPE}  the reader of the output left early (| head): nothing more is written, as with
     any tool a broken pipe stops"""


class CliError(Exception):
    """A one-line error for the person at the terminal, with the exit code it means."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code
