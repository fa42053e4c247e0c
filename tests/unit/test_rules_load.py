"""load_rules: reading the file itself (missing, a directory, unreadable, huge, not UTF-8, empty)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from discovery.rules.errors import RulesError
from discovery.rules.loader import load_rules
from discovery.rules.tree import MAX_BYTES


def load_error(path: str | Path) -> str:
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    (issue,) = caught.value.issues
    assert issue.file == os.fspath(path)
    return issue.message


def test_load_reads_a_valid_file(tmp_path: Path) -> None:
    """A valid file gives its rules, each knowing its source and line."""
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - ignore: true\n  - name: x\n    group: {vendor: v, type: t, name: n}\n")
    rules = load_rules(path)
    assert [(r.source, r.line, r.label) for r in rules.rules] == [
        (str(path), 2, "rules[0]"),
        (str(path), 3, "x"),
    ]


def test_load_missing_file(tmp_path: Path) -> None:
    """A path that does not exist is a RulesError, not an OSError."""
    assert load_error(tmp_path / "nope.yaml") == "no such file"


def test_load_directory(tmp_path: Path) -> None:
    """A directory is refused as such."""
    assert load_error(tmp_path) == "is a directory, not a rules file"


def test_load_fifo_is_not_read(tmp_path: Path) -> None:
    """A FIFO is refused without opening it (opening would block)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert load_error(fifo) == "is not a regular file"


def test_load_unreadable_path(tmp_path: Path) -> None:
    """An OS error on the way to the file is reported with its reason."""
    plain = tmp_path / "plain"
    plain.write_text("x")
    assert load_error(plain / "rules.yaml") == "cannot read: Not a directory"


def test_load_file_over_limit_is_not_parsed(tmp_path: Path) -> None:
    """A file above 1 MiB is refused from its size."""
    path = tmp_path / "big.yaml"
    path.write_bytes(b"rules: []\n" + b"#" * MAX_BYTES)
    assert "limit is 1048576" in load_error(path)


def test_load_not_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 names the line and the byte."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes("rules: []\n# café\n".encode("latin-1"))
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert str(caught.value) == f"{path}:2:6: not UTF-8 text (byte 0xe9)"


@pytest.mark.parametrize("content", [b"", b"\n\n", b"# nothing here\n"], ids=["empty", "blank", "comment"])
def test_load_empty_file_is_an_error(tmp_path: Path, content: bytes) -> None:
    """A file without any YAML document is an error (``rules: []`` is the way to say "none")."""
    path = tmp_path / "empty.yaml"
    path.write_bytes(content)
    assert load_error(path).startswith("empty file")


def test_load_utf8_bom_is_accepted(tmp_path: Path) -> None:
    """A UTF-8 byte order mark at the start is ignored."""
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffrules: []\n".encode())
    assert load_rules(path).rules == ()
