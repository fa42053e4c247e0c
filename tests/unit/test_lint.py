"""The code passes the linters the project pins (ruff for defects, mypy for types) as configured in pyproject."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# ruff takes under a second, mypy about 5 s without its cache: a hang fails here, not after minutes.
LINT_DEADLINE_S = 60.0


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["ruff", "check", "discovery", "plugin", "tests", "scripts", "vm", "benchmarks"], id="ruff"),
        pytest.param(["mypy"], id="mypy"),
    ],
)
def test_lint_clean(argv: list[str]) -> None:
    """No findings from the pinned linter (installed with the test extras)."""
    tool = Path(sys.executable).parent / argv[0]
    executable = str(tool) if tool.exists() else shutil.which(argv[0])
    assert executable, f"{argv[0]} is not installed: scripts/bootstrap --test installs it"
    run = subprocess.run([executable, *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=LINT_DEADLINE_S)
    assert run.returncode == 0, run.stdout + run.stderr
