"""Real nodes for the queued-planning and HTTP tests: OpenBao, PostgreSQL, aria_auth, aria_queue,
aria_engine and the gateway, from one session template (a cold boot and the migrations take seconds)."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import aria
from aria.apps import all_apps
from aria.system import System
from tests.conftest import booted_template, copy_of

PASSWORD = "correct horse battery staple"
ENGINE_DOMAINS = ["tests.engine.queue_domain"]

# The gateway in front of only the apps these tests need (all 14 would triple the boot time).
GATEWAY_CATALOG = [
    dataclasses.replace(
        app, depends_on=("aria_security", "aria_data", "aria_auth", "aria_queue", "aria_engine")
    )
    if app.name == "aria_coordinate"
    else app
    for app in all_apps()
]


def engine_node_config(data_dir: Path, **engine: Any) -> dict[str, dict[str, Any]]:
    return {
        "node": {"data_dir": str(data_dir)},
        "log": {"format": "json", "level": "warning"},
        "security": {"health_interval": 0.2},
        "data": {"unavailable_timeout": 20.0},
        "queue": {
            "poll_interval": 0.1,
            "heartbeat_interval": 0.1,
            "leader_interval": 0.1,
            "node_timeout": 5.0,
            "shutdown_grace": 2.0,
        },
        "engine": {"domains": ENGINE_DOMAINS, "default_max_expansions": 0, "default_time_limit": 0, **engine},
        "coordinate": {"port": 0},
    }


def _need_postgres() -> None:
    from aria.apps.data.engines import find_postgres_binaries

    if find_postgres_binaries() is None:
        pytest.skip("PostgreSQL's initdb and postgres are not installed")


@pytest.fixture(scope="session")
def engine_node_template() -> Iterator[Path]:
    _need_postgres()

    async def add_test_users() -> None:
        auth = await aria.whereis("aria_auth").get()
        await auth.put_role("operator", ["*:*"], description="tests: everything")
        await auth.put_role(
            "plan_reader", ["aria_engine.requests:read"], description="tests: read planning requests"
        )
        await auth.add_user("oper", PASSWORD, roles=["operator"])
        await auth.add_user("reader", PASSWORD, roles=["plan_reader"])

    with booted_template(
        engine_node_config, apps=["aria_coordinate"], catalog=GATEWAY_CATALOG, prepare=add_test_users
    ) as template:
        yield template


@pytest.fixture
def engine_node_dir(engine_node_template: Path) -> Iterator[Path]:
    with copy_of(engine_node_template) as directory:
        yield directory


@pytest.fixture
async def engine_node(engine_node_dir: Path) -> AsyncIterator[System]:
    """aria_engine with aria_data and aria_queue (no gateway)."""
    async with aria.running(apps=["aria_engine"], config=engine_node_config(engine_node_dir)) as system:
        yield system


@dataclass
class GatewayNode:
    system: System
    url: str
    ca_file: str

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(
            base_url=f"{self.url}/api/v1/engine",
            verify=ssl.create_default_context(cafile=self.ca_file),
            headers=headers,
            timeout=30,
        )

    async def token(self, user: str = "oper") -> str:
        auth = await aria.whereis("aria_auth").get()
        return str((await auth.login(user, PASSWORD)).access_token)


@pytest.fixture
async def gateway_node(engine_node_dir: Path) -> AsyncIterator[GatewayNode]:
    async with aria.running(
        apps=["aria_coordinate"], config=engine_node_config(engine_node_dir), catalog=GATEWAY_CATALOG
    ) as system:
        gateway = aria.whereis("aria_coordinate")
        yield GatewayNode(system, gateway.url, gateway.ca_file)


@pytest.fixture(autouse=True)
def reset_queue_domain() -> Iterator[None]:
    from tests.engine import queue_domain

    queue_domain.GATE.clear()
    queue_domain.ENTERED.clear()
    yield
    queue_domain.GATE.set()  # a planner thread still waiting (a failed test) finishes
