"""A real node (OpenBao, PostgreSQL, the queue's migrations) per test, from a session template."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import aria
from aria.apps.data.engines import find_postgres_binaries
from aria.system import System
from tests.conftest import booted_template, copy_of

if find_postgres_binaries() is None:
    pytest.skip("PostgreSQL's initdb and postgres are not installed", allow_module_level=True)

FAST = {
    "poll_interval": 0.1,
    "heartbeat_interval": 0.1,
    "leader_interval": 0.1,
    "node_timeout": 2.0,
    "shutdown_grace": 2.0,
}


def queue_config(data_dir: Path, **queue: Any) -> dict[str, dict[str, Any]]:
    return {
        "node": {"data_dir": str(data_dir)},
        "log": {"format": "json", "level": "info"},
        "security": {"health_interval": 0.2},
        "data": {"unavailable_timeout": 20.0},
        "queue": {**FAST, **queue},
    }


@pytest.fixture(scope="session")
def queue_template() -> Iterator[Path]:
    with booted_template(queue_config, apps=["aria_queue"]) as template:
        yield template


@pytest.fixture
def queue_dir(queue_template: Path) -> Iterator[Path]:
    with copy_of(queue_template) as directory:
        yield directory


@pytest.fixture
async def node(queue_dir: Path) -> AsyncIterator[System]:
    async with aria.running(apps=["aria_queue"], config=queue_config(queue_dir)) as system:
        yield system
