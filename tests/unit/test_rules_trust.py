"""Trusted rules files: as root, a rules file (or its directory) that anyone but root could change is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from discovery.rules.errors import RulesError
from discovery.rules.trust import check_trusted, untrusted_reasons

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")


def make_rules(directory: Path, name: str = "rules.yaml", mode: int = 0o644, dir_mode: int = 0o755) -> Path:
    directory.mkdir(exist_ok=True)
    directory.chmod(dir_mode)
    path = directory / name
    path.write_text("rules: []\n")
    path.chmod(mode)
    return path


def test_trust_root_owned_file_in_root_owned_directory_is_trusted(tmp_path: Path) -> None:
    """0644 in a 0755 directory, both the caller's (root's, in CI): nothing to say."""
    path = make_rules(tmp_path / "etc")
    if os.geteuid() == 0:
        assert untrusted_reasons(str(path)) == []


@pytest.mark.parametrize(
    ("mode", "dir_mode", "expected"),
    [
        (0o664, 0o755, "the rules file {file} is writable by its group"),
        (0o646, 0o755, "the rules file {file} is writable by every user (mode 0646); fix: chmod go-w {file}"),
        (0o644, 0o775, "its directory {dir} is writable by its group"),
        (0o644, 0o777, "its directory {dir} is writable by its group 'root' and every user (mode 0777)"),
        (0o644, 0o1777, "(mode 1777); fix: keep the rules file (and any symlink to it) in a directory only root can"),
    ],
    ids=["group-writable-file", "world-writable-file", "group-writable-dir", "world-writable-dir", "sticky-dir"],
)
@needs_root
def test_trust_writable_file_or_directory_is_named_with_its_fix(
    tmp_path: Path, mode: int, dir_mode: int, expected: str
) -> None:
    """Group or other write bits on the file or its directory: one reason each, saying what to run."""
    path = make_rules(tmp_path / "etc", mode=mode, dir_mode=dir_mode)
    reasons = untrusted_reasons(str(path))
    assert len(reasons) == 1
    assert expected.format(file=path, dir=path.parent) in reasons[0]


@needs_root
def test_trust_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    """A file another user owns (even 0644) can be changed by that user: refused, with the chown to run."""
    path = make_rules(tmp_path / "etc")
    os.chown(path, NOBODY, -1)
    assert untrusted_reasons(str(path)) == [
        f"the rules file {path} is owned by {_name(NOBODY)}, not root; fix: chown root {path}"
    ]


@needs_root
def test_trust_symlink_checks_its_target_and_both_directories(tmp_path: Path) -> None:
    """A symlink is followed: its target and the target's directory are checked, and the link's own directory."""
    target = make_rules(tmp_path / "managed")
    links = tmp_path / "etc"
    links.mkdir(mode=0o777)
    links.chmod(0o777)
    link = links / "rules.yaml"
    link.symlink_to(target)
    reasons = untrusted_reasons(str(link))
    assert [r.split(" is ")[0] for r in reasons] == [f"the directory {links} (it holds the symlink {link})"]
    links.chmod(0o755)
    (tmp_path / "managed").chmod(0o777)
    assert [r.split(" is ")[0] for r in untrusted_reasons(str(link))] == [f"its directory {tmp_path / 'managed'}"]


def test_trust_missing_file_is_left_to_the_loader(tmp_path: Path) -> None:
    """A file that is not there has no ownership to judge; the loader says "no such file"."""
    assert untrusted_reasons(str(tmp_path / "missing.yaml")) == []


@needs_root
def test_trust_check_refuses_only_as_root(tmp_path: Path) -> None:
    """check_trusted raises a RulesError naming the file and the switch as root, and nothing otherwise."""
    path = make_rules(tmp_path / "etc", mode=0o666)
    with pytest.raises(RulesError) as caught:
        check_trusted(str(path), euid=0)
    (issue,) = caught.value.issues
    assert issue.file == str(path) and issue.line is None
    assert issue.message.startswith("refused: the plugin runs as root and runs this file's health commands")
    assert issue.message.endswith("(or set strict_rules_permissions = false in the plugin config to accept it)")
    check_trusted(str(path), euid=1000)


def _name(uid: int) -> str:
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
