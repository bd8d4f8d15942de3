"""aria_data's place in the boot tree: the database server (when embedded) and the data layer.

Children (one_for_one): ``postgres`` or ``cockroach`` (an OS process; none for ``external``), then
``pool``, which makes sure the ``aria`` role and database exist, opens the connection pool, creates
the migration bookkeeping, and publishes the :class:`~aria.apps.data.pool.Database` as
``aria_data``. When the server crashes the supervisor restarts it and the pool reconnects by itself.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any, Literal

import asyncpg
import trio
from pydantic import Field, model_validator

from aria.application import App, AppContext
from aria.apps.data.engines import Engine, choose_engine
from aria.apps.data.errors import AuthenticationFailed, DatabaseUnavailable
from aria.apps.data.migrations import MigrationRunner
from aria.apps.data.pool import _AUTH_ERRORS, _NOT_SENT_ERRORS, Database, in_asyncio
from aria.apps.security.api import AppSecrets
from aria.asyncio_bridge import open_asyncio_loop
from aria.config import Section
from aria.supervisor import ChildSpec


class DataSection(Section):
    engine: Literal["auto", "cockroach", "postgres", "external"] = Field(
        "auto", description="auto: cockroach if vendor_bin/cockroach exists, else the machine's PostgreSQL."
    )
    dsn: str = Field("", description="For engine = external: postgresql://user@host:port/db (no password).")
    port: int = Field(
        0, ge=0, le=65535, description="Embedded server's SQL port; 0: chosen on first boot, kept."
    )
    postgres_bin_dir: str = Field(
        "", description="Directory of initdb/postgres; empty: PATH or /usr/lib/postgresql."
    )
    postgres_dir: str = Field(
        "", description="The PostgreSQL cluster directory; empty: <data_dir>/data/postgres."
    )
    postgres_user: str = Field("postgres", description="OS user that runs PostgreSQL when Aria runs as root.")
    cockroach_binary: str = Field("", description="CockroachDB binary; empty: vendor_bin/cockroach.")
    pool_min_size: int = Field(1, ge=0)
    pool_max_size: int = Field(10, ge=1)
    statement_timeout: float = Field(30.0, ge=0, description="Seconds a statement may run; 0: no limit.")
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to establish one connection.")
    unavailable_timeout: float = Field(
        30.0, gt=0, description="Seconds a call waits for an unreachable database."
    )
    transaction_attempts: int = Field(
        10, ge=1, description="Runs of a transaction body on conflicts (40001)."
    )
    shutdown_timeout: float = Field(15.0, gt=0, description="Seconds the embedded server gets to stop.")
    max_connections: int = Field(100, ge=5, description="Embedded PostgreSQL's max_connections.")

    @model_validator(mode="after")
    def _consistent(self) -> DataSection:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(
                f"pool_min_size ({self.pool_min_size}) cannot exceed pool_max_size ({self.pool_max_size})"
            )
        if self.engine == "external" and not self.dsn:
            raise ValueError("engine = external needs dsn (postgresql://user@host:port/database)")
        return self


async def open_pool(loop: Any, engine: Engine, password: str, settings: DataSection) -> asyncpg.Pool:
    """Connect the pool, mapping failures to errors that name the host and port.

    Raises:
        DatabaseUnavailable: if the server cannot be reached within ``connect_timeout``.
        AuthenticationFailed: if it refuses the credentials.
    """
    server_settings = {"application_name": "aria"}
    if settings.statement_timeout:
        server_settings["statement_timeout"] = str(int(settings.statement_timeout * 1000))
    try:
        with trio.fail_after(settings.connect_timeout + 1):
            pool: asyncpg.Pool = await in_asyncio(
                loop,
                asyncpg.create_pool,
                host=engine.host,
                port=engine.port,
                user=engine.user,
                password=password,
                database=engine.database,
                ssl=engine.ssl(),
                min_size=settings.pool_min_size,
                max_size=settings.pool_max_size,
                timeout=settings.connect_timeout,
                server_settings=server_settings,
            )
    except trio.TooSlowError:
        raise DatabaseUnavailable(engine.host, engine.port, settings.connect_timeout, "no answer") from None
    except _AUTH_ERRORS as exc:
        raise AuthenticationFailed(engine.user, engine.host, engine.port, str(exc)) from None
    except _NOT_SENT_ERRORS as exc:
        raise DatabaseUnavailable(
            engine.host, engine.port, settings.connect_timeout, f"{type(exc).__name__}: {exc}"
        ) from None
    return pool


def migration_directories(context: AppContext) -> dict[str, Path]:
    """Every app's ``migrations/`` directory (read as files; no app code is imported)."""
    directories = {}
    for app in context.system.known_apps:
        try:
            directory = Path(str(importlib.resources.files(f"aria.apps.{app.section}"))) / "migrations"
        except ModuleNotFoundError:
            continue
        if directory.is_dir():
            directories[app.name] = directory
    return directories


def build(context: AppContext) -> list[ChildSpec]:
    settings: DataSection = context.settings
    engine = choose_engine(settings, context.data_dir)
    secrets = AppSecrets(context.api("aria_security"), "aria_data")

    async def run_pool(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with open_asyncio_loop() as loop:
            password = await engine.ensure_role(loop, secrets)
            pool = await open_pool(loop, engine, password, settings)
            server_version = await loop.run_aio_coroutine(pool.fetchval("SELECT version()"))
            database = Database(
                loop=loop,
                pool=pool,
                settings=settings,
                engine=engine.name,
                host=engine.host,
                port=engine.port,
                user=engine.user,
                server_version=str(server_version).split(" on ")[0],
            )
            database.migrations = MigrationRunner(database)
            await database.migrations.bootstrap()
            context.log.info("database ready", engine=engine.describe(), version=database.server_version)
            try:
                task_status.started(database)
                await trio.sleep_forever()
            finally:
                await database.close()

    _register_control_ops(context, engine, secrets)
    return [
        *engine.children(secrets),
        ChildSpec("pool", run_pool, name="aria_data", start_timeout=settings.unavailable_timeout + 60),
    ]


def _register_control_ops(context: AppContext, engine: Engine, secrets: AppSecrets) -> None:
    """``aria data migrate --status | backup | restore | psql`` reach the running node through these."""
    system = context.system

    async def database() -> Database:
        found: Database = await system.registry.wait_for("aria_data", 10.0)
        return found

    async def migrations() -> dict[str, Any]:
        states = await (await database()).migrations.status(migration_directories(context))
        return {
            "migrations": [
                {
                    "app": s.app,
                    "name": s.name,
                    "state": s.state,
                    "applied_at": s.applied_at.isoformat() if s.applied_at else None,
                    "path": s.path,
                }
                for s in states
            ]
        }

    async def password() -> str:
        return str((await secrets.get_secret("db/password"))["value"])

    async def backup(path: str) -> dict[str, Any]:
        await engine.backup(Path(path), await password())
        return {"path": path}

    async def restore(path: str) -> dict[str, Any]:
        if not await trio.Path(path).is_file():
            raise FileNotFoundError(f"no backup file at {path}")
        await engine.restore(Path(path), await password())
        return {"path": path}

    async def connection() -> dict[str, Any]:
        args, env = engine.psql_command(await password())
        return {"args": args, "password": env["PGPASSWORD"]}

    system.control_ops.update(
        {
            "data.migrations": migrations,
            "data.backup": backup,
            "data.restore": restore,
            "data.connection": connection,
        }
    )


APP = App(
    name="aria_data",
    layer=1,
    depends_on=("aria_security",),
    summary="CockroachDB/PostgreSQL as a managed child, the data layer and migrations",
    build=build,
    config_model=DataSection,
    start_timeout=600.0,
)
