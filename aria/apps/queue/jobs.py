"""Jobs, their states, what a worker may return, and workers themselves (Oban's vocabulary).

States: ``available`` (ready to run), ``scheduled`` (waits for ``scheduled_at``), ``executing``,
``retryable`` (failed; waits for its backoff), ``completed``, ``discarded`` (failed for good, or
unrunnable), ``cancelled``.
"""

from __future__ import annotations

import inspect
import json
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aria.apps.queue.errors import QueueUsageError

STATES = ("available", "scheduled", "executing", "retryable", "completed", "discarded", "cancelled")
FINISHED = ("completed", "discarded", "cancelled")
STANDARD_QUEUES = ("default", "ai_generation", "planning", "storage_sync", "monitoring")
_NAME = re.compile(r"^[a-z][a-z0-9_.:-]{0,127}$")


@dataclass(frozen=True)
class Job:
    """One job as stored."""

    id: str
    state: str
    queue: str
    worker: str
    args: dict[str, Any]
    meta: dict[str, Any]
    tags: list[str]
    errors: list[dict[str, Any]]
    attempt: int
    max_attempts: int
    priority: int
    attempted_by: str | None
    inserted_at: datetime
    scheduled_at: datetime
    attempted_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    discarded_at: datetime | None
    conflict: bool = False  # an insert that found an existing unique job returns that job with this set

    @classmethod
    def from_record(cls, record: Any, conflict: bool = False) -> Job:
        def json_value(value: Any) -> Any:
            return json.loads(value) if isinstance(value, str) else value

        return cls(
            id=str(record["id"]),
            state=record["state"],
            queue=record["queue"],
            worker=record["worker"],
            args=json_value(record["args"]),
            meta=json_value(record["meta"]),
            tags=json_value(record["tags"]),
            errors=json_value(record["errors"]),
            attempt=record["attempt"],
            max_attempts=record["max_attempts"],
            priority=record["priority"],
            attempted_by=record["attempted_by"],
            inserted_at=record["inserted_at"],
            scheduled_at=record["scheduled_at"],
            attempted_at=record["attempted_at"],
            completed_at=record["completed_at"],
            cancelled_at=record["cancelled_at"],
            discarded_at=record["discarded_at"],
            conflict=conflict,
        )

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        return data


# ---- what perform() may return --------------------------------------------------------------


@dataclass(frozen=True)
class Snooze:
    """Run again after ``seconds``; the attempt does not count against ``max_attempts``."""

    seconds: float


@dataclass(frozen=True)
class Cancel:
    """Stop for good, as cancelled (not an error)."""

    reason: str


@dataclass(frozen=True)
class Discard:
    """Stop for good, as discarded (an error that retrying cannot fix)."""

    reason: str


# ---- backoff and uniqueness -----------------------------------------------------------------


def default_backoff(attempt: int) -> float:
    """Oban's default: attempt^4 + 15 seconds, plus up to 30 s of jitter scaled by the attempt."""
    return attempt**4 + 15 + random.uniform(0, 30 * attempt)


@dataclass(frozen=True)
class Unique:
    """A job is unique among jobs with the same key inserted within ``period`` seconds and in one of
    ``states``. The key is built from ``fields`` (``worker``, ``queue``, ``args``) or given as
    ``key``; ``args_keys`` narrows ``args`` to some keys."""

    period: float = 60.0
    fields: tuple[str, ...] = ("worker", "queue", "args")
    args_keys: tuple[str, ...] = ()
    states: tuple[str, ...] = ("available", "scheduled", "executing", "retryable", "completed")
    key: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.fields) - {"worker", "queue", "args"}
        if unknown:
            raise QueueUsageError(f"unique fields {sorted(unknown)} are not among worker, queue, args")
        bad_states = set(self.states) - set(STATES)
        if bad_states:
            raise QueueUsageError(f"unique states {sorted(bad_states)} are not job states")
        if self.period <= 0:
            raise QueueUsageError(f"unique period must be > 0 seconds, not {self.period!r}")


# ---- workers ----------------------------------------------------------------------------------

Perform = Callable[[Job], Awaitable[Any]]


@dataclass(frozen=True)
class Worker:
    """A registered worker: ``perform(job)`` runs one job.

    Args:
        name: How jobs name it (``"storage.gc"``).
        perform: The async function.
        queue: Default queue of its jobs.
        max_attempts: Default attempts before discarding.
        priority: Default priority (0 runs first, 9 last).
        timeout: Seconds an attempt may run before it fails (None: no limit).
        backoff: Seconds to wait before attempt N+1 (default: Oban's).
        unique: Default uniqueness of its jobs.
    """

    name: str
    perform: Perform
    queue: str = "default"
    max_attempts: int = 20
    priority: int = 0
    timeout: float | None = None
    backoff: Callable[[int], float] = default_backoff
    unique: Unique | None = None
    tags: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise QueueUsageError(f"worker name {self.name!r} must match {_NAME.pattern}")
        if not inspect.iscoroutinefunction(self.perform):
            raise QueueUsageError(f"worker {self.name!r}: perform must be an async function")
        check_queue_name(self.queue)
        check_priority(self.priority)
        if self.max_attempts < 1:
            raise QueueUsageError(f"worker {self.name!r}: max_attempts must be >= 1")


class WorkerRegistry:
    """Workers by name. The process-wide one is :data:`WORKERS`; tests may use their own."""

    def __init__(self) -> None:
        self._workers: dict[str, Worker] = {}

    def register(self, worker: Worker, *, replace: bool = False) -> Worker:
        existing = self._workers.get(worker.name)
        if existing is not None and not replace and existing.perform is not worker.perform:
            raise QueueUsageError(f"a worker named {worker.name!r} is already registered")
        self._workers[worker.name] = worker
        return worker

    def get(self, name: str) -> Worker | None:
        return self._workers.get(name)

    def names(self) -> list[str]:
        return sorted(self._workers)


WORKERS = WorkerRegistry()


def worker(
    name: str,
    *,
    queue: str = "default",
    max_attempts: int = 20,
    priority: int = 0,
    timeout: float | None = None,
    backoff: Callable[[int], float] = default_backoff,
    unique: Unique | None = None,
    registry: WorkerRegistry | None = None,
) -> Callable[[Perform], Perform]:
    """Register an async function as the worker ``name``::

    @worker("storage.gc", queue="storage_sync", max_attempts=5)
    async def collect_garbage(job: Job) -> None: ...
    """

    def register(perform: Perform) -> Perform:
        (registry or WORKERS).register(
            Worker(name, perform, queue, max_attempts, priority, timeout, backoff, unique)
        )
        return perform

    return register


def check_queue_name(queue: str) -> str:
    if not isinstance(queue, str) or not _NAME.match(queue):
        raise QueueUsageError(f"queue name {queue!r} must match {_NAME.pattern}")
    return queue


def check_priority(priority: int) -> int:
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 9:
        raise QueueUsageError(f"priority must be an integer from 0 to 9, not {priority!r}")
    return priority
