"""Fixtures for aria_storage: desync's own test data from ../shared (skipped with a reason if absent),
and nodes with the real aria_data for the asset catalog, copied per test from a session template."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import aria
from aria.apps.data.engines import find_postgres_binaries
from tests.conftest import SHARED, traversable_directory

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
    with traversable_directory() as base:
        template = base / "var"

        async def initialise() -> None:
            config = storage_config(template)
            async with aria.running(apps=["aria_storage"], config=config, configure_logging=False):
                pass

        trio.run(initialise)
        yield template


@pytest.fixture
def storage_dir(storage_template: Path) -> Iterator[Path]:
    """A private copy of the template's data directory."""
    with traversable_directory() as base:
        subprocess.run(["cp", "-a", str(storage_template), str(base / "var")], check=True)
        yield base / "var"
