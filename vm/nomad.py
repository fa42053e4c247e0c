"""Host side: find the Nomad binary for the VM tier's Nomad scenario, and put it into a guest's 9p share.

The binary is never part of the project: an operator builds or downloads it by hand and names it
with $NOMAD_BIN, leaves it at ``~/.cache/nomad-peer/bin/nomad``, or puts it on PATH. Without one the scenario is
skipped, and ``find_nomad`` says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vm.machine import Guest

NOMAD_ENV = "NOMAD_BIN"
DEFAULT_BINARY = Path.home() / ".cache" / "nomad-peer" / "bin" / "nomad"
SHARE_DIR = "nomad"  # under the share: /mnt/host/nomad/nomad in the guest
GUEST_SHARE = "/mnt/host"


@dataclass(frozen=True)
class NomadBinary:
    """A Nomad binary on the host, or why there is none (``path`` is None then)."""

    path: Path | None
    reason: str
    version: str = ""


def find_nomad() -> NomadBinary:
    """$NOMAD_BIN if set, else the cache path, else ``nomad`` on PATH; its version line, or why none can be used.

    The one lookup for every tier that runs Nomad (the VM tier here, the Nomad tier in tests/nomad).
    """
    configured = os.environ.get(NOMAD_ENV)
    on_path = shutil.which("nomad")
    if configured:
        path, source = Path(configured), f"${NOMAD_ENV}"
    elif not DEFAULT_BINARY.exists() and on_path:
        path, source = Path(on_path), "PATH"
    else:
        path, source = DEFAULT_BINARY, f"{DEFAULT_BINARY} (set ${NOMAD_ENV} to use another, or put nomad on PATH)"
    if not path.is_file():
        return NomadBinary(None, f"no Nomad binary at {path}, from {source}")
    if not os.access(path, os.X_OK):
        return NomadBinary(None, f"the Nomad binary {path}, from {source}, is not executable")
    proc = subprocess.run([str(path), "version"], capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0 or not proc.stdout.startswith("Nomad v"):
        return NomadBinary(None, f"{path} version exited {proc.returncode}: {(proc.stdout + proc.stderr).strip()}")
    return NomadBinary(path, "", proc.stdout.splitlines()[0])


def agent_log(guest: Guest) -> tuple[Path, str]:
    """Where the guest's agent log goes in the share: the host's path and the guest's."""
    return guest.share / SHARE_DIR / "agent.log", f"{GUEST_SHARE}/{SHARE_DIR}/agent.log"


def stage_nomad(guest: Guest, binary: Path) -> str:
    """Copy the binary into the guest's 9p share; its path in the guest."""
    target = guest.share / SHARE_DIR / "nomad"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, target)
    return f"{GUEST_SHARE}/{SHARE_DIR}/nomad"
