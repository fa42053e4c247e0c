"""Bad input and the environment: one-line errors, documented exit codes, --help, and no grpc in the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import ROOT, RULES, NoUsbSource, run_cli, world  # noqa: F401  (world is a fixture)

from discovery.fake.testbed import Testbed
from plugin.cli import context as cli_context


class BrokenSource(NoUsbSource):
    """A source with a bug in it: enumerate raises something nobody expects."""

    def enumerate(self) -> list[object]:
        raise ValueError("bug in the adapter")


def _one_line_error(run_err: str) -> str:
    assert run_err.count("\n") == 1 and run_err.startswith("nomad-device-usb: error: "), run_err
    assert "Traceback" not in run_err
    return run_err.removeprefix("nomad-device-usb: error: ").rstrip("\n")


def test_exit_codes_are_documented() -> None:
    """The codes in --help and docs/cli.md are the constants the CLI returns."""
    assert (cli_context.EXIT_OK, cli_context.EXIT_FAILED, cli_context.EXIT_USAGE, cli_context.EXIT_ENVIRONMENT) == (
        0, 1, 2, 3)
    help_text = run_cli("--help").out
    docs = (ROOT / "docs" / "cli.md").read_text()
    for code in ("0  success", "1  failed", "2  usage error", "3  environment problem"):
        assert code in help_text
    for row in ("| 0 |", "| 1 |", "| 2 |", "| 3 |"):
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
    message = _one_line_error(run.err)
    assert needle in message and "--help" in message


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda tmp: tmp / "missing.yaml", "missing.yaml: no such file"),
        (lambda tmp: tmp, "is a directory, not a rules file"),
        (lambda tmp: _write(tmp / "b.yaml", b"\x7fELF\x02\x01\x01\x00\xff\xfe"), "not UTF-8 text"),
        (lambda tmp: _write(tmp / "e.yaml", b"rules:\n  - match: {vendor_id: zz}\n    group: {vendor: a}\n"),
         "has 3 errors, the first: "),
    ],
    ids=["missing", "directory", "binary", "errors"],
)
@pytest.mark.parametrize("command", [["list"], ["explain", "0403:6001"], ["suggest", "0403:6001"]])
def test_bad_rules_file_is_one_line_exit_1(  # type: ignore[no-untyped-def]
    world: Testbed, tmp_path: Path, make, needle: str, command: list[str]
) -> None:
    """A rules file that cannot be used stops list/explain/suggest with one line and exit 1."""
    run = run_cli(*command, "--rules", str(make(tmp_path)))
    assert (run.code, run.out) == (1, "")
    assert needle in _one_line_error(run.err)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_rules_with_errors_point_at_validate(world: Testbed, tmp_path: Path) -> None:
    """With several errors the line shows the first and the validate command that lists them all."""
    path = _write(tmp_path / "e.yaml", b"rules:\n  - match: {vendor_id: zz}\n    group: {vendor: a}\n")
    message = _one_line_error(run_cli("list", "--rules", str(path)).err)
    assert message.startswith(f"{path} has 3 errors, the first: {path}:2:")
    assert message.endswith(f"(all of them: nomad-device-usb validate {path})")


@pytest.mark.parametrize("command", [["list"], ["explain", "x"], ["suggest", "x"], ["list", "--json"]])
def test_no_usb_access_is_exit_3(command: list[str]) -> None:
    """No udev and no libusb: one line saying so, exit 3."""
    run = run_cli(*command, open_source=NoUsbSource)
    assert (run.code, run.out) == (3, "")
    assert "no udev" in _one_line_error(run.err) and "pyusb has no backend" in run.err


@pytest.mark.skipif(os.path.isdir("/run/udev"), reason="this machine has udev")
def test_watch_without_udev_is_exit_3(monkeypatch: pytest.MonkeyPatch) -> None:
    """watch needs udev events; without udev it says so and exits 3."""
    monkeypatch.delenv("UMOCKDEV_DIR", raising=False)
    run = run_cli("watch")
    assert run.code == 3
    assert "watch needs udev" in _one_line_error(run.err)


def test_internal_error_is_one_line_and_debug_shows_it() -> None:
    """An unexpected exception is one line (exit 1); with --debug it propagates with its traceback."""
    run = run_cli("list", open_source=BrokenSource)
    assert run.code == 1
    assert _one_line_error(run.err) == "internal error: ValueError: bug in the adapter (run with --debug for details)"
    with pytest.raises(ValueError, match="bug in the adapter"):
        run_cli("--debug", "list", open_source=BrokenSource)


def test_demo_without_module_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """`demo` hands over to plugin.demo; when that module cannot be found it says so (exit 3)."""
    monkeypatch.setitem(sys.modules, "plugin.demo", None)  # makes the import fail as if the file were missing
    run = run_cli("demo", "--fast")
    assert run.code == 3
    assert _one_line_error(run.err) == "the demo is not part of this installation (no plugin/demo.py)"


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


def _run_exe(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "NOMAD_PLUGIN_MAGIC_COOKIE"}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "plugin.main", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)


def test_executable_without_arguments_explains_itself() -> None:
    """No cookie, no arguments: the "this is a Nomad plugin" text pointing at --help, exit 1."""
    done = _run_exe([])
    assert done.returncode == 1 and done.stdout == ""
    assert "Nomad device plugin" in done.stderr and "nomad-device-usb --help" in done.stderr


def test_executable_runs_the_cli_in_a_world(world: Testbed) -> None:
    """`nomad-device-usb list` through plugin.main lists the world's devices, exit 0."""
    done = _run_exe(["list", "--rules", RULES, "--wide"], env=world.env())
    assert done.returncode == 0, done.stderr
    assert "usb-0403-6001-A50285BI" in done.stdout and "ftdi/serial/ft232r" in done.stdout


def test_cli_loads_no_grpc(world: Testbed) -> None:
    """Running list, explain and validate never imports grpc or the plugin's server modules."""
    code = (
        "import sys\n"
        "from plugin.cli.main import main\n"
        f"for args in (['list', '--rules', {RULES!r}], ['explain', '0403:6001'], ['validate', {RULES!r}]):\n"
        "    main(args)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'grpc_health')\n"
        "             or m in ('plugin.server', 'plugin.services', 'proto'))\n"
        "print('LOADED', bad)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **world.env()},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "LOADED []"


def test_cli_modules_import_nothing_forbidden() -> None:
    """No plugin/cli/ module imports grpc, the servicers or the server (checked on the source)."""
    from test_architecture import imported_modules, top_level

    for path in sorted((ROOT / "plugin" / "cli").glob("*.py")):
        names = imported_modules(path)
        assert not top_level(names) & {"grpc", "grpc_health", "proto"}, path.name
        assert not names & {"plugin.services", "plugin.server", "plugin.host"}, path.name


def test_broken_pipe_is_quiet(world: Testbed) -> None:
    """`list | head -1`: the reader leaving early is not an error and prints no traceback."""
    exe = [sys.executable, "-m", "plugin.main", "list", "--json"]
    env = {**os.environ, **world.env()}
    producer = subprocess.Popen(exe, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert producer.stdout is not None
    first = producer.stdout.readline()
    producer.stdout.close()
    _, err = producer.communicate(timeout=60)
    assert first == b"{\n"
    assert producer.returncode in (0, -13) and b"Traceback" not in err
