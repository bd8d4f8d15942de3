"""The aria_queue worker that plans queued requests: ``aria_engine.plan`` on the ``planning`` queue.

The worker is registered when this module is imported (with the app's declaration, before any node
boots), so a node's queue never claims a planning job it has no worker for. Its body hands the job
to the aria_engine service of the node that claimed it (``aria.whereis`` in the worker, which runs
in that node's tree; :meth:`EngineApi.perform_job`). A job claimed while the engine is not running
(it boots after the queue, or is restarting) waits up to :data:`ENGINE_WAIT_S` for it, then fails
the attempt, and the queue retries it; a node without aria_engine snoozes the job for another.

Retries: a failed attempt (aria_engine stopped or restarted mid-plan, an unknown domain on this
node, the database failing) is tried again after ``min(60, 2 ** attempt)`` seconds, up to the
request's ``job_max_attempts`` (``[engine]``); a request that cannot succeed (malformed, the domain
misbehaves) is stored as ``error`` and its job discarded at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aria
from aria.apps.engine.errors import EngineStopped
from aria.apps.queue.api import Job, Snooze, worker
from aria.errors import NoSuchService, ServiceUnavailable

if TYPE_CHECKING:
    from aria.apps.engine.api import EngineApi

PLAN_WORKER = "aria_engine.plan"
PLANNING_QUEUE = "planning"
ENGINE_WAIT_S = 10.0

NOT_HERE_SNOOZE = 30.0  # seconds a job waits when this node runs no aria_engine


def retry_backoff(attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``: 2, 4, 8 ... up to a minute."""
    return float(min(60, 2**attempt))


async def _engine_for(job: Job) -> EngineApi:
    try:
        return await aria.whereis("aria_engine").get(timeout=ENGINE_WAIT_S)  # type: ignore[no-any-return]
    except ServiceUnavailable:
        raise EngineStopped(
            f"aria_engine is not running on this node (waited {ENGINE_WAIT_S:g} s); "
            "the queue will retry the planning job"
        ) from None


@worker(PLAN_WORKER, queue=PLANNING_QUEUE, max_attempts=5, backoff=retry_backoff)
async def plan_request(job: Job) -> Any:
    """Plan the stored request the job names and store its result (see :meth:`EngineApi.perform_job`)."""
    try:
        engine = await _engine_for(job)
    except NoSuchService:
        return Snooze(NOT_HERE_SNOOZE)  # this node runs no aria_engine: another may take it
    return await engine.perform_job(job)
