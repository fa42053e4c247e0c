"""Whether a plugin running as root may run a rule's command: the rules file's trust test, on its program.

A health or stats command runs as root beside the Nomad client, so whoever can change its program
(the file ``exec`` runs for argv[0]) can run code as root, as whoever can change the rules file
could. So before every run, as root and unless the operator switched the check off, the program is
found as the run will find it (``find_program``) and judged by ``discovery.rules.trust`` with
``walk_up``: root must own it, and no one else may write it, its directory, or any directory above
(a sticky one such as /tmp is fine above the program's own directory). A program that is not found
is left to the run, which says it "could not start". Only the program is checked: a script given to
an interpreter (``[/bin/sh, /home/u/x.sh]``) is an argument like any other, and is not.

One ``stat`` walk per run (a few system calls): cheap beside the fork and exec it guards.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from discovery.rules.trust import ROOT_UID, SWITCH, untrusted_reasons

# Where a program found in a shared directory (/tmp) belongs instead.
PROGRAMS_HOME = "/usr/local/bin"


def find_program(program: str, env: Mapping[str, str]) -> str | None:
    """The file a run of ``program`` executes, as ``subprocess`` finds it; None when there is none.

    A name with a slash is taken as it is (relative to the current directory); a bare name is looked
    for in each directory of ``env``'s PATH (the default path without one), and the first executable
    file found is the one run: the order in which ``subprocess`` tries them.
    """
    if os.path.dirname(program):
        candidates = [program]
    else:
        candidates = [os.path.join(directory, program) for directory in os.get_exec_path(dict(env))]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


class UntrustedProgram(Exception):
    """A command not started: as root, its program is not root's alone (``reasons`` say why)."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = list(reasons)


def untrusted_program(program: str, env: Mapping[str, str], what: str, *, euid: int | None = None) -> list[str]:
    """Why a plugin running as root must not run ``program`` (``what`` names it: "health command");
    empty when it may, when it is not found, and when the plugin does not run as root."""
    if (os.geteuid() if euid is None else euid) != ROOT_UID:
        return []
    found = find_program(program, env)
    return untrusted_found(found, what, euid=ROOT_UID) if found is not None else []


def untrusted_found(found: str, what: str, *, euid: int | None = None) -> list[str]:
    """``untrusted_program`` for a program already found (``find_program``): the one lookup a run makes."""
    if (os.geteuid() if euid is None else euid) != ROOT_UID:
        return []
    return untrusted_reasons(found, what=f"the {what}", home=PROGRAMS_HOME, walk_up=True)


def refusal(what: str, reasons: Sequence[str]) -> str:
    """The reason a refused command gives (a device's health reason, a stats problem): why, and what to run."""
    return (f"{what} not run: the plugin runs it as root, so only root may be able to change its program: "
            f"{'; '.join(reasons)} (or set {SWITCH} in the plugin config to accept it)")
