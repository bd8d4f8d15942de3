"""Shared fixtures: a clean environment and logging for every test, a private data directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import aria
import aria.logging

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


async def eventually(condition: Callable[[], bool], interval: float = 0.02) -> None:
    """Wait until ``condition()`` holds, for conditions another process or thread makes true (a
    file appearing). Callers bound the wait with ``trio.fail_after``; in-process events are awaited
    directly instead."""
    while not condition():  # noqa: ASYNC110 - the condition is outside trio's reach
        await trio.sleep(interval)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Strip ARIA_* variables so the developer's shell cannot change a test's configuration."""
    for name in list(os.environ):
        if name.startswith("ARIA_"):
            monkeypatch.delenv(name)
    yield
    aria.logging.reset()


@contextmanager
def traversable_directory() -> Iterator[Path]:
    """A directory under /tmp that the postgres user can enter: pytest's own tmp dirs are 0700 root,
    and aria_data runs PostgreSQL as that user when the tests run as root. Short, too: unix
    socket paths are limited to 108 bytes. Removed on the way out, also when set-up fails."""
    path = Path(tempfile.mkdtemp(prefix="aria-test-", dir="/tmp"))
    try:
        path.chmod(0o711)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def booted_template(
    config_for: Callable[[Path], dict[str, Any]],
    *,
    apps: Sequence[str] | None = None,
    prepare: Callable[[], Awaitable[None]] | None = None,
    catalog: Sequence[Any] | None = None,
) -> Iterator[Path]:
    """A node data directory booted once (OpenBao initialised, PostgreSQL's cluster, migrations,
    and whatever ``prepare`` adds while the node runs), for a session's tests to copy: a cold boot
    costs seconds, a copy milliseconds."""
    with traversable_directory() as base:
        template = base / "var"

        async def initialise() -> None:
            options: dict[str, Any] = {"apps": apps} if apps is not None else {}
            if catalog is not None:
                options["catalog"] = catalog
            async with aria.running(config=config_for(template), configure_logging=False, **options):
                if prepare is not None:
                    await prepare()

        trio.run(initialise)
        yield template


@contextmanager
def copy_of(template: Path) -> Iterator[Path]:
    """A private copy of a booted template's data directory (``cp -a`` keeps owners and modes:
    PostgreSQL's files belong to the postgres user)."""
    with traversable_directory() as base:
        subprocess.run(["cp", "-a", str(template), str(base / "var")], check=True)
        yield base / "var"


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A fresh node data directory."""
    with traversable_directory() as base:
        path = base / "var"
        path.mkdir()
        yield path


@pytest.fixture
def node_config(data_dir: Path) -> dict[str, dict[str, object]]:
    """Config overrides for a test node: its own data directory, JSON logs."""
    return {"node": {"data_dir": str(data_dir)}, "log": {"format": "json", "level": "warning"}}
