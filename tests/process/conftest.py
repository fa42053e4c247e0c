"""Process-tier fixtures shared by more than one module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from process_support import Plugins

from discovery.fake.testbed import Testbed


@pytest.fixture
def plugins(testbed: Testbed, tmp_path: Path) -> Iterator[Plugins]:
    """Plugins started one after the other in the test's world; one left running is killed at the end."""
    keeper = Plugins(testbed, tmp_path)
    try:
        yield keeper
    finally:
        keeper.close()
