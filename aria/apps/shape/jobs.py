"""The ``shape.generate`` worker: queued batches of characters on the ``ai_generation`` queue.

It is registered when ``aria/apps/shape/app.py`` is imported, that is before any node boots, so
that aria_queue (which boots earlier) never claims a batch left from a previous run before the
worker exists (it would discard it as unknown). The job's args are ``{"batch": <id>}``; the batch
row in aria_data holds the request. A job that is retried (a crash, ``kill -9`` of its node and the
lifeline's rescue) continues the batch: characters are stored per chunk, the stored chunks are
skipped, and the others come out exactly as the first run would have made them.
"""

from __future__ import annotations

from typing import Any

import aria
from aria.apps.queue.api import Job, Snooze, worker
from aria.errors import NoSuchService

GENERATE_WORKER = "shape.generate"
GENERATION_QUEUE = "ai_generation"
#: Attempts of a batch job: a batch that fails for a reason retrying cannot fix is discarded at once.
MAX_ATTEMPTS = 5
#: Seconds a job waits when this node runs no aria_shape (another node may take it meanwhile).
NOT_HERE_SNOOZE = 30.0


def _backoff(attempt: int) -> float:
    """Short retries: a batch fails again mostly for an environmental reason that passes (a model
    directory being copied, the database restarting)."""
    return 5.0 * attempt**2


@worker(GENERATE_WORKER, queue=GENERATION_QUEUE, max_attempts=MAX_ATTEMPTS, backoff=_backoff)
async def generate_batch(job: Job) -> Any:
    """Generate and store the batch ``job.args["batch"]`` (see ``ShapeApi.run_batch``)."""
    try:
        shape = aria.whereis("aria_shape")
    except NoSuchService:
        return Snooze(NOT_HERE_SNOOZE)  # this node runs no aria_shape
    return await shape.run_batch(str(job.args.get("batch", "")))
