"""aria_monitor's place in the boot tree: one worker, ``service``, that samples metrics into the
history and publishes the monitor API; the gateway mounts its routes and the dashboard."""

from __future__ import annotations

from typing import Any

import trio
from pydantic import Field

from aria.application import App, AppContext
from aria.apps.monitor.service import MonitorService
from aria.config import Section
from aria.supervisor import ChildSpec

# The apps the dashboard shows pages for (all boot before aria_monitor).
SHOWN = ("aria_security", "aria_data", "aria_auth", "aria_queue", "aria_storage")


class MonitorSection(Section):
    sample_interval: float = Field(10.0, gt=0, description="Seconds between samples stored in the history.")
    raw_retention: float = Field(86400.0, gt=0, description="Seconds raw samples are kept.")
    minute_retention: float = Field(604800.0, gt=0, description="Seconds minute rollups are kept.")
    hour_retention: float = Field(7776000.0, gt=0, description="Seconds hour rollups are kept.")


def build(context: AppContext) -> list[ChildSpec]:
    async def run(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        apis = {
            name: await context.api(name).get() for name in SHOWN if name in context.system.registry.names()
        }
        monitor = MonitorService(
            system=context.system, database=apis["aria_data"], settings=context.settings, apis=apis
        )
        await monitor.run(task_status=task_status)

    return [ChildSpec("service", run, name="aria_monitor")]


APP = App(
    name="aria_monitor",
    layer=5,
    depends_on=SHOWN,
    summary="metrics, health, history and the dashboard",
    build=build,
    config_model=MonitorSection,
)
