"""Nomad tier: the example job files are jobs the real Nomad accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import NOMAD_BINARY

pytestmark = pytest.mark.nomad

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "jobs").glob("*.hcl"))


@pytest.mark.parametrize("job_file", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_job_validates(job_file: Path) -> None:
    """`nomad job validate` (offline: no agent needed for the job spec) accepts each example job."""
    assert NOMAD_BINARY is not None
    result = subprocess.run(
        [NOMAD_BINARY, "job", "validate", str(job_file)],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "NOMAD_ADDR": "http://127.0.0.1:1"},  # no agent: the spec alone
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Job validation successful" in result.stdout
