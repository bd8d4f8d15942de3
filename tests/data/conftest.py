"""A real PostgreSQL child for every test: a template node (OpenBao initialised, cluster created,
role and database made) built once per session and copied, ownership kept, for each test."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import aria
from aria.apps.data.engines import find_postgres_binaries
from aria.system import System
from tests.conftest import booted_template

if find_postgres_binaries() is None:
    pytest.skip("PostgreSQL's initdb and postgres are not installed", allow_module_level=True)


def data_config(data_dir: Path, **data: Any) -> dict[str, dict[str, Any]]:
    return {
        "node": {"data_dir": str(data_dir)},
        "log": {"format": "json", "level": "info"},
        "security": {"health_interval": 0.2},
        "data": {"unavailable_timeout": 20.0, **data},
    }


@pytest.fixture(scope="session")
def node_template() -> Iterator[Path]:
    with booted_template(data_config, apps=["aria_data"]) as template:
        yield template


@pytest.fixture
def warm_data_dir(node_template: Path, data_dir: Path) -> Path:
    subprocess.run(["cp", "-a", f"{node_template}/.", str(data_dir)], check=True)
    return data_dir


@pytest.fixture
async def node(warm_data_dir: Path) -> AsyncIterator[System]:
    async with aria.running(apps=["aria_data"], config=data_config(warm_data_dir)) as system:
        yield system


def postgres_pid(system: System) -> int:
    data = next(c for c in system.tree()["root"]["children"] if c["id"] == "aria_data")
    return int(next(c for c in data["children"] if c["id"] == "postgres")["pid"])
