"""Fixtures for aria_storage: desync's own test data from ../shared (skipped with a reason if absent),
and nodes with the real aria_data for the asset catalog, copied per test from a session template."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aria.apps.data.engines import find_postgres_binaries
from tests.conftest import SHARED, booted_template, copy_of

DESYNC = SHARED / "testdata" / "desync"


@pytest.fixture
def desync_data() -> Path:
    """desync's fixtures (blob1, blob2, their indexes and stores, tree.*, chunker.*)."""
    if not (DESYNC / "blob1.caibx").exists():
        pytest.skip(f"desync's test data is not at {DESYNC} (the shared data folder beside the project)")
    return DESYNC


def storage_config(data_dir: Path, **storage: Any) -> dict[str, dict[str, Any]]:
    """A node with aria_storage on the real aria_data (OpenBao and PostgreSQL children)."""
    return {
        "node": {"data_dir": str(data_dir)},
        "log": {"format": "json", "level": "warning"},
        "security": {"health_interval": 0.2},
        "data": {"unavailable_timeout": 20.0},
        "storage": storage,
    }


@pytest.fixture(scope="session")
def storage_template() -> Iterator[Path]:
    """A data directory booted once (OpenBao initialised, PostgreSQL cluster, the migrations)."""
    if find_postgres_binaries() is None:
        pytest.skip("PostgreSQL's initdb and postgres are not installed (aria_data's postgres engine)")
    with booted_template(storage_config, apps=["aria_storage"]) as template:
        yield template


@pytest.fixture
def storage_dir(storage_template: Path) -> Iterator[Path]:
    """A private copy of the template's data directory."""
    with copy_of(storage_template) as directory:
        yield directory
