"""GRPO checkpoints in aria_storage's asset catalogue, mirrored from a run's local directory.

The trainer runs in its own OS process, which has no node services; it saves each checkpoint into
its local :class:`~aria.apps.shape.grpo.CheckpointStore` and prints a ``checkpoint`` line. The node
then packs that checkpoint into one safetensors file and puts it into the catalogue as asset
``shape-grpo-<run>``, version ``<step>`` (the newest ``keep`` versions are kept). Before a run's
process (re)starts, the newest catalogued checkpoint is unpacked into the local directory when that
directory has nothing as new, so a run resumes after a crash, after a restart, and on another node
or a wiped disk alike.
"""

from __future__ import annotations

from typing import Any

import structlog
import trio

from aria.apps.shape.errors import TrainingFailed
from aria.apps.shape.grpo import CheckpointStore
from aria.apps.storage.api import AssetExists, AssetNotFound, StorageError

CONTENT_TYPE = "application/vnd.aria.grpo-checkpoint+safetensors"
log = structlog.get_logger("aria_shape")


def asset_name(run: str) -> str:
    """The catalogue asset holding a run's checkpoints (one version per step)."""
    return f"shape-grpo-{run}"


class CatalogCheckpoints:
    """A run's checkpoints in the asset catalogue, beside its local store.

    Args:
        storage: aria_storage's API (``put_asset``, ``open_asset``, ``list_assets``, ``delete_asset``).
        run: The run's name.
        local: The run's local checkpoint store (the trainer's).
        keep: Catalogued versions kept (older ones are deleted from the catalogue).
    """

    def __init__(self, storage: Any, run: str, local: CheckpointStore, keep: int = 2) -> None:
        self.storage = storage
        self.run = run
        self.local = local
        self.keep = keep
        self.asset = asset_name(run)

    async def steps(self) -> list[int]:
        """The catalogued steps, oldest first."""
        versions = await self.storage.list_assets(self.asset)
        return sorted(int(v["version"]) for v in versions if str(v["version"]).isdigit())

    async def upload(self, step: int) -> bool:
        """Put local checkpoint ``step`` into the catalogue; False if it is gone locally already
        (a newer one replaced it) or catalogued already.

        Raises:
            StorageError: if the catalogue or its store fails.
            TrainingFailed: if the local checkpoint cannot be read.
        """
        if step not in self.local.steps():
            return False
        packed = self.local.directory / f".upload-{step:06d}.safetensors"
        try:
            try:
                await trio.to_thread.run_sync(self.local.pack, step, packed)
            except TrainingFailed:
                if step not in self.local.steps():
                    return False  # removed while being read: a newer checkpoint exists
                raise
            try:
                await self.storage.put_asset(self.asset, packed, version=str(step), content_type=CONTENT_TYPE)
            except AssetExists:
                return False
        finally:
            packed.unlink(missing_ok=True)
        for old in (await self.steps())[: -self.keep]:
            try:
                await self.storage.delete_asset(self.asset, str(old))
            except AssetNotFound:
                pass
        return True

    async def restore(self) -> int | None:
        """Unpack the newest catalogued checkpoint into the local store if the local store has
        nothing as new; return the step restored (None: nothing to do).

        Raises:
            StorageError: if the catalogue or its store fails.
            TrainingFailed: if the catalogued file is not a checkpoint or cannot be written.
        """
        catalogued = await self.steps()
        local = self.local.steps()
        if not catalogued or (local and local[-1] >= catalogued[-1]):
            return None
        step = catalogued[-1]
        target = self.local.directory / f".restore-{step:06d}.safetensors"
        self.local.directory.mkdir(parents=True, exist_ok=True)
        try:
            async with (
                await self.storage.open_asset(self.asset, str(step)) as reader,
                await trio.open_file(target, "wb") as handle,
            ):
                async for piece in reader.stream():
                    await handle.write(piece)
            restored: int = await trio.to_thread.run_sync(self.local.unpack, target)
        finally:
            target.unlink(missing_ok=True)
        log.info("checkpoint restored from the asset catalogue", run=self.run, step=restored)
        return restored


__all__ = ["CONTENT_TYPE", "CatalogCheckpoints", "StorageError", "asset_name"]
