"""The Python API of aria_data, for other apps and scripts.

``aria.whereis("aria_data")`` (or ``ctx.api("aria_data")``) is the :class:`Database`::

    await db.execute("INSERT INTO t (id, v) VALUES (gen_random_uuid(), $1)", value)
    rows = await db.fetch("SELECT v FROM t WHERE owner = $1", owner)
    async with db.transaction() as tx:          # one SERIALIZABLE attempt
        await tx.execute(...)
    await db.transact(body, *args)              # body(tx, *args), re-run on 40001: keep it re-runnable
    await db.migrate("aria_queue", Path(__file__).parent / "migrations")

SQL must run on CockroachDB 22.1 and PostgreSQL 15 alike (``aria.apps.data.portability`` checks).
"""

from aria.apps.data.errors import (
    AuthenticationFailed,
    ConnectionLost,
    DatabaseUnavailable,
    DataError,
    EngineError,
    MigrationError,
    QueryError,
    QueryTimeout,
    SerializationFailure,
    UniqueViolation,
)
from aria.apps.data.pool import Database, PoolStatistics, Transaction

__all__ = [
    "AuthenticationFailed",
    "ConnectionLost",
    "DataError",
    "Database",
    "DatabaseUnavailable",
    "EngineError",
    "MigrationError",
    "PoolStatistics",
    "QueryError",
    "QueryTimeout",
    "SerializationFailure",
    "Transaction",
    "UniqueViolation",
]
