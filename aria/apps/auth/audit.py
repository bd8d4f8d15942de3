"""The audit log: every authentication and authorisation decision, written to aria_data in batches.

``record`` never waits on the database (the gateway calls ``authorize`` on every request): records go
to a bounded buffer that a background task flushes every ``flush_interval`` seconds or as soon as it
holds ``batch`` records. ``query`` flushes first, so what was decided is what is found. If the
database is unreachable the buffer keeps the newest ``max_buffer`` records and counts what it had to
drop (``dropped`` in the status), so a slow database never blocks a login.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import structlog
import trio

from aria.apps.auth.store import Store
from aria.errors import AriaError

log = structlog.get_logger("aria_auth.audit")

KINDS = ("authn", "authz", "token", "admin")
RESULTS = ("success", "failure", "allow", "deny")


class AuditLog:
    def __init__(
        self,
        store: Store,
        clock: Callable[[], float],
        flush_interval: float = 0.5,
        batch: int = 500,
        max_buffer: int = 100_000,
    ) -> None:
        self.store = store
        self.clock = clock
        self.flush_interval = flush_interval
        self.batch = batch
        self._buffer: deque[dict[str, Any]] = deque(maxlen=max_buffer)
        self._wake = trio.Event()
        self._lock = trio.Lock()
        self.written = 0
        self.dropped = 0

    def record(
        self,
        kind: str,
        result: str,
        *,
        principal: str = "",
        action: str = "",
        resource: str = "",
        reason: str = "",
        request_id: str = "",
        ip: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        """Queue one decision (``kind`` in authn/authz/token/admin, ``result`` in
        success/failure/allow/deny)."""
        if kind not in KINDS or result not in RESULTS:
            raise ValueError(f"audit kind {kind!r} / result {result!r}: kinds {KINDS}, results {RESULTS}")
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(
            {
                "at": self.clock(),
                "kind": kind,
                "principal": str(principal or ""),
                "action": str(action or ""),
                "resource": str(resource or ""),
                "result": result,
                "reason": str(reason or "")[:1000],
                "request_id": str(request_id or "")[:200],
                "ip": str(ip or "")[:64],
                "details": details or {},
            }
        )
        if len(self._buffer) >= self.batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def flush(self) -> None:
        """Write everything buffered so far (raises the database's error if it cannot)."""
        async with self._lock:
            while self._buffer:
                chunk = [self._buffer.popleft() for _ in range(min(self.batch, len(self._buffer)))]
                try:
                    await self.store.insert_audit(chunk)
                except BaseException:
                    self._buffer.extendleft(reversed(chunk))
                    raise
                self.written += len(chunk)

    async def run(self) -> None:
        """Flush in the background until cancelled; a last flush is attempted on the way out."""
        try:
            while True:
                with trio.move_on_after(self.flush_interval):
                    await self._wake.wait()
                self._wake = trio.Event()
                try:
                    await self.flush()
                except AriaError as exc:
                    log.warning("audit records not written yet", pending=self.pending, error=str(exc))
        finally:
            with trio.move_on_after(5) as scope:
                scope.shield = True
                try:
                    await self.flush()
                except AriaError as exc:
                    log.error("audit records lost at shutdown", lost=self.pending, error=str(exc))

    async def query(
        self,
        *,
        principal: str | None = None,
        kind: str | None = None,
        result: str | None = None,
        request_id: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The newest records first, filtered by any of the arguments."""
        if not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ValueError(f"audit query limit must be 1..10000, not {limit!r}")
        if kind is not None and kind not in KINDS:
            raise ValueError(f"audit kind {kind!r} is not one of {KINDS}")
        if result is not None and result not in RESULTS:
            raise ValueError(f"audit result {result!r} is not one of {RESULTS}")
        await self.flush()
        rows = await self.store.query_audit(
            principal=principal, kind=kind, result=result, request_id=request_id, since=since, limit=limit
        )
        for row in rows:
            row["at"] = row["at"].timestamp()
        return rows
