"""aria_engine's place in the boot tree: one worker that loads the configured domains and serves the API.

With aria_data and aria_queue in the node (the normal case), the worker also applies the engine's
migrations, takes queued planning requests (the ``aria_engine.plan`` worker of the ``planning``
queue hands them to it) and prunes old finished requests. Without them (an embedder booting the
engine alone) it plans in-process only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
from pydantic import Field

from aria.application import App, AppContext
from aria.apps.data.api import DataError
from aria.apps.engine import jobs  # noqa: F401 - registers the planning worker before any node boots
from aria.apps.engine.api import EngineApi
from aria.config import Section
from aria.supervisor import ChildSpec

MIGRATIONS = Path(__file__).parent / "migrations"
PRUNE_EVERY_S = 3600.0


class EngineSection(Section):
    domains: list[str] = Field(
        default_factory=list,
        description="Python modules to import at start; every Domain they define is registered.",
    )
    max_concurrent_plans: int = Field(2, ge=1, description="Plans computed at once in worker threads.")
    default_max_expansions: int = Field(
        1_000_000, ge=0, description="Node-expansion limit of a planning call that sets none; 0: unbounded."
    )
    default_time_limit: float = Field(
        30.0, ge=0, description="Time limit in seconds of a planning call that sets none; 0: unbounded."
    )
    sync_max_expansions: int = Field(
        100_000, ge=1, description="Most expansions a synchronous request (POST /plan) may use."
    )
    sync_time_limit: float = Field(
        10.0, gt=0, description="Most seconds a synchronous request may take (below the gateway's timeout)."
    )
    job_max_attempts: int = Field(5, ge=1, description="Attempts a queued planning request's job gets.")
    request_retention_days: float = Field(
        7.0, gt=0, description="Days finished planning requests and their results are kept."
    )


def build(context: AppContext) -> list[ChildSpec]:
    settings: EngineSection = context.settings
    registry = context.system.registry
    queued = all(
        name in context.app.depends_on and registry.is_known(name) for name in ("aria_data", "aria_queue")
    )

    async def serve(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        database = context.api("aria_data") if queued else None
        queue = context.api("aria_queue") if queued else None
        if database is not None:
            await database.migrate("aria_engine", MIGRATIONS)
        api = EngineApi(
            max_concurrent_plans=settings.max_concurrent_plans,
            default_max_expansions=settings.default_max_expansions,
            default_time_limit=settings.default_time_limit,
            sync_max_expansions=settings.sync_max_expansions,
            sync_time_limit=settings.sync_time_limit,
            database=database,
            queue=queue,
            node=context.config.node_name,
            job_max_attempts=settings.job_max_attempts,
        )
        for module_name in settings.domains:
            names = api.register_module(module_name)
            context.log.info("domains registered", module=module_name, domains=names)
        try:
            task_status.started(api)
            if not queued:
                await trio.sleep_forever()
            while True:
                await trio.sleep(PRUNE_EVERY_S)
                try:
                    pruned = await api.prune_requests(settings.request_retention_days * 86400.0)
                except DataError as error:  # the database is away: try again next round
                    context.log.warning("pruning planning requests failed", error=str(error))
                    continue
                if pruned:
                    context.log.info("finished planning requests pruned", count=pruned)
        finally:
            # Plans in progress belong to this service: they stop, and their queue jobs are retried.
            api.close()

    return [ChildSpec(id="api", start=serve, name=context.app.name)]


APP = App(
    name="aria_engine",
    layer=3,
    depends_on=("aria_data", "aria_queue"),
    summary="GTPyhop-style goal-task-network planner",
    build=build,
    config_model=EngineSection,
)
