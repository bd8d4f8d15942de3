"""Fixtures for aria_storage: desync's own test data from ../shared, skipped with a reason if absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED

DESYNC = SHARED / "testdata" / "desync"


@pytest.fixture
def desync_data() -> Path:
    """desync's fixtures (blob1, blob2, their indexes and stores, tree.*, chunker.*)."""
    if not (DESYNC / "blob1.caibx").exists():
        pytest.skip(f"desync's test data is not at {DESYNC} (the shared data folder beside the project)")
    return DESYNC
