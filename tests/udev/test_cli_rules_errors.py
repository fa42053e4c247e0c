"""A rules file that cannot be used stops list, explain and suggest with one line and exit 1 (in a world)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import one_line_error, run_cli, world  # noqa: F401  (world is a fixture)

from discovery.fake.testbed import Testbed


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
    assert needle in one_line_error(run.err)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_rules_with_errors_point_at_validate(world: Testbed, tmp_path: Path) -> None:
    """With several errors the line shows the first and the validate command that lists them all."""
    path = _write(tmp_path / "e.yaml", b"rules:\n  - match: {vendor_id: zz}\n    group: {vendor: a}\n")
    message = one_line_error(run_cli("list", "--rules", str(path)).err)
    assert message.startswith(f"{path} has 3 errors, the first: {path}:2:")
    assert message.endswith(f"(all of them: nomad-device-usb validate {path})")
