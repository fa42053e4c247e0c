"""As root, a health or stats command whose program (or a directory above it) others could change is not run."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from discovery.checks.command_trust import find_program, untrusted_program
from discovery.checks.health import run_check
from discovery.checks.stats_command import run_stats_command

NOBODY = 65534
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the check applies, and files change owner, only as root")

SCRIPT = '#!/bin/sh\ntouch "$0.ran"\nprintf \'{"temp": 41.5}\\n\'\n'


def make_script(directory: Path, name: str = "check.sh", mode: int = 0o755, dir_mode: int = 0o755) -> Path:
    """A script that leaves ``<script>.ran`` beside itself when it runs, and prints one reading."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(dir_mode)
    path = directory / name
    path.write_text(SCRIPT)
    path.chmod(mode)
    return path


def reasons_of(program: str | Path, path_env: str = "/usr/bin:/bin") -> list[str]:
    return untrusted_program(str(program), {"PATH": path_env}, "health command", euid=0)


def user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def test_command_trust_root_script_0755_in_root_directories_is_run(tmp_path: Path) -> None:
    """root's 0755 script in root's 0755 directories under pytest's 0700 ones and sticky /tmp: nothing to say."""
    assert reasons_of(make_script(tmp_path / "opt" / "bin")) == []
    assert reasons_of("sh") == [] and reasons_of("/usr/bin/env") == []


@pytest.mark.parametrize(
    ("mode", "dir_mode", "expected"),
    [
        (0o777, 0o755, "the health command {script} is writable by its group 'root' and every user (mode 0777); "
                       "fix: chmod go-w {script}"),
        (0o775, 0o755, "the health command {script} is writable by its group 'root' (mode 0775); "
                       "fix: chmod go-w {script}"),
        (0o755, 0o777, "its directory {dir} is writable by its group 'root' and every user (mode 0777); "
                       "fix: chmod go-w {dir}"),
        (0o755, 0o1777, "its directory {dir} is writable by its group 'root' and every user (mode 1777); "
                        "fix: keep the health command (and any symlink to it) in a directory only root can write, "
                        "such as /usr/local/bin"),
    ],
    ids=["world-writable-script", "group-writable-script", "world-writable-directory", "sticky-directory"],
)
def test_command_trust_writable_script_or_directory_is_named_with_its_fix(
    tmp_path: Path, mode: int, dir_mode: int, expected: str
) -> None:
    """Group or other write bits on the program or the directory holding it: one reason, saying what to run."""
    script = make_script(tmp_path / "bin", mode=mode, dir_mode=dir_mode)
    assert reasons_of(script) == [expected.format(script=script, dir=script.parent)]


def test_command_trust_script_owned_by_another_user_is_named(tmp_path: Path) -> None:
    """A 0755 script nobody owns can be changed by nobody: refused, with the chown to run."""
    script = make_script(tmp_path / "bin")
    os.chown(script, NOBODY, -1)
    assert reasons_of(script) == [f"the health command {script} is owned by {user(NOBODY)}, not root; "
                                  f"fix: chown root {script}"]


def test_command_trust_every_directory_above_is_checked_sticky_ones_accepted(tmp_path: Path) -> None:
    """A writable directory two levels up can swap the program's directory: refused; a sticky one (/tmp) cannot."""
    script = make_script(tmp_path / "opt" / "tool" / "bin")
    (tmp_path / "opt").chmod(0o777)
    assert reasons_of(script) == [f"the directory {tmp_path / 'opt'} above it is writable by its group 'root' "
                                  f"and every user (mode 0777); fix: chmod go-w {tmp_path / 'opt'}"]
    (tmp_path / "opt").chmod(0o1777)  # others may write, but not rename root's tool/ inside it
    assert reasons_of(script) == []
    os.chown(tmp_path / "opt" / "tool", NOBODY, -1)  # ... unless tool/ is theirs
    assert reasons_of(script) == [f"the directory {tmp_path / 'opt' / 'tool'} above it is owned by {user(NOBODY)}, "
                                  f"not root; fix: chown root {tmp_path / 'opt' / 'tool'}"]


def test_command_trust_bare_name_is_found_on_the_path_as_the_run_finds_it(tmp_path: Path) -> None:
    """A bare name is judged where PATH leads: the first executable file (a non-executable one is skipped)."""
    first = make_script(tmp_path / "first", name="probe", mode=0o644)  # not executable: exec skips it
    second = make_script(tmp_path / "second", name="probe", mode=0o777)
    path_env = f"{first.parent}:{second.parent}:/usr/bin"
    assert find_program("probe", {"PATH": path_env}) == str(second)
    assert reasons_of("probe", path_env) == [f"the health command {second} is writable by its group 'root' and "
                                             f"every user (mode 0777); fix: chmod go-w {second}"]
    first.chmod(0o755)
    assert find_program("probe", {"PATH": path_env}) == str(first) and reasons_of("probe", path_env) == []


def test_command_trust_symlink_is_followed_and_its_directory_checked(tmp_path: Path) -> None:
    """A link to /usr/bin/true is judged by its target and by the directory holding the link."""
    links = tmp_path / "links"
    links.mkdir()
    links.chmod(0o777)
    link = links / "probe"
    link.symlink_to("/usr/bin/true")
    assert [r.split(" is ")[0] for r in reasons_of(link)] == [f"the directory {links} (it holds the symlink {link})"]
    links.chmod(0o755)
    assert reasons_of(link) == []


def test_command_trust_missing_program_or_another_user_is_left_alone(tmp_path: Path) -> None:
    """A program that is not there fails to start as before; a plugin not running as root does not check."""
    assert reasons_of(tmp_path / "missing.sh") == [] and reasons_of("no-such-program-here") == []
    script = make_script(tmp_path / "bin", mode=0o777)
    assert untrusted_program(str(script), {"PATH": "/usr/bin"}, "health command", euid=1000) == []


def test_run_check_refuses_a_world_writable_script_without_running_it(tmp_path: Path) -> None:
    """0777: unhealthy, saying why and how to fix it, and the script never ran; strict=False runs it."""
    script = make_script(tmp_path / "bin", mode=0o777)
    result = run_check([str(script)], 10.0)
    assert not result.ok and result.exit_code is None
    assert result.detail.startswith("health check not run: the plugin runs it as root, so only root may be able "
                                    f"to change its program: the health command {script} is writable by")
    assert f"fix: chmod go-w {script}" in result.detail and "strict_rules_permissions = false" in result.detail
    assert not Path(f"{script}.ran").exists()
    assert run_check([str(script)], 10.0, strict=False).ok and Path(f"{script}.ran").exists()


def test_run_stats_command_refuses_a_script_in_a_world_writable_directory(tmp_path: Path) -> None:
    """No readings and a problem per reason (its kind holds the reason: logged once per device and reason)."""
    script = make_script(tmp_path / "bin", dir_mode=0o777)
    result = run_stats_command([str(script)], 10.0)
    assert result.readings == {} and result.error is not None
    assert result.error.message.startswith("stats command not run: the plugin runs it as root")
    assert f"its directory {script.parent} is writable" in result.error.message
    assert result.error.kind == f"untrusted:{result.error.message}"
    assert not Path(f"{script}.ran").exists()
    script.parent.chmod(0o755)
    assert run_stats_command([str(script)], 10.0).error is None and Path(f"{script}.ran").exists()
