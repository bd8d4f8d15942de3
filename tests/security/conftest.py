"""A real OpenBao for every test: a template data directory initialised once per session, copied
for each test so that most tests start warm (unseal only) instead of initialising again."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

import aria
from aria.system import System


def security_config(data_dir: Path, **security: Any) -> dict[str, dict[str, Any]]:
    return {
        "node": {"data_dir": str(data_dir)},
        "log": {"format": "json", "level": "info"},
        "security": {"call_timeout": 5.0, "health_interval": 0.2, **security},
    }


@pytest.fixture(scope="session")
def initialised_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory in which OpenBao was initialised and bootstrapped once, then stopped."""
    template = tmp_path_factory.mktemp("security-template") / "var"

    async def initialise() -> None:
        async with aria.running(
            apps=["aria_security"], config=security_config(template), configure_logging=False
        ):
            pass

    trio.run(initialise)
    return template


@pytest.fixture
def warm_data_dir(initialised_template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "var"
    shutil.copytree(initialised_template, target)
    return target


@pytest.fixture
async def node(warm_data_dir: Path) -> AsyncIterator[System]:
    """A node running aria_security on a copy of the initialised template."""
    async with aria.running(apps=["aria_security"], config=security_config(warm_data_dir)) as system:
        yield system
