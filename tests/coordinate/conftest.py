"""A whole node (all 14 apps, the gateway on a free port) for every test, from a session template,
plus an operator account and HTTPS clients that verify the node's local CA."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import aria
from aria.apps.data.engines import find_postgres_binaries
from aria.system import System
from tests.conftest import booted_template, copy_of

if find_postgres_binaries() is None:
    pytest.skip("PostgreSQL's initdb and postgres are not installed", allow_module_level=True)

PASSWORD = "correct horse battery staple"


def node_config(data_dir: Path, **coordinate: Any) -> dict[str, dict[str, Any]]:
    return {
        "node": {"data_dir": str(data_dir)},
        "log": {"format": "json", "level": "info"},
        "security": {"health_interval": 0.2},
        "queue": {"poll_interval": 0.2, "leader_interval": 0.2},
        "monitor": {"sample_interval": 0.5},
        "coordinate": {"port": 0, **coordinate},
    }


@pytest.fixture(scope="session")
def node_template() -> Iterator[Path]:
    async def add_test_users() -> None:
        auth = await aria.whereis("aria_auth").get()
        await auth.put_role("operator", ["*:*"], description="tests: everything, without MFA")
        await auth.put_role("reader", ["monitor:read"], description="tests: read the monitor")
        await auth.add_user("oper", PASSWORD, roles=["operator"])
        await auth.add_user("reader", PASSWORD, roles=["reader"])

    with booted_template(node_config, prepare=add_test_users) as template:
        yield template


@pytest.fixture
def node_dir(node_template: Path) -> Iterator[Path]:
    with copy_of(node_template) as directory:
        yield directory


@dataclass
class Node:
    system: System
    url: str
    ca_file: str

    def client(self, token: str | None = None, **options: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(
            base_url=self.url,
            verify=ssl.create_default_context(cafile=self.ca_file),
            headers=headers,
            **options,
        )

    async def token(self, user: str = "oper") -> str:
        auth = await aria.whereis("aria_auth").get()
        return str((await auth.login(user, PASSWORD)).access_token)


@pytest.fixture
async def node(node_dir: Path) -> AsyncIterator[Node]:
    async with aria.running(config=node_config(node_dir)) as system:
        gateway = aria.whereis("aria_coordinate")
        yield Node(system, gateway.url, gateway.ca_file)
