"""Bad input and the environment: one-line errors, documented exit codes, --help, and no grpc in the CLI."""

from __future__ import annotations

import os
import sys

import pytest
from cli_support import ROOT, NoUsbSource, one_line_error, run_cli

from plugin.cli import context as cli_context


class BrokenSource(NoUsbSource):
    """A source with a bug in it: enumerate raises something nobody expects."""

    def enumerate(self) -> list[object]:
        raise ValueError("bug in the adapter")


def test_exit_codes_are_documented() -> None:
    """The codes in --help and docs/cli.md are the constants the CLI returns."""
    assert (cli_context.EXIT_OK, cli_context.EXIT_FAILED, cli_context.EXIT_USAGE, cli_context.EXIT_ENVIRONMENT,
            cli_context.EXIT_BROKEN_PIPE) == (0, 1, 2, 3, 141)
    help_text = run_cli("--help").out
    docs = (ROOT / "docs" / "cli.md").read_text()
    for code in ("0  success", "1  failed", "2  usage error", "3  environment problem", "141  the reader"):
        assert code in help_text
    for row in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 141 |"):
        assert row in docs


@pytest.mark.parametrize("command", ["list", "explain", "validate", "suggest", "watch"])
def test_help_has_examples_and_exit_codes(command: str) -> None:
    """Every subcommand's --help exits 0 with examples and the exit codes."""
    run = run_cli(command, "--help")
    assert run.code == 0 and run.err == ""
    assert "examples:" in run.out and "exit codes:" in run.out and f"nomad-device-usb {command}" in run.out


def test_top_level_help_lists_every_subcommand() -> None:
    """--help names all subcommands, the DEVICE forms and an example per subcommand."""
    out = run_cli("--help").out
    for command in ("list", "explain", "validate", "suggest", "watch", "demo"):
        assert command in out
    assert "VID:PID" in out and "NO_COLOR" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "a command is required"),
        (["lsit"], "invalid choice: 'lsit'"),
        (["explain"], "the following arguments are required: DEVICE"),
        (["validate"], "the following arguments are required: FILE"),
        (["list", "--bogus"], "unrecognized arguments: --bogus"),
        (["--color", "pink", "list"], "invalid choice: 'pink'"),
    ],
    ids=["no-command", "typo", "explain-no-device", "validate-no-file", "unknown-option", "bad-color"],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], needle: str) -> None:
    """argparse problems: one line naming the problem and where help is, exit 2, nothing on stdout."""
    run = run_cli(*args)
    assert (run.code, run.out) == (2, "")
    message = one_line_error(run.err)
    assert needle in message and "--help" in message


@pytest.mark.parametrize("command", [["list"], ["explain", "x"], ["suggest", "x"], ["list", "--json"]])
def test_no_usb_access_is_exit_3(command: list[str]) -> None:
    """No udev and no libusb: one line saying so, exit 3."""
    run = run_cli(*command, open_source=NoUsbSource)
    assert (run.code, run.out) == (3, "")
    assert "no udev" in one_line_error(run.err) and "pyusb has no backend" in run.err


@pytest.mark.skipif(os.path.isdir("/run/udev"), reason="this machine has udev")
def test_watch_without_udev_is_exit_3(monkeypatch: pytest.MonkeyPatch) -> None:
    """watch needs udev events; without udev it says so and exits 3."""
    monkeypatch.delenv("UMOCKDEV_DIR", raising=False)
    run = run_cli("watch")
    assert run.code == 3
    assert "watch needs udev" in one_line_error(run.err)


def test_internal_error_is_one_line_and_debug_shows_it() -> None:
    """An unexpected exception is one line (exit 1); with --debug it propagates with its traceback."""
    run = run_cli("list", open_source=BrokenSource)
    assert run.code == 1
    assert one_line_error(run.err) == "internal error: ValueError: bug in the adapter (run with --debug for details)"
    with pytest.raises(ValueError, match="bug in the adapter"):
        run_cli("--debug", "list", open_source=BrokenSource)


def test_demo_without_module_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """`demo` hands over to plugin.demo; when that module cannot be found it says so (exit 3)."""
    monkeypatch.setitem(sys.modules, "plugin.demo", None)  # makes the import fail as if the file were missing
    run = run_cli("demo", "--fast")
    assert run.code == 3
    assert one_line_error(run.err) == "the demo is not part of this installation (no plugin/demo.py)"


def test_demo_gets_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything after `demo` (options too) goes to plugin.demo.main, whose return is the exit code."""
    import types

    seen: list[list[str]] = []
    fake = types.ModuleType("plugin.demo")
    fake.main = lambda argv: seen.append(argv) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "plugin.demo", fake)
    assert run_cli("--color=never", "demo", "--fast", "x").code == 7
    assert seen == [["--fast", "x"]]


# -- the real executable ------------------------------------------------------------------------------


def test_cli_modules_import_nothing_forbidden() -> None:
    """No plugin/cli/ module imports grpc, the servicers or the server (checked on the source)."""
    from test_architecture import imported_modules, top_level

    for path in sorted((ROOT / "plugin" / "cli").glob("*.py")):
        names = imported_modules(path)
        assert not top_level(names) & {"grpc", "grpc_health", "proto"}, path.name
        assert not names & {"plugin.services", "plugin.server", "plugin.host"}, path.name
