"""Schema migrations: each app owns ``aria/apps/<app>/migrations/NNN_name.sql``.

An app applies its own migrations when it starts (``await db.migrate(app, directory)``), before it
reports ready, so they run in boot (dependency) order. Each migration runs in its own SERIALIZABLE
transaction that first writes the single row of ``aria_migration_lock`` (serialising migrators on
CockroachDB 22.1 and PostgreSQL alike: a waiter gets SQLSTATE 40001 and is re-run), checks
``aria_migrations``, applies the file and records it with its SHA-256: several processes booting
against one database apply each migration exactly once. A migration edited after it was applied
stops the boot with an error naming the file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from aria.apps.data.errors import MigrationError, QueryError

log = structlog.get_logger("aria_data")

_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

BOOTSTRAP = (
    """CREATE TABLE IF NOT EXISTS aria_migrations (
        app TEXT NOT NULL,
        name TEXT NOT NULL,
        checksum TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (app, name)
    )""",
    "CREATE TABLE IF NOT EXISTS aria_migration_lock (id INT PRIMARY KEY, holder TEXT)",
    "INSERT INTO aria_migration_lock (id, holder) VALUES (1, 'none') ON CONFLICT (id) DO NOTHING",
)


@dataclass(frozen=True)
class Migration:
    app: str
    name: str
    path: Path
    sql: str
    checksum: str


@dataclass(frozen=True)
class MigrationState:
    """One row of ``aria data migrate --status``."""

    app: str
    name: str
    state: str  # applied | pending | changed | missing-file
    applied_at: datetime | None
    path: str


def discover(app: str, directory: Path) -> list[Migration]:
    """The migrations in ``directory``, in order.

    Raises:
        MigrationError: for a file not named ``NNN_name.sql``, or two files with one number.
    """
    if not directory.is_dir():
        return []
    migrations: list[Migration] = []
    numbers: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file {path} must be named NNN_name.sql (lowercase, digits, _)")
        if match.group(1) in numbers:
            raise MigrationError(
                f"migrations {numbers[match.group(1)]} and {path} share the number {match.group(1)}"
            )
        numbers[match.group(1)] = path
        sql = path.read_text()
        if not sql.strip():
            raise MigrationError(f"migration file {path} is empty")
        migrations.append(Migration(app, path.stem, path, sql, hashlib.sha256(sql.encode()).hexdigest()))
    return migrations


class MigrationRunner:
    """Applies and reports migrations on one database."""

    def __init__(self, database: Any) -> None:
        self._database = database
        self.directories: dict[str, Path] = {}
        self._bootstrapped = False

    async def bootstrap(self) -> None:
        """Create the bookkeeping tables (concurrent first boots may race; losers retry)."""
        for attempt in range(5):
            try:
                for statement in BOOTSTRAP:
                    await self._database.execute(statement)
                self._bootstrapped = True
                return
            except QueryError as exc:
                # Two processes creating the same table at once: one wins, the other sees a
                # duplicate catalog entry (PostgreSQL) or a retry error (CockroachDB).
                if exc.sqlstate not in ("23505", "42P07", "40001", "XX000") or attempt == 4:
                    raise

    async def apply(self, app: str, directory: Path | str) -> list[str]:
        directory = Path(directory)
        if not self._bootstrapped:
            await self.bootstrap()
        self.directories[app] = directory
        applied_now: list[str] = []
        for migration in discover(app, directory):

            async def body(transaction: Any, migration: Migration = migration) -> bool:
                # Writing the lock row (not only locking it) makes a concurrent migrator that waited
                # for it fail with 40001 once this commits; its retry then sees this migration applied.
                await transaction.execute(
                    "UPDATE aria_migration_lock SET holder = $1 WHERE id = 1",
                    f"{migration.app}/{migration.name}",
                )
                row = await transaction.fetchrow(
                    "SELECT checksum, applied_at FROM aria_migrations WHERE app = $1 AND name = $2",
                    migration.app,
                    migration.name,
                )
                if row is not None:
                    _check_unchanged(migration, row["checksum"], row["applied_at"])
                    return False
                await transaction.execute(migration.sql)
                await transaction.execute(
                    "INSERT INTO aria_migrations (app, name, checksum) VALUES ($1, $2, $3)",
                    migration.app,
                    migration.name,
                    migration.checksum,
                )
                return True

            row = await self._database.fetchrow(
                "SELECT checksum, applied_at FROM aria_migrations WHERE app = $1 AND name = $2",
                app,
                migration.name,
            )
            if row is not None:
                _check_unchanged(migration, row["checksum"], row["applied_at"])
                continue
            try:
                if await self._database.transact(body):
                    applied_now.append(migration.name)
                    log.info("migration applied", app=app, migration=migration.name)
            except QueryError as exc:
                raise MigrationError(f"migration {migration.path} failed: {exc}") from exc
        return applied_now

    async def status(self, directories: dict[str, Path]) -> list[MigrationState]:
        if not self._bootstrapped:
            await self.bootstrap()
        rows = await self._database.fetch(
            "SELECT app, name, checksum, applied_at FROM aria_migrations ORDER BY app, name"
        )
        recorded = {(r["app"], r["name"]): r for r in rows}
        states: list[MigrationState] = []
        seen: set[tuple[str, str]] = set()
        for app, directory in directories.items():
            for migration in discover(app, directory):
                key = (app, migration.name)
                seen.add(key)
                row = recorded.get(key)
                if row is None:
                    state, applied_at = "pending", None
                else:
                    state = "applied" if row["checksum"] == migration.checksum else "changed"
                    applied_at = row["applied_at"]
                states.append(MigrationState(app, migration.name, state, applied_at, str(migration.path)))
        for key, row in recorded.items():
            if key not in seen:
                states.append(MigrationState(key[0], key[1], "missing-file", row["applied_at"], ""))
        return states


def _check_unchanged(migration: Migration, checksum: str, applied_at: Any) -> None:
    if checksum != migration.checksum:
        raise MigrationError(
            f"migration {migration.path} was edited after it was applied (on {applied_at}): its checksum "
            f"{migration.checksum[:12]}... differs from the applied {checksum[:12]}...; "
            "restore the file and add a new migration instead"
        )
