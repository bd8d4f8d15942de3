"""aria_engine's place in the boot tree: one worker that loads the configured domains and serves the API."""

from __future__ import annotations

from typing import Any

import trio
from pydantic import Field

from aria.application import App, AppContext
from aria.apps.engine.api import EngineApi
from aria.config import Section
from aria.supervisor import ChildSpec


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


def build(context: AppContext) -> list[ChildSpec]:
    settings: EngineSection = context.settings

    async def serve(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        api = EngineApi(
            max_concurrent_plans=settings.max_concurrent_plans,
            default_max_expansions=settings.default_max_expansions,
            default_time_limit=settings.default_time_limit,
        )
        for module_name in settings.domains:
            names = api.register_module(module_name)
            context.log.info("domains registered", module=module_name, domains=names)
        task_status.started(api)
        await trio.sleep_forever()

    return [ChildSpec(id="api", start=serve, name=context.app.name)]


APP = App(
    name="aria_engine",
    layer=3,
    depends_on=("aria_data", "aria_queue"),
    summary="GTPyhop-style goal-task-network planner",
    build=build,
    config_model=EngineSection,
)
