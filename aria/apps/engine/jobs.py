"""The aria_queue worker that plans queued requests: ``aria_engine.plan`` on the ``planning`` queue.

The worker is registered when this module is imported (with the app's declaration, before any node
boots), so a node's queue never claims a planning job it has no worker for. Its body hands the job
to the aria_engine service running on the node that claimed it (:meth:`EngineApi.perform_job`);
the app attaches its service at start and detaches it at stop. A job claimed while the engine is
not running (it boots after the queue, or is restarting) waits up to :data:`ENGINE_WAIT_S` for it,
then fails the attempt, and the queue retries it.

Retries: a failed attempt (aria_engine stopped or restarted mid-plan, an unknown domain on this
node, the database failing) is tried again after ``min(60, 2 ** attempt)`` seconds, up to the
request's ``job_max_attempts`` (``[engine]``); a request that cannot succeed (malformed, the domain
misbehaves) is stored as ``error`` and its job discarded at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from aria.apps.engine.errors import EngineStopped
from aria.apps.queue.api import Job, worker

if TYPE_CHECKING:
    from aria.apps.engine.api import EngineApi

PLAN_WORKER = "aria_engine.plan"
PLANNING_QUEUE = "planning"
ENGINE_WAIT_S = 10.0

# The engine services running in this process, by node name (one per node; tests may run two nodes).
_live: dict[str, EngineApi] = {}


def attach(node: str, engine: EngineApi) -> None:
    """Make ``engine`` the one that performs planning jobs claimed by ``node``'s queue."""
    _live[node] = engine


def detach(node: str, engine: EngineApi) -> None:
    """Forget ``engine`` (if it is still the one attached for ``node``)."""
    if _live.get(node) is engine:
        del _live[node]


def retry_backoff(attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``: 2, 4, 8 ... up to a minute."""
    return float(min(60, 2**attempt))


async def _engine_for(job: Job) -> EngineApi:
    node = (job.attempted_by or "").rsplit("/", 1)[0]
    waited = 0.0
    while (engine := _live.get(node)) is None:
        if waited >= ENGINE_WAIT_S:
            raise EngineStopped(
                f"aria_engine is not running on node {node!r} (waited {ENGINE_WAIT_S:g} s); "
                "the queue will retry the planning job"
            )
        await trio.sleep(0.05)  # the engine boots after the queue, or is restarting
        waited += 0.05
    return engine


@worker(PLAN_WORKER, queue=PLANNING_QUEUE, max_attempts=5, backoff=retry_backoff)
async def plan_request(job: Job) -> Any:
    """Plan the stored request the job names and store its result (see :meth:`EngineApi.perform_job`)."""
    engine = await _engine_for(job)
    return await engine.perform_job(job)
