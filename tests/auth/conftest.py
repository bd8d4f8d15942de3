"""A real node for aria_auth's tests: OpenBao, PostgreSQL and aria_auth, from a template built once per
session (migrations applied, signing key and TURN secret made) and copied for each test; its HTTP
routes served by a real hypercorn (trio worker) on loopback."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from quart_trio import QuartTrio

import aria
from aria.apps.auth.api import AuthService, create_blueprint
from aria.system import System
from tests.conftest import booted_template, copy_of
from tests.data.conftest import data_config

# Cheap argon2 for tests (the bench states and uses the production parameters).
TEST_AUTH = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 8192,
    "argon2_parallelism": 1,
    "min_password_length": 12,
}
PASSWORD = "correct horse battery"


def auth_config(data_dir: Path, issuer: str, **auth: Any) -> dict[str, dict[str, Any]]:
    config = data_config(data_dir)
    config["log"] = {"format": "json", "level": "warning"}
    config["auth"] = {**TEST_AUTH, "issuer": issuer, **auth}
    return config


def _build_template() -> Iterator[Path]:
    def config_for(template: Path) -> dict[str, dict[str, Any]]:
        return auth_config(template, "http://127.0.0.1:1")

    with booted_template(config_for, apps=["aria_auth"]) as template:
        yield template


@pytest.fixture(scope="session")
def auth_template() -> Iterator[Path]:
    yield from _build_template()


@pytest.fixture(scope="session")
def upstream_template() -> Iterator[Path]:
    """A second template (its own OpenBao and PostgreSQL ports) for an external OIDC provider."""
    yield from _build_template()


def _copy(template: Path) -> Iterator[Path]:
    with copy_of(template) as directory:
        yield directory


@pytest.fixture
def auth_dir(auth_template: Path) -> Iterator[Path]:
    yield from _copy(auth_template)


@pytest.fixture
def upstream_dir(upstream_template: Path) -> Iterator[Path]:
    yield from _copy(upstream_template)


@dataclass
class Node:
    system: System
    auth: AuthService
    issuer: str
    listener: socket.socket


@asynccontextmanager
async def running_node(data_dir: Path, **auth: Any) -> AsyncIterator[Node]:
    """Boot aria_auth on ``data_dir`` with the issuer at a loopback port reserved for its routes."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    issuer = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        async with aria.running(apps=["aria_auth"], config=auth_config(data_dir, issuer, **auth)) as system:
            service = await system.whereis("aria_auth").get()
            yield Node(system, service, issuer, listener)
    finally:
        listener.close()


@pytest.fixture
async def node(auth_dir: Path) -> AsyncIterator[Node]:
    async with running_node(auth_dir) as running:
        yield running


@asynccontextmanager
async def serving(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    """aria_auth's Blueprint in a QuartTrio app under hypercorn's trio worker, on the node's port."""
    app = QuartTrio(f"aria-auth-test-{node.listener.getsockname()[1]}")
    app.register_blueprint(create_blueprint(node.system.whereis("aria_auth")))
    config = HypercornConfig()
    config.bind = [f"fd://{os.dup(node.listener.fileno())}"]  # hypercorn closes what it is given
    config.accesslog = None
    config.errorlog = None
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, app, config)
        async with httpx.AsyncClient(base_url=node.issuer, timeout=30) as client:
            yield client
        nursery.cancel_scope.cancel()
