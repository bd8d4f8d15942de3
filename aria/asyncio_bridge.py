"""asyncio libraries (asyncpg, aiobotocore, asyncssh) under trio: a trio-asyncio loop with
asyncio's own reporting.

trio-asyncio's default exception handler raises every report into the loop's nursery. asyncio's
handler only logs, and libraries rely on that: asyncpg reports "Resetting connection with an
active transaction" and then rolls back by itself. Raised, that warning crashed aria_data's pool
and failed every statement in flight. Here a report without an exception is logged; a report that
carries one (an asyncio task that failed with nobody awaiting it) is still raised, so the
supervised child that owns the loop crashes and is restarted rather than going on half-broken.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
import trio_asyncio

log = structlog.get_logger("aria.asyncio")


def report(loop: Any, context: dict[str, Any]) -> None:
    """The loop's exception handler (see the module's docstring)."""
    if context.get("exception") is None:
        log.warning("asyncio reported a problem", message=str(context.get("message", "")))
        return
    loop.default_exception_handler(context)


@asynccontextmanager
async def open_asyncio_loop() -> AsyncIterator[Any]:
    """``trio_asyncio.open_loop()`` with :func:`report` as its exception handler."""
    async with trio_asyncio.open_loop() as loop:
        loop.set_exception_handler(report)
        yield loop
