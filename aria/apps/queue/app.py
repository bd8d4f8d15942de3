"""aria_queue's place in the boot tree: one worker, ``engine``, runs this node's queues.

Its migrations run before it reports ready; its stop gives running jobs ``queue.shutdown_grace``
seconds to finish and hands the others back to the queue.
"""

from __future__ import annotations

from typing import Any, Literal

import trio
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aria.application import App, AppContext
from aria.apps.queue.jobs import STANDARD_QUEUES, check_queue_name
from aria.apps.queue.runtime import QueueRuntime
from aria.config import Section
from aria.supervisor import ChildSpec


class CronEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schedule: str = Field(description="A cron expression (minute hour day month weekday).")
    worker: str
    args: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = None
    name: str | None = None


class QueueSection(Section):
    queues: dict[str, int] = Field(
        default_factory=lambda: {
            "default": 10,
            "ai_generation": 2,
            "planning": 4,
            "storage_sync": 4,
            "monitoring": 2,
        },
        description="Queues this node runs, with how many jobs of each run at once.",
    )
    claim: Literal["auto", "portable", "skip_locked"] = Field(
        "auto",
        description="auto: PostgreSQL's SKIP LOCKED fast path on postgres, the portable claim elsewhere.",
    )
    poll_interval: float = Field(
        1.0, gt=0, description="Seconds between polls for jobs inserted by other nodes."
    )
    heartbeat_interval: float = Field(1.0, gt=0)
    node_timeout: float = Field(
        30.0, gt=0, description="Seconds without heartbeat before a node's jobs are rescued."
    )
    leader_interval: float = Field(
        1.0, gt=0, description="Seconds between the leader's rounds (stage, cron, rescue)."
    )
    prune_after: float = Field(86400.0, gt=0, description="Seconds finished jobs are kept.")
    prune_interval: float = Field(60.0, gt=0)
    shutdown_grace: float = Field(15.0, ge=0, description="Seconds running jobs get to finish at shutdown.")
    ack_batch_size: int = Field(500, ge=1)
    ack_flush_interval: float = Field(
        0.005, ge=0, description="Seconds completions wait to be acked together."
    )
    default_max_attempts: int = Field(20, ge=1)
    cron: list[CronEntry] = Field(
        default_factory=list, description="Jobs inserted on a schedule by the leader."
    )

    @field_validator("queues")
    @classmethod
    def _queue_limits(cls, value: dict[str, int]) -> dict[str, int]:
        for name, limit in value.items():
            check_queue_name(name)
            if not isinstance(limit, int) or limit < 1:
                raise ValueError(f"queue {name!r} needs a limit >= 1, not {limit!r}")
        return value


def build(context: AppContext) -> list[ChildSpec]:
    settings: QueueSection = context.settings
    database = context.api("aria_data")

    async def run_engine(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        live = await database.get()
        runtime = QueueRuntime(
            database=live, settings=settings, node=context.config.node_name, engine=live.engine
        )
        await runtime.run(task_status=task_status)

    _register_control_ops(context)
    return [ChildSpec("engine", run_engine, name="aria_queue", shutdown=settings.shutdown_grace + 10.0)]


def _register_control_ops(context: AppContext) -> None:
    system = context.system

    async def runtime() -> QueueRuntime:
        found: QueueRuntime = await system.registry.wait_for("aria_queue", 10.0)
        return found

    async def stats() -> dict[str, Any]:
        return {"stats": await (await runtime()).stats()}

    async def jobs(state: str | None = None, queue: str | None = None, limit: int = 50) -> dict[str, Any]:
        found = await (await runtime()).jobs(state=state, queue=queue, limit=limit)
        return {"jobs": [job.to_json() for job in found]}

    async def retry(job_id: str) -> dict[str, Any]:
        return {"job": (await (await runtime()).retry_job(job_id)).to_json()}

    async def cancel(job_id: str) -> dict[str, Any]:
        return {"job": (await (await runtime()).cancel_job(job_id)).to_json()}

    system.control_ops.update(
        {"queue.stats": stats, "queue.jobs": jobs, "queue.retry": retry, "queue.cancel": cancel}
    )


APP = App(
    name="aria_queue",
    layer=2,
    depends_on=("aria_data",),
    summary="durable background jobs in the spirit of Oban",
    build=build,
    config_model=QueueSection,
)

__all__ = ["APP", "STANDARD_QUEUES", "QueueSection"]
