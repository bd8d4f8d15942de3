"""The trio-native data layer: asyncpg's pool, run on an asyncio loop inside trio (trio-asyncio).

Every call makes one hop into asyncio (``loop.run_aio_coroutine``) that acquires a connection,
runs the statement and releases the connection, so the bridge costs one task switch per call.

Cancellation: cancelling the trio caller cancels the asyncio task; asyncpg then sends the server a
cancel request and the pool resets the connection on release (or discards it if it is broken), and
the bridge waits for that before the trio side sees ``Cancelled``.

Retries: a statement that certainly never reached the server (no connection, server restarting)
is retried with backoff until ``data.unavailable_timeout``, then ``DatabaseUnavailable``. A lone
statement that fails with SQLSTATE 40001 was rolled back whole and is run again (up to
``data.transaction_attempts``). A
statement whose connection broke in flight raises ``ConnectionLost`` (its effect is unknown), except
plain SELECTs, which are retried. :meth:`Database.transact` re-runs a whole transaction on SQLSTATE
40001 or a connection lost before COMMIT was sent, so its body must be safe to run again.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import structlog
import trio

from aria.apps.data.errors import (
    AuthenticationFailed,
    ConnectionLost,
    DatabaseUnavailable,
    QueryError,
    QueryTimeout,
    SerializationFailure,
    UniqueViolation,
)
from aria.supervisor import shutdown_grace

log = structlog.get_logger("aria_data")

T = TypeVar("T")

_READ_ONLY = re.compile(r"^\s*(--[^\n]*\n\s*)*SELECT\b(?!.*\bFOR\s+UPDATE\b)", re.IGNORECASE | re.DOTALL)
_WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE|UPSERT)\b", re.IGNORECASE)

# Failures that happen before a statement is sent: safe to retry.
_NOT_SENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.ConnectionRejectionError,
)
_AUTH_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.InvalidPasswordError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
)
_IN_FLIGHT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,
    ConnectionResetError,
    BrokenPipeError,
)


async def in_asyncio(loop: Any, function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Run ``await function(*args, **kwargs)`` as a task of the asyncio ``loop`` (trio-asyncio), so
    that even its synchronous set-up (asyncpg's ``create_pool`` looks up the running loop) happens
    inside asyncio."""

    async def call() -> T:
        return await function(*args, **kwargs)

    result: T = await loop.run_aio_coroutine(call())
    return result


class _NotSent(Exception):
    """Raised on the asyncio side when the statement never left this process."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass(frozen=True)
class PoolStatistics:
    size: int
    idle: int
    max_size: int


def translate(exc: BaseException, host: str, port: int, user: str) -> Exception:
    """Map an asyncpg failure to aria_data's error tree."""
    if isinstance(exc, _AUTH_ERRORS):
        return AuthenticationFailed(user, host, port, str(exc))
    if isinstance(exc, asyncpg.exceptions.SerializationError) or getattr(exc, "sqlstate", "") == "40001":
        return SerializationFailure(f"transaction conflict (SQLSTATE 40001): {exc}", "40001")
    if isinstance(exc, asyncpg.exceptions.UniqueViolationError):
        return UniqueViolation(str(exc), "23505")
    if isinstance(exc, asyncpg.exceptions.QueryCanceledError):
        return QueryTimeout(f"statement cancelled by the server: {exc}", exc.sqlstate)
    if isinstance(exc, asyncpg.PostgresError):
        return QueryError(f"{type(exc).__name__}: {exc}", exc.sqlstate)
    if isinstance(exc, _IN_FLIGHT_ERRORS):
        return ConnectionLost(host, port, f"{type(exc).__name__}: {exc}")
    return QueryError(f"{type(exc).__name__}: {exc}")


class Database:
    """The data layer other apps use (``aria.whereis("aria_data")``).

    ``fetch``, ``fetchrow``, ``fetchval``, ``execute`` and ``executemany`` take asyncpg's
    ``$1``-style queries. ``async with db.transaction() as tx:`` runs one SERIALIZABLE
    transaction; ``await db.transact(fn, *args)`` runs ``fn(tx, *args)`` in one and re-runs it on
    conflicts.
    """

    def __init__(
        self,
        *,
        loop: Any,
        pool: asyncpg.Pool,
        settings: Any,
        engine: str,
        host: str,
        port: int,
        user: str,
        server_version: str,
    ) -> None:
        self._loop = loop
        self._pool = pool
        self._settings = settings
        self.engine = engine
        self.host = host
        self.port = port
        self.user = user
        self.server_version = server_version
        self.migrations: Any = None  # set by the app: the migration runner

    # ---- one-statement calls ------------------------------------------------------------------

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[asyncpg.Record]:
        result: list[asyncpg.Record] = await self._statement("fetch", query, args, timeout)
        return result

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> asyncpg.Record | None:
        result: asyncpg.Record | None = await self._statement("fetchrow", query, args, timeout)
        return result

    async def fetchval(self, query: str, *args: Any, column: int = 0, timeout: float | None = None) -> Any:
        return await self._statement("fetchval", query, args, timeout, column=column)

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        result: str = await self._statement("execute", query, args, timeout)
        return result

    async def executemany(
        self, query: str, args: Sequence[Sequence[Any]], *, timeout: float | None = None
    ) -> None:
        await self._statement("executemany", query, (list(args),), timeout)

    async def _statement(
        self, method: str, query: str, args: tuple[Any, ...], timeout: float | None, **options: Any
    ) -> Any:
        retry_in_flight = bool(_READ_ONLY.match(query)) and not _WRITES.search(query)
        deadline = trio.current_time() + self._settings.unavailable_timeout
        delay = 0.02
        conflicts = 0
        while True:
            try:
                return await self._loop.run_aio_coroutine(self._run(method, query, args, timeout, options))
            except asyncpg.exceptions.SerializationError as exc:
                # A lone statement is its own transaction: on 40001 it was rolled back whole, so
                # running it again is safe.
                conflicts += 1
                if conflicts >= self._settings.transaction_attempts:
                    raise translate(exc, self.host, self.port, self.user) from exc
                await trio.sleep(min(1.0, 0.002 * 2**conflicts) * random.uniform(0.5, 1.5))
                continue
            except _NotSent as exc:
                reason = f"{type(exc.cause).__name__}: {exc.cause}"
                if isinstance(exc.cause, _AUTH_ERRORS):
                    raise AuthenticationFailed(self.user, self.host, self.port, str(exc.cause)) from exc.cause
            except _IN_FLIGHT_ERRORS as exc:
                if not retry_in_flight:
                    raise ConnectionLost(self.host, self.port, f"{type(exc).__name__}: {exc}") from exc
                reason = f"{type(exc).__name__}: {exc}"
            except asyncpg.PostgresError as exc:
                raise translate(exc, self.host, self.port, self.user) from exc
            if trio.current_time() + delay > deadline:
                raise DatabaseUnavailable(self.host, self.port, self._settings.unavailable_timeout, reason)
            await trio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _run(
        self, method: str, query: str, args: tuple[Any, ...], timeout: float | None, options: Any
    ) -> Any:
        """asyncio side: acquire, run, release."""
        try:
            connection = await self._pool.acquire(timeout=self._settings.unavailable_timeout)
        except (*_NOT_SENT_ERRORS, *_AUTH_ERRORS, asyncpg.exceptions.InterfaceError) as exc:
            raise _NotSent(exc) from exc
        try:
            if connection.is_closed():
                raise _NotSent(ConnectionError("the pooled connection was closed"))
            return await getattr(connection, method)(query, *args, timeout=timeout, **options)
        except asyncpg.exceptions.InternalClientError as exc:
            # The connection's protocol is out of step (it broke under a previous statement);
            # asyncpg checks this before sending anything. Discard it and try another.
            connection.terminate()
            raise _NotSent(exc) from exc
        finally:
            await self._release(connection)

    # ---- transactions -------------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One SERIALIZABLE transaction on one connection; commits when the block ends.

        Raises:
            SerializationFailure: on SQLSTATE 40001 (from any statement or the commit); nothing was
                committed and the transaction may be re-run (:meth:`transact` does that).
            DatabaseUnavailable: if the connection failed before COMMIT was sent (nothing committed).
            ConnectionLost: if it failed while COMMIT was in flight (the outcome is unknown).
        """
        connection = await self._acquire()
        transaction = Transaction(self, connection)
        try:
            await transaction._call("execute", "BEGIN ISOLATION LEVEL SERIALIZABLE", ())
            try:
                yield transaction
            except BaseException:
                with trio.CancelScope(shield=True):
                    await transaction._rollback()
                raise
            await transaction._commit()
        finally:
            with trio.CancelScope(shield=True):
                await self._loop.run_aio_coroutine(self._release(connection))

    async def transact(self, body: Callable[..., Awaitable[T]], *args: Any, attempts: int | None = None) -> T:
        """Run ``await body(tx, *args)`` in a transaction, re-running it on conflicts.

        Re-runs on SQLSTATE 40001 and on connection failures before COMMIT was sent, with jittered
        exponential backoff, at most ``attempts`` times (``data.transaction_attempts``). The body
        must be safe to run more than once: keep side effects outside the database out of it.
        """
        attempts = attempts or self._settings.transaction_attempts
        for attempt in range(1, attempts + 1):
            try:
                async with self.transaction() as transaction:
                    return await body(transaction, *args)
            except SerializationFailure:
                if attempt == attempts:
                    raise
            except ConnectionLost:
                raise
            except DatabaseUnavailable:
                if attempt == attempts:
                    raise
            backoff = min(1.0, 0.005 * 2**attempt) * random.uniform(0.5, 1.5)
            log.debug("retrying transaction", attempt=attempt, backoff=round(backoff, 4))
            await trio.sleep(backoff)
        raise AssertionError("unreachable")

    async def _acquire(self) -> asyncpg.Connection:
        deadline = trio.current_time() + self._settings.unavailable_timeout
        delay = 0.02

        async def acquire() -> asyncpg.Connection:
            try:
                connection: asyncpg.Connection = await self._pool.acquire(
                    timeout=self._settings.unavailable_timeout
                )
            except (*_NOT_SENT_ERRORS, *_AUTH_ERRORS, asyncpg.exceptions.InterfaceError) as exc:
                raise _NotSent(exc) from exc
            return connection

        while True:
            try:
                return await self._loop.run_aio_coroutine(acquire())
            except _NotSent as exc:
                if isinstance(exc.cause, _AUTH_ERRORS):
                    raise AuthenticationFailed(self.user, self.host, self.port, str(exc.cause)) from exc.cause
                if trio.current_time() + delay > deadline:
                    raise DatabaseUnavailable(
                        self.host, self.port, self._settings.unavailable_timeout, str(exc.cause)
                    ) from exc.cause
            await trio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _release(self, connection: asyncpg.Connection) -> None:
        """Give a connection back; one that cannot be reset (it broke mid-statement) is discarded
        (asyncpg's pool replaces it), so the original error is the one the caller sees."""
        try:
            await self._pool.release(connection)
        except Exception as exc:
            log.debug("discarding a broken connection", error=f"{type(exc).__name__}: {exc}")
            connection.terminate()

    # ---- introspection ------------------------------------------------------------------------

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(self._pool.get_size(), self._pool.get_idle_size(), self._pool.get_max_size())

    def status(self) -> dict[str, Any]:
        stats = self.statistics()
        return {
            "engine": self.engine,
            "address": f"{self.host}:{self.port}",
            "server_version": self.server_version,
            "pool_size": stats.size,
            "pool_idle": stats.idle,
            "pool_max": stats.max_size,
        }

    async def health(self) -> dict[str, Any]:
        try:
            with trio.fail_after(5):
                await self.fetchval("SELECT 1")
        except (trio.TooSlowError, DatabaseUnavailable, QueryError) as exc:
            return {"ok": False, "error": str(exc), **self.status()}
        return {"ok": True, **self.status()}

    async def migrate(self, app: str, directory: Any) -> list[str]:
        """Apply ``app``'s migrations from ``directory`` (``NNN_name.sql`` files); returns the names
        applied now. Apps call this in their start, before reporting ready."""
        applied: list[str] = await self.migrations.apply(app, directory)
        return applied

    async def close(self) -> None:
        with shutdown_grace():
            try:
                await self._loop.run_aio_coroutine(self._pool.close())
            except Exception:
                self._pool.terminate()


class Transaction:
    """The statements of one transaction (see :meth:`Database.transaction`)."""

    def __init__(self, database: Database, connection: asyncpg.Connection) -> None:
        self._database = database
        self._connection = connection
        self.commit_sent = False

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[asyncpg.Record]:
        result: list[asyncpg.Record] = await self._call("fetch", query, args, timeout=timeout)
        return result

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> asyncpg.Record | None:
        result: asyncpg.Record | None = await self._call("fetchrow", query, args, timeout=timeout)
        return result

    async def fetchval(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._call("fetchval", query, args, timeout=timeout)

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        result: str = await self._call("execute", query, args, timeout=timeout)
        return result

    async def executemany(
        self, query: str, args: Sequence[Sequence[Any]], *, timeout: float | None = None
    ) -> None:
        await self._call("executemany", query, (list(args),), timeout=timeout)

    async def _call(
        self, method: str, query: str, args: tuple[Any, ...], timeout: float | None = None
    ) -> Any:
        database = self._database

        async def run() -> Any:
            return await getattr(self._connection, method)(query, *args, timeout=timeout)

        try:
            return await database._loop.run_aio_coroutine(run())
        except asyncpg.PostgresError as exc:
            raise translate(exc, database.host, database.port, database.user) from exc
        except (*_IN_FLIGHT_ERRORS, *_NOT_SENT_ERRORS) as exc:
            # Nothing of this transaction is committed: the server rolls it back.
            raise DatabaseUnavailable(
                database.host, database.port, 0, f"{type(exc).__name__}: {exc}"
            ) from exc

    async def _commit(self) -> None:
        database = self._database
        self.commit_sent = True
        try:
            await database._loop.run_aio_coroutine(self._connection.execute("COMMIT"))
        except asyncpg.PostgresError as exc:
            raise translate(exc, database.host, database.port, database.user) from exc
        except (*_IN_FLIGHT_ERRORS, *_NOT_SENT_ERRORS) as exc:
            raise ConnectionLost(database.host, database.port, f"during COMMIT: {exc}") from exc

    async def _rollback(self) -> None:
        if self._connection.is_closed():
            return
        try:
            await self._database._loop.run_aio_coroutine(self._connection.execute("ROLLBACK"))
        except Exception as exc:  # a broken connection: the pool discards it on release
            log.debug("rollback failed", error=str(exc))
