"""aria_shape's place in the boot tree: a trainers supervisor, then the API worker.

Children (one_for_one):

* ``trainers``: a dynamic supervisor; each GRPO run is an OS-process child under it (see
  :mod:`aria.apps.shape.training`), restarted after a crash and resuming from its checkpoint.
* ``api``: applies the app's migrations, then publishes :class:`~aria.apps.shape.api.ShapeApi`
  under ``aria_shape``. The model is loaded on first use, not at boot, so the node boots in
  milliseconds even before the default model has been trained.

Importing this module registers the ``shape.generate`` queue worker (:mod:`aria.apps.shape.jobs`).
"""

from __future__ import annotations

from typing import Any

import trio

from aria.application import App, AppContext
from aria.apps.shape import jobs
from aria.apps.shape.settings import ShapeSection
from aria.supervisor import ChildSpec, ChildType, DynamicSupervisor


def build(context: AppContext) -> list[ChildSpec]:
    # Imported here: every `aria` command imports each app.py, and these pull in torch.
    from aria.apps.shape.api import ShapeApi
    from aria.apps.shape.service import ShapeService

    service = ShapeService(context.settings, context.data_dir)
    holder: dict[str, DynamicSupervisor] = {}
    # Each is None when this app runs without it (a catalogue that leaves the dependency out).
    database, queue, storage = (
        context.api(name) if name in context.app.depends_on else None
        for name in ("aria_data", "aria_queue", "aria_storage")
    )

    async def run_trainers(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        # A fresh supervisor per start: if this child restarts, runs it lost are started again by
        # whoever asked (their checkpoints make that cheap). Each run gives up after 3 crashes, so
        # the intensity here is only reached by many failing runs at once.
        holder["trainers"] = DynamicSupervisor(id="trainers", intensity=20, period=60.0)
        await holder["trainers"].run(task_status=task_status)

    async def serve(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        if database is not None:
            from aria.apps.shape.store import MIGRATIONS

            await database.migrate("aria_shape", MIGRATIONS)
        async with trio.open_nursery() as nursery:  # checkpoint mirroring runs here
            api = ShapeApi(
                service,
                lambda: holder.get("trainers"),
                database=database,
                queue=queue,
                storage=storage,
                nursery=nursery,
            )
            context.log.info(
                "aria_shape ready; the model loads on first use", model=context.settings.model or "default"
            )
            task_status.started(api)
            await trio.sleep_forever()

    return [
        ChildSpec(id="trainers", start=run_trainers, type=ChildType.SUPERVISOR),
        ChildSpec(id="api", start=serve, name=context.app.name),
    ]


__all__ = ["APP", "jobs"]

APP = App(
    name="aria_shape",
    layer=3,
    depends_on=("aria_data", "aria_storage", "aria_queue", "aria_engine"),
    summary="character generation with Qwen3-architecture models and GRPO training",
    build=build,
    config_model=ShapeSection,
)
