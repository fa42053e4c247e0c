"""The command line of nomad-device-usb: list, explain, validate, suggest, watch (and the demo).

A thin layer over ``discovery``: the rules loader, the matcher, the device table that gives IDs and
the reservation planner are the plugin's own, so the CLI shows exactly what Nomad would see. It
never imports grpc or the plugin's servers (tests check this), which keeps it fast to start.

Errors end as one line on stderr, ``nomad-device-usb: error: ...``, with the exit codes in
:mod:`plugin.cli.context`; a traceback appears only with the hidden ``--debug`` flag.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from plugin.cli.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_CODES_HELP,
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_USAGE,
    PROG,
    RULES_ENV,
    CliError,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, a few ms of every --help (mypy knows the name)
if TYPE_CHECKING:
    import logging
    from typing import NoReturn, TextIO

    from discovery.sources.base import DeviceSource
    from plugin.cli.context import Context

DESCRIPTION = f"""\
Nomad device plugin for USB devices. Run by a Nomad client agent, it is a plugin; run by a person,
it helps writing the rules that decide which USB devices Nomad sees and what it calls them.

DEVICE (for explain and suggest) is any of: a stable ID (usb-0403-6001-A50285BI), VID:PID (0403:6001),
a sysfs path, a /dev node or link (/dev/ttyUSB0, /dev/serial/by-id/...), or a port (1-5.2 or its
udev ID_PATH). A VID:PID that several attached devices share is refused with the list of them.

--rules FILE defaults to ${RULES_ENV} when that is set.
"""

EXAMPLES = f"""\
examples:
  {PROG} list --rules /etc/nomad.d/usb-rules.yaml
  {PROG} explain 0403:6001 --rules /etc/nomad.d/usb-rules.yaml
  {PROG} validate /etc/nomad.d/usb-rules.yaml
  {PROG} suggest /dev/ttyACM0 >> /etc/nomad.d/usb-rules.yaml
  {PROG} watch --rules /etc/nomad.d/usb-rules.yaml
  {PROG} list --json | jq -r '.devices[] | select(.match.status == "unmatched") | .id'

output: tables fit the terminal (COLUMNS overrides its width; --wide never cuts a cell) and are
coloured on a terminal unless NO_COLOR is set or --color=never; --json prints one JSON document
(watch: one JSON object per line) for scripts. Full reference: docs/cli.md.

{EXIT_CODES_HELP}
"""

SUBCOMMAND_EXAMPLES = {
    "list": f"""\
examples:
  {PROG} list                                  # IDs and nodes; no rules: every device shows "no rule"
  {PROG} list --rules rules.yaml               # plus the group and rule each device lands in
  {PROG} list --rules rules.yaml --json        # for scripts
  {PROG} list --all                            # also on-board UARTs, GPIO chips, PCI cards ... (kind udev)""",
    "explain": f"""\
examples:
  {PROG} explain usb-0403-6001-A50285BI --rules rules.yaml
  {PROG} explain /dev/ttyACM0 --rules rules.yaml
  {PROG} explain 1-5.2 --rules rules.yaml --json""",
    "validate": f"""\
examples:
  {PROG} validate rules.yaml                   # errors (exit 1), then warnings (exit 0)
  {PROG} validate --no-devices rules.yaml      # in CI: without looking at attached devices
  {PROG} validate --strict rules.yaml          # warnings fail too""",
    "suggest": f"""\
examples:
  {PROG} suggest 2341:0043                     # a rule to paste under "rules:"
  {PROG} suggest /dev/ttyUSB0 --standalone > rules.yaml
  {PROG} suggest 1-5.1 --rules rules.yaml      # also says which rule takes it now""",
    "watch": f"""\
examples:
  {PROG} watch --rules rules.yaml              # plug and unplug; edit rules.yaml to see every device again
  {PROG} watch --json | jq .
  {PROG} watch --all                           # also events of devices outside USB""",
}


def _command(module: str) -> Callable[[Context, argparse.Namespace], int]:
    """The ``run`` of ``plugin.cli.<module>``, imported when that command runs: ``--help`` and the other
    commands do not pay for the rules engine and the device table they do not use."""

    def run(ctx: Context, args: argparse.Namespace) -> int:
        return int(importlib.import_module(f"plugin.cli.{module}").run(ctx, args))

    return run


class _Parser(argparse.ArgumentParser):
    """argparse with our error format: one line, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description=DESCRIPTION, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    color_option(parser, "auto")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def sub(name: str, help_text: str, run: Callable[[Context, argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = subs.add_parser(
            name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
            epilog=SUBCOMMAND_EXAMPLES.get(name, "") + "\n\n" + EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(run=run)
        # Also after the command (`list --color never`); SUPPRESS leaves the one given before it alone.
        color_option(p, argparse.SUPPRESS)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        return p

    def rules_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--rules", metavar="FILE", help=f"the rules file (default: ${RULES_ENV}, else none)")

    def json_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub("list", "list every attached USB device with its ID, nodes and the rule that takes it", _command("list"))
    rules_option(p)
    json_option(p)
    p.add_argument("--wide", action="store_true", help="never cut cells to fit the terminal")
    p.add_argument("--all", action="store_true",
                   help="also devices with a node outside USB (on-board UARTs, GPIO chips, PCI cards) with their kind, and the devices the rules declare (their health checks run once)")

    p = sub("explain", "show how each rule judges one device, condition by condition, and its reservation",
            _command("explain"))
    p.add_argument("device", metavar="DEVICE", help="ID (a declared one too), VID:PID, sysfs path, /dev node or port")
    rules_option(p)
    json_option(p)

    p = sub("validate", "check a rules file: errors with line and column, then warnings", _command("validate"))
    p.add_argument("file", metavar="FILE", help="the rules file to check")
    p.add_argument("--no-devices", action="store_true",
                   help="do not look at attached devices (only warnings visible from the file itself)")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    json_option(p)

    p = sub("suggest", "print a starter rule for an attached device, ready to paste", _command("suggest"))
    p.add_argument("device", metavar="DEVICE", help="ID, VID:PID, sysfs path, /dev node or port")
    rules_option(p)
    p.add_argument("--standalone", action="store_true", help="a whole rules file (with 'rules:'), not just the item")
    json_option(p)

    p = sub("watch", "print hotplug events with their match result, until Ctrl-C", _command("watch"))
    rules_option(p)
    json_option(p)
    p.add_argument("--all", action="store_true", help="also show events of devices with a node outside USB")

    # Listed for --help only: main() hands "demo ..." over before argparse, so the demo parses its own options.
    subs.add_parser("demo", help="run the demo in a fake USB world (options after 'demo' are the demo's)",
                    add_help=False)
    return parser


def color_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--color", choices=("auto", "always", "never"), default=default,
                        help="colour the output: auto (default: on a terminal, unless NO_COLOR is set), always, never")


def _demo_argv(argv: Sequence[str]) -> tuple[list[str], list[str]] | None:
    """(global options, the demo's arguments) when the command is ``demo``, else None."""
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "demo":
            return list(argv[:i]), list(argv[i + 1:])
        if token == "--color":
            i += 2
            continue
        if token.startswith("--color=") or token == "--debug":
            i += 1
            continue
        return None
    return None


def _run_demo(rest: list[str]) -> int:
    """Hand over to plugin.demo, imported only now: it starts the plugin and may pull in grpc."""
    try:
        demo = importlib.import_module("plugin.demo")
    except ModuleNotFoundError as exc:
        if exc.name != "plugin.demo":
            raise CliError(f"the demo cannot start: {exc}", EXIT_ENVIRONMENT) from exc
        raise CliError("the demo is not part of this installation (no plugin/demo.py)", EXIT_ENVIRONMENT) from exc
    return int(demo.main(rest) or 0)


def _default_source() -> DeviceSource:
    # The same choice as the plugin: udev, else the pyusb fallback.
    from discovery.sources.default import default_source

    return default_source()


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    open_source: Callable[[], DeviceSource] | None = None,
) -> int:
    """Run one CLI command and return its exit code (streams, environment and device source injectable)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    env = os.environ if environ is None else environ
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    demo = _demo_argv(argv)
    try:
        # argparse writes help and usage errors to sys.stdout/sys.stderr: point those at ours
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(demo[0] if demo is not None else argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if demo is not None:
        args.run = lambda _ctx, _args: _run_demo(demo[1])
    if getattr(args, "run", None) is None:
        err.write(f"{PROG}: error: a command is required (see '{PROG} --help')\n")
        return EXIT_USAGE
    from plugin.cli.context import Context  # after parsing: --help and usage errors need none of it
    from plugin.cli.table import Style, color_wanted, ellipsis_for, output_width

    ctx = Context(
        out=out,
        err=err,
        environ=env,
        style=Style(color_wanted(out, args.color, env), ellipsis_for(out)),
        width=output_width(out, env),
        open_source=open_source or _default_source,
    )
    with _CliLogging(err, args.debug):
        try:
            code = int(args.run(ctx, args))
            # Into a pipe stdout is buffered: a reader that left early (`list | head -1`) shows up
            # only here, and must be caught here rather than at interpreter exit (exit 120).
            out.flush()
            return code
        except CliError as exc:
            _flush(out)
            err.write(f"{PROG}: error: {exc}\n")
            return exc.code
        except BrokenPipeError:
            # The reader went away (list | head): say nothing, and end as a Unix tool killed by
            # SIGPIPE does (status 141), so `set -o pipefail` scripts see what they see for cat.
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        except Exception as exc:  # the top of the CLI: one line, unless asked for the traceback
            if args.debug:
                raise
            _flush(out)
            err.write(f"{PROG}: error: internal error: {type(exc).__name__}: {exc} (run with --debug for details)\n")
            return EXIT_FAILED


class _CliLogging:
    """Discovery's log records: hidden in CLI mode (the output says what matters), on stderr with --debug."""

    def __init__(self, stream: TextIO, debug: bool) -> None:
        import logging  # only a command that runs configures it

        self.handler: logging.Handler = logging.StreamHandler(stream) if debug else logging.NullHandler()
        self.debug = debug
        self.level = logging.WARNING

    def __enter__(self) -> None:
        import logging

        root = logging.getLogger()
        self.level = root.level
        root.addHandler(self.handler)
        if self.debug:
            self.handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            root.setLevel(logging.DEBUG)

    def __exit__(self, *exc: object) -> None:
        import logging

        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self.level)


def _flush(stream: TextIO) -> None:
    try:
        stream.flush()
    except (BrokenPipeError, ValueError):
        return


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        return


if __name__ == "__main__":
    sys.exit(main())
