"""The Python API of aria_queue, for other apps and scripts.

Workers are registered by name, in the module that defines them::

    from aria.apps.queue.api import Job, Snooze, worker

    @worker("storage.gc", queue="storage_sync", max_attempts=5)
    async def collect_garbage(job: Job) -> None | Snooze: ...

Jobs are inserted through the running service (``ctx.api("aria_queue")`` or
``aria.whereis("aria_queue")``)::

    job = await queue.insert("storage.gc", {"store": "default"}, schedule_in=60)
    async with db.transaction() as tx:                 # transactional enqueue
        await queue.insert("shape.generate", {...}, tx=tx)
    await queue.cancel_job(job.id); await queue.retry_job(job.id)
    await queue.stats(); await queue.jobs(state="retryable")
    queue.pause("ai_generation"); queue.resume("ai_generation"); queue.scale("planning", 8)

``perform`` may return ``Snooze(seconds)``, ``Cancel(reason)`` or ``Discard(reason)``; raising is
a failed attempt (retried with backoff until ``max_attempts``, every error recorded).
"""

from aria.apps.queue.errors import JobNotFound, QueueError, QueueUsageError
from aria.apps.queue.http import create_blueprint
from aria.apps.queue.jobs import (
    FINISHED,
    STANDARD_QUEUES,
    STATES,
    WORKERS,
    Cancel,
    Discard,
    Job,
    Snooze,
    Unique,
    Worker,
    WorkerRegistry,
    default_backoff,
    worker,
)
from aria.apps.queue.runtime import QueueRuntime as QueueApi

__all__ = [
    "FINISHED",
    "STANDARD_QUEUES",
    "STATES",
    "WORKERS",
    "Cancel",
    "Discard",
    "Job",
    "JobNotFound",
    "QueueApi",
    "QueueError",
    "QueueUsageError",
    "Snooze",
    "Unique",
    "Worker",
    "WorkerRegistry",
    "create_blueprint",
    "default_backoff",
    "worker",
]
