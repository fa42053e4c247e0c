"""`validate FILE`: errors with line and column (exit 1), warnings against attached devices (exit 0)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pytest_mock import MockerFixture
from cli_support import RULES, NoUsbSource, golden, run_cli, world  # noqa: F401  (world is a fixture)

from discovery.fake.testbed import Testbed

BROKEN = """\
rules:
  - name: typos
    match: {vendor_id: zz12, serail: A5}
    group: {vendor: a/b, type: serial, name: x}
  - match: {vendor_id: 0403}
    group: {vendor: ftdi, type: serial, name: "{serial"}
    permissions: rwx
"""


def test_validate_warnings_match_golden(world: Testbed) -> None:
    """A valid file: shadowed rule, placeholder typo and a rule that matches nothing attached are warnings, exit 0."""
    run = run_cli("validate", RULES)
    assert (run.code, run.err) == (0, "")
    golden("validate.txt", run.out)


def test_validate_json_matches_golden(world: Testbed) -> None:
    """--json: valid, the rule count, the attached-device count and each warning with line and column."""
    run = run_cli("validate", RULES, "--json")
    assert run.code == 0
    golden("validate.json", run.out)


def test_validate_errors_match_golden(world: Testbed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every error of a broken file, one per line with line, column and field, then a count; exit 1."""
    monkeypatch.chdir(tmp_path)
    Path("broken.yaml").write_text(BROKEN)
    run = run_cli("validate", "broken.yaml")
    assert (run.code, run.err) == (1, "")
    golden("validate-errors.txt", run.out)
    as_json = json.loads(run_cli("validate", "broken.yaml", "--json").out)
    assert (as_json["valid"], len(as_json["errors"])) == (False, 5)
    assert as_json["errors"][0] == {"file": "broken.yaml", "line": 3, "column": 24, "field": "rules[0].match.vendor_id",
                                    "message": '"zz12" is not a hex USB id'}


def test_validate_strict_fails_on_warnings(world: Testbed) -> None:
    """--strict turns warnings into exit 1."""
    assert run_cli("validate", "--strict", RULES).code == 1


def test_validate_clean_file_is_ok_even_strict(world: Testbed, tmp_path: Path) -> None:
    """A file whose every rule takes an attached device and wins: no warnings, exit 0 with --strict."""
    clean = tmp_path / "clean.yaml"
    clean.write_text("rules:\n  - match: {vendor_id: 0403}\n    group: {vendor: ftdi, type: serial, name: any}\n")
    run = run_cli("validate", "--strict", str(clean))
    assert run.code == 0
    assert run.out == f"{clean}: valid, 1 rule (checked against 11 attached devices)\n"


def test_validate_no_devices_skips_device_warnings(world: Testbed) -> None:
    """--no-devices keeps the file's own warnings and drops "matches none of the attached devices"."""
    out = run_cli("validate", "--no-devices", RULES).out
    assert "can never win" in out and "did you mean {port}" in out
    assert "matches none" not in out
    assert out.splitlines()[-1] == f"{RULES}: valid, 10 rules, 2 warnings (not checked against devices)"


def test_validate_group_disagreement_is_a_warning(world: Testbed, tmp_path: Path) -> None:
    """Devices of one group that would give it different attributes are a group collision warning."""
    rules = tmp_path / "collide.yaml"
    rules.write_text(
        "rules:\n"
        "  - match: {subsystem: tty}\n"
        "    group: {vendor: usb, type: serial, name: all}\n"
        "    attributes: {model: \"{product_id}\"}\n"
    )
    run = run_cli("validate", str(rules))
    assert run.code == 0
    assert "group usb/serial/all gets different attributes from its devices" in run.out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("dir", "is a directory, not a rules file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text (byte 0x89)"),
        (b"", "empty file"),
    ],
    ids=["missing", "directory", "binary", "empty"],
)
def test_validate_unreadable_file_is_one_line(world: Testbed, tmp_path: Path, content: bytes | str | None,
                                              message: str) -> None:
    """A missing file, a directory, a binary or an empty file: one line on stderr, nothing on stdout, exit 1."""
    path = tmp_path / "rules.yaml"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    run = run_cli("validate", str(path))
    assert (run.code, run.out) == (1, "")
    assert run.err.startswith(f"nomad-device-usb: error: {path}") and message in run.err
    assert run.err.count("\n") == 1 and "Traceback" not in run.err


def test_validate_without_usb_access_still_checks_the_file(world: Testbed) -> None:
    """Where USB cannot be listed (exit 3 elsewhere), validate checks the file alone and says so."""
    run = run_cli("validate", RULES, open_source=NoUsbSource)
    assert run.code == 0
    assert "checking the file without devices" in run.err
    assert run.out.splitlines()[-1].endswith("(not checked against devices)")


def test_validate_refuses_a_yaml_tag_on_the_rules_list(world: Testbed, tmp_path: Path) -> None:
    """`rules: !!python/object/apply:os.system []` is an error at its line and column, not "valid, 0 rules"."""
    path = tmp_path / "tagged.yaml"
    path.write_text("rules: !!python/object/apply:os.system []\n")
    run = run_cli("validate", str(path))
    assert run.code == 1
    assert run.out.splitlines() == [
        f'{path}:1:8: error: YAML tag "!!python/object/apply:os.system" is not accepted: rules are plain YAML '
        "(remove the tag)",
        f"{path}: invalid, 1 error",
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="the check applies to a plugin running as root")
def test_validate_as_root_refuses_a_file_others_can_write(world: Testbed, tmp_path: Path) -> None:
    """Run as root, validate refuses a mode-0666 rules file as the plugin would: one line saying why, exit 1."""
    path = tmp_path / "rules.yaml"
    path.write_text("rules: []\n")
    path.chmod(0o666)
    run = run_cli("validate", str(path))
    assert (run.code, run.out) == (1, "")
    assert run.err.startswith(f"nomad-device-usb: error: {path}: refused: the plugin runs as root")
    assert f"fix: chmod go-w {path}" in run.err and run.err.count("\n") == 1


def test_validate_as_another_user_notes_what_a_root_plugin_would_refuse(
    world: Testbed, tmp_path: Path, mocker: MockerFixture
) -> None:
    """Run as a user, the same finding is a note on stderr and the file still validates (exit 0)."""
    mocker.patch("plugin.cli.validate.os.geteuid", return_value=1000)
    path = tmp_path / "rules.yaml"
    path.write_text("rules: []\n")
    path.chmod(0o666)
    run = run_cli("validate", "--no-devices", str(path))
    assert run.code == 0 and run.out.endswith("valid, 0 rules (not checked against devices)\n")
    assert "note: a plugin running as root would refuse this file: the rules file" in run.err


COMMANDS = """\
rules:
  - match: {{vendor_id: 18d1}}
    group: {{vendor: google, type: phone, name: pixel}}
    health: {{command: ["{script}", "{{serial}}"]}}
  - match: {{vendor_id: "0403"}}
    group: {{vendor: ftdi, type: serial, name: any}}
    health: {{command: ["sh", "-c", "exit 0"]}}
    stats: {{command: ["{shared}/readings"]}}
"""


def write_commands(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A rules file (0644) whose first rule's health script is 0777 and whose second's stats program lies in a 0777
    directory; its health command (sh, root's) is fine."""
    script = tmp_path / "check.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o777)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "readings").write_text("#!/bin/sh\necho '{}'\n")
    (shared / "readings").chmod(0o755)
    shared.chmod(0o777)
    path = tmp_path / "rules.yaml"
    path.write_text(COMMANDS.format(script=script, shared=shared))
    return path, script, shared


@pytest.mark.skipif(os.geteuid() != 0, reason="the check applies to a plugin running as root")
def test_validate_as_root_refuses_commands_others_can_change(world: Testbed, tmp_path: Path) -> None:
    """Run as root: a health or stats program users other than root could change is an error at its rule's line."""
    path, script, shared = write_commands(tmp_path)
    run = run_cli("validate", "--no-devices", str(path))
    assert run.code == 1 and run.err == ""
    assert run.out.splitlines() == [
        f"{path}:2:5: error: rules[0].health.command: health check not run: the plugin runs it as root, so only root "
        f"may be able to change its program: the health command {script} is writable by its group 'root' and every "
        f"user (mode 0777); fix: chmod go-w {script} (or set strict_rules_permissions = false in the plugin config "
        "to accept it)",
        f"{path}:5:5: error: rules[1].stats.command: stats command not run: the plugin runs it as root, so only root "
        f"may be able to change its program: its directory {shared} is writable by its group 'root' and every user "
        f"(mode 0777); fix: chmod go-w {shared} (or set strict_rules_permissions = false in the plugin config to "
        "accept it)",
        f"{path}: invalid, 2 errors",
    ]
    script.chmod(0o755)
    shared.chmod(0o755)
    run = run_cli("validate", "--no-devices", str(path))
    assert (run.code, run.err) == (0, "") and run.out.endswith("valid, 2 rules (not checked against devices)\n")


def test_validate_as_another_user_notes_commands_a_root_plugin_would_not_run(
    world: Testbed, tmp_path: Path, mocker: MockerFixture
) -> None:
    """Run as a user, an untrusted command program is a note on stderr, and the file still validates (exit 0)."""
    mocker.patch("plugin.cli.validate.os.geteuid", return_value=1000)
    path, script, _ = write_commands(tmp_path)
    run = run_cli("validate", "--no-devices", str(path))
    assert run.code == 0 and run.out.endswith("valid, 2 rules (not checked against devices)\n")
    assert f"note: a plugin running as root would not run rules[0].health.command: the health command {script} is " \
           "writable by" in run.err


def test_validate_checks_udev_rules_against_the_devices_outside_usb(world: Testbed, tmp_path: Path) -> None:
    """A kind: udev rule is judged against the attached devices of the subsystems it names, as the plugin
    would list them: the Pi's UART rule matches, one for a platform that is not there is a warning."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - name: pi uart\n    kind: udev\n    match: {subsystem: tty, platform: fe201000.serial}\n"
        "    group: {vendor: raspberrypi, type: serial, name: pl011}\n"
        "  - name: a uart that is not there\n    kind: udev\n    match: {subsystem: tty, platform: ff000000.serial}\n"
        "    group: {vendor: other, type: serial, name: uart}\n"
    )
    run = run_cli("validate", str(rules))
    assert run.code == 0, run.err
    warnings = [line for line in run.out.splitlines() if ": warning: " in line]
    assert len(warnings) == 1  # the Pi's UART rule matches ttyAMA0; the PCI card's two ports are the others
    assert warnings[0].endswith(":6:5: warning: rules[1]: matches none of the 3 attached kind: udev devices")
