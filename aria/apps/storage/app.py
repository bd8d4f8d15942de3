"""aria_storage's place in the boot tree: its configured store, the asset catalog, and optionally
a chunk server.

One worker, ``api``: it applies the catalog's migrations (aria_data), opens the default store
(``[storage] store``, by default ``chunks/`` in the app's data directory, with the optional local
cache in front), starts the HTTP chunk server on it if ``[storage] chunk_server`` is set, then
publishes :class:`StorageApi` under ``aria_storage`` and refreshes the catalog statistics every
``[storage] statistics_interval``. If the
store cannot be opened (an unreachable S3 endpoint, a refused SFTP login) the start fails with that
error; if the worker crashes later, the app supervisor (one_for_one) restarts it and callers of
``aria.whereis("aria_storage")`` wait meanwhile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from aria.application import App, AppContext
from aria.apps.storage.settings import StorageSection
from aria.supervisor import ChildSpec

MIGRATIONS = Path(__file__).parent / "migrations"


def build(context: AppContext) -> list[ChildSpec]:
    # Imported here: loading the config imports every app.py, and numpy need not come with it.
    from aria.apps.storage.api import StorageApi
    from aria.apps.storage.catalog import AssetCatalog
    from aria.apps.storage.chunk_server import serve_chunks
    from aria.apps.storage.format import Digest
    from aria.apps.storage.sizes import ChunkSizes
    from aria.apps.storage.stores import StoreOptions, open_store

    settings: StorageSection = context.settings
    location = settings.store_location(context.data_dir)
    options = StoreOptions(compressed=not settings.uncompressed)
    database = context.api("aria_data")

    async def serve(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        db = await database.get()
        await db.migrate("aria_storage", MIGRATIONS)
        async with (
            open_store(location, cache=settings.cache or None, options=options) as store,
            trio.open_nursery() as nursery,
        ):
            catalog = AssetCatalog(
                db,
                store,
                sizes=ChunkSizes.parse(settings.chunk_size),
                digest=Digest.parse(settings.digest),
                concurrency=settings.concurrency or None,
                node=context.config.node_name,
                upload_timeout=settings.upload_timeout,
            )
            await catalog.refresh_statistics()
            address = None
            if settings.chunk_server:
                address = await nursery.start(
                    lambda task_status: serve_chunks(
                        store,
                        settings.chunk_server,
                        writable=settings.chunk_server_writable,
                        compressed=not settings.uncompressed,
                        digest=Digest.parse(settings.digest),
                        task_status=task_status,
                    )
                )
            api = StorageApi(store, settings, chunk_server=address, catalog=catalog)
            context.log.info("storage ready", store=store.location, chunk_server=address)
            task_status.started(api)
            await catalog.keep_statistics_fresh(settings.statistics_interval)

    return [ChildSpec(id="api", start=serve, name=context.app.name)]


APP = App(
    name="aria_storage",
    layer=2,
    depends_on=("aria_data",),
    summary="desync/casync-compatible content-addressed asset storage (local, S3, SFTP, HTTP)",
    build=build,
    config_model=StorageSection,
)
