"""The CLI as the real executable: without arguments, in a world, without grpc, into a closed pipe, on a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from cli_support import ROOT, RULES, world  # noqa: F401  (world is a fixture)

from discovery.fake.testbed import Testbed

# One CLI run takes about 0.5 s (interpreter start and imports included); under a loaded 2-core
# machine a few seconds. A hang fails here, quickly, instead of at a far-off default.
CLI_DEADLINE_S = 20.0


def _run_exe(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "NOMAD_PLUGIN_MAGIC_COOKIE"}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "plugin.main", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=CLI_DEADLINE_S)


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
                          capture_output=True, text=True, timeout=CLI_DEADLINE_S)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "LOADED []"


def test_help_loads_only_the_parser() -> None:
    """`--help` through the entry point imports argparse and the exit codes: no discovery, logging or dataclasses."""
    code = (
        "import sys\n"
        "from plugin.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "ours = sorted(m for m in sys.modules if m.split('.')[0] in ('plugin', 'discovery', 'proto'))\n"
        "heavy = sorted(m for m in ('logging', 'dataclasses', 'json', 'grpc') if m in sys.modules)\n"
        "print('LOADED', ours, heavy)\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "NOMAD_PLUGIN_MAGIC_COOKIE"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage: nomad-device-usb" in done.stdout
    assert done.stdout.splitlines()[-1] == (
        "LOADED ['plugin', 'plugin.cli', 'plugin.cli.errors', 'plugin.cli.main', 'plugin.cookie', 'plugin.main'] []")


def _minimal_env(world: Testbed, **extra: str) -> dict[str, str]:
    """What `env -i PATH=... HOME=... LANG=C.UTF-8` leaves, plus the world: nothing this machine happens to set."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8", **world.env(), **extra}


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered-stdout", "unbuffered-stdout"])
@pytest.mark.parametrize("args", [["list"], ["list", "--json"]], ids=["small-output", "large-output"])
def test_broken_pipe_is_quiet(world: Testbed, args: list[str], unbuffered: bool) -> None:
    """`list | head`: a reader that left is no error: nothing on stderr, status 141 as for any tool SIGPIPE stops."""
    # Buffered, the small table is written only at the end and the large JSON already while it runs.
    extra = {"PYTHONUNBUFFERED": "1"} if unbuffered else {}
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before the first write: the pipe is broken for certain
    try:
        producer = subprocess.Popen([sys.executable, "-m", "plugin.main", *args], cwd=ROOT,
                                    env=_minimal_env(world, **extra), stdout=writer, stderr=subprocess.PIPE)
    finally:
        os.close(writer)
    _, err = producer.communicate(timeout=CLI_DEADLINE_S)
    assert (producer.returncode, err) == (141, b"")


def test_reader_leaving_after_the_first_line_is_quiet(world: Testbed) -> None:
    """`list --json | head -1`, stdout buffered: the first line arrives, then a quiet end (0 or 141, no traceback)."""
    producer = subprocess.Popen([sys.executable, "-m", "plugin.main", "list", "--json"], cwd=ROOT,
                                env=_minimal_env(world), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert producer.stdout is not None
    first = producer.stdout.readline()
    producer.stdout.close()
    _, err = producer.communicate(timeout=CLI_DEADLINE_S)
    assert first == b"{\n"
    # 0 when everything fit in the pipe before the reader left, 141 when a later write found it gone
    assert producer.returncode in (0, 141) and err == b""


def _list_on_a_terminal(world: Testbed, extra_env: dict[str, str], columns: int) -> str:
    """`list` run as a subprocess whose stdout is a terminal `columns` wide."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR", "TERM")}
    env.update(world.env(), TERM="xterm", **extra_env)
    proc = subprocess.Popen([sys.executable, "-m", "plugin.main", "list", "--rules", RULES], cwd=ROOT, env=env,
                            stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the follower side is closed, the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    _, err = proc.communicate(timeout=CLI_DEADLINE_S)
    assert proc.returncode == 0, err
    return b"".join(chunks).decode("utf-8").replace("\r\n", "\n")


def test_terminal_gets_colour_and_its_own_width(world: Testbed) -> None:
    """On a 90-column terminal: coloured output, and no line wider than 90 visible characters."""
    out = _list_on_a_terminal(world, {}, 90)
    assert "\x1b[" in out
    visible = [line for line in out.split("\n\n")[0].splitlines()]
    plain = [line.replace("\x1b[0m", "").replace("\x1b[1m", "").replace("\x1b[2m", "").replace("\x1b[33m", "")
             for line in visible]
    assert max(len(line) for line in plain) <= 90


def test_no_color_is_honoured_on_a_terminal(world: Testbed) -> None:
    """NO_COLOR=1 keeps escape codes out even on a terminal."""
    out = _list_on_a_terminal(world, {"NO_COLOR": "1"}, 120)
    assert "\x1b[" not in out and "ftdi/serial/ft232r" in out
