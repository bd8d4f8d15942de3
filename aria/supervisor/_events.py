"""The supervision event stream: what happened to which child, for the CLI, dashboard and debugger."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import trio

EventKind = Literal[
    "started",  # a child reported ready
    "exited",  # a child ended (normally, by crash, or because it was stopped)
    "restarted",  # a child came back after an exit
    "start_failed",  # a child did not become ready
    "killed",  # a child overran its shutdown budget and was killed
    "escalated",  # a supervisor exceeded its restart intensity
]


@dataclass(frozen=True)
class SupervisorEvent:
    """One entry of the event stream.

    ``path`` is the child's position in the tree (``root/aria_data/postgres``); ``reason`` is
    ``normal``, ``shutdown`` or the error text; ``restarts`` is the child's restart count after it.
    """

    kind: EventKind
    path: str
    reason: str = ""
    restarts: int = 0
    wall_time: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class EventBus:
    """Fan-out of supervisor events to any number of subscribers, plus a ring of recent events.

    Emitting never blocks: a subscriber that falls more than ``buffer`` events behind loses the
    overflow and its ``dropped`` counter says how many.
    """

    def __init__(self, *, history: int = 1000, buffer: int = 1000) -> None:
        self._recent: deque[SupervisorEvent] = deque(maxlen=history)
        self._subscribers: set[_Subscription] = set()
        self._buffer = buffer

    def emit(self, event: SupervisorEvent) -> None:
        self._recent.append(event)
        for subscriber in list(self._subscribers):
            subscriber.offer(event)

    def recent(self, limit: int | None = None) -> list[SupervisorEvent]:
        events = list(self._recent)
        return events if limit is None else events[-limit:]

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[_Subscription]:
        """Receive every event emitted while the block runs: ``async for event in subscription``."""
        subscription = _Subscription(self._buffer)
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)
            subscription.close()


class _Subscription:
    def __init__(self, buffer: int) -> None:
        self._send, self._receive = trio.open_memory_channel[SupervisorEvent](buffer if buffer else math.inf)
        self.dropped = 0

    def offer(self, event: SupervisorEvent) -> None:
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.dropped += 1

    def close(self) -> None:
        self._send.close()

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> SupervisorEvent:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
