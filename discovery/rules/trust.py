"""Whether a rules file may be trusted by a plugin running as root: sshd's StrictModes, for rules.

The rules file decides which commands the plugin runs (health checks), and the plugin runs as root
beside the Nomad client. So anyone who can change the file can run commands as root. When the
plugin runs as root, the file is refused unless root owns it and no one else can write it, and the
same holds for the directory it is in (whoever can write there can replace the file).

Symlinks are followed: the file that is finally read and its directory are checked, and so is the
directory holding each symlink on the way (whoever can write there can point the link elsewhere).
For the rules file the directories above are not checked, as sshd checks only up to the home
directory. A sticky, world-writable directory such as /tmp is refused like any other writable one
when it holds the file or a symlink to it.

The same test guards the program of a health or stats command (``discovery.checks.command_trust``),
with ``walk_up``: every directory above is checked too, up to /, since whoever can rename one of
them can put another program in the command's place. There a sticky directory (/tmp) is accepted
above the file's own directory: its sticky bit keeps others from renaming the root-owned entry
below it, which is checked in turn.

Pure reads of file metadata (``os.lstat``/``os.stat``); the caller decides when it applies (root,
and not switched off by the operator) and turns problems into ``RulesError`` (see ``refuse``).
"""

from __future__ import annotations

import os
import pwd
import grp
import stat
from collections.abc import Callable

from discovery.rules.errors import RuleIssue, RulesError

ROOT_UID = 0
_MAX_LINKS = 40  # as the kernel's limit on symlinks followed in one lookup
# The config key that switches the check off, named in every message so the way out is obvious.
SWITCH = "strict_rules_permissions = false"

StatFn = Callable[[str], os.stat_result]


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _group(gid: int) -> str:
    try:
        return f"'{grp.getgrgid(gid).gr_name}'"
    except KeyError:
        return f"gid {gid}"


def _problems_of(path: str, what: str, info: os.stat_result, *, shared_fix: str, above: bool = False) -> list[str]:
    """What is wrong with one file or directory (``what`` names it, path included): owner, other writers.

    ``above``: a directory above the one holding the file, where a sticky bit makes other writers harmless.
    """
    found = []
    if info.st_uid != ROOT_UID:
        found.append(f"{what} is owned by {_user(info.st_uid)}, not root; fix: chown root {path}")
    writers = []
    if info.st_mode & stat.S_IWGRP:
        writers.append(f"its group {_group(info.st_gid)}")
    if info.st_mode & stat.S_IWOTH:
        writers.append("every user")
    sticky = stat.S_ISDIR(info.st_mode) and bool(info.st_mode & stat.S_ISVTX)
    if writers and not (above and sticky):
        if sticky:
            fix = shared_fix  # /tmp and its kind are meant to be shared: the file belongs elsewhere
        else:
            fix = f"chmod go-w {path}"
        found.append(f"{what} is writable by {' and '.join(writers)} (mode {stat.S_IMODE(info.st_mode):04o}); "
                     f"fix: {fix}")
    return found


def _links_on_the_way(path: str, lstat: StatFn) -> tuple[list[str], str]:
    """(the symlinks followed from ``path`` to the file, the file's real path)."""
    links: list[str] = []
    current = os.path.abspath(path)
    for _ in range(_MAX_LINKS):
        try:
            if not stat.S_ISLNK(lstat(current).st_mode):
                break
        except OSError:
            break
        links.append(current)
        target = os.readlink(current)
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
    return links, os.path.realpath(path)


def _above(directory: str) -> list[str]:
    """Every directory above ``directory`` (absolute), its parent first, / last."""
    found = []
    while (parent := os.path.dirname(directory)) != directory:
        found.append(parent)
        directory = parent
    return found


def untrusted_reasons(
    path: str,
    *,
    what: str = "the rules file",
    home: str = "/etc/nomad.d",
    walk_up: bool = False,
    stat_fn: StatFn = os.stat,
    lstat_fn: StatFn = os.lstat,
) -> list[str]:
    """Why a root plugin must not read ``path`` (empty when it may). A missing file has no reasons:
    the loader reports it ("no such file").

    ``what`` names the file in the reasons, ``home`` is where a file found in a shared directory
    belongs. ``walk_up`` checks every directory above the file's (and above each symlink's) too,
    both as written and as resolved, sticky ones accepted (see the module's docstring).
    """
    links, real = _links_on_the_way(path, lstat_fn)
    directory = os.path.dirname(real)
    checks = [(real, f"{what} {real}", False), (directory, f"its directory {directory}", False)]
    for link in links:
        holder = os.path.dirname(link)
        checks.append((holder, f"the directory {holder} (it holds the symlink {link})", False))
    if walk_up:
        holders = [directory] + [os.path.dirname(link) for link in links]
        for holder in holders:
            for upper in [*_above(holder), *_above(os.path.realpath(holder))]:
                checks.append((upper, f"the directory {upper} above it", True))
    shared_fix = f"keep the {what.removeprefix('the ')} (and any symlink to it) in a directory only root can write, " \
                 f"such as {home}"
    reasons: list[str] = []
    looked: set[str] = set()
    seen: set[tuple[int, int]] = set()  # (device, inode): /bin and /usr/bin are one directory on merged-/usr
    for target, label, above in checks:
        if target in looked:
            continue
        looked.add(target)
        try:
            info = stat_fn(target)
        except OSError:
            continue  # gone: the loader says so for the file; a vanished directory takes the file with it
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        reasons.extend(_problems_of(target, label, info, shared_fix=shared_fix, above=above))
    return reasons


def refuse(path: str, reasons: list[str]) -> RulesError:
    """The RulesError a root plugin raises for a rules file anyone but root could change."""
    issues = [
        RuleIssue(path, None, None, "", f"refused: the plugin runs as root and runs this file's health commands, "
                  f"so only root may be able to change it: {reason} (or set {SWITCH} in the plugin config "
                  "to accept it)")
        for reason in reasons
    ]
    return RulesError(issues)


def check_trusted(path: str, *, euid: int | None = None) -> None:
    """Raise RulesError when the process runs as root and ``path`` is not a file only root can change."""
    if (os.geteuid() if euid is None else euid) != ROOT_UID:
        return
    reasons = untrusted_reasons(path)
    if reasons:
        raise refuse(path, reasons)
