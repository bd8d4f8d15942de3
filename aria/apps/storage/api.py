"""The Python API of aria_storage: content-addressed storage compatible with desync and casync.

Other apps and scripts use it in two ways:

* the running service, ``aria.whereis("aria_storage")``: a :class:`StorageApi` bound to the node's
  configured store (``[storage] store``), with async methods that run the operations on it::

      storage = aria.whereis("aria_storage")
      index = await storage.make("model.safetensors", "model.caibx")
      await storage.extract("model.caibx", "/tmp/model.safetensors")

* the asset catalog (with aria_data), on the same service::

      asset = await storage.put_asset("robot.glb", upload_body, content_type="model/gltf-binary")
      async with await storage.open_asset("robot.glb") as reader:   # newest version
          head = await reader.read_range(0, 4096)
      await storage.list_assets(), await storage.delete_asset("robot.glb", "1"), await storage.gc()
      storage.statistics()                                          # synchronous, for dashboards

* the building blocks, usable without a node: :func:`open_store` (any store by URL), the
  operations (:func:`make`, :func:`make_from_stream`, :func:`extract`, :func:`cat`,
  :func:`read_range`, :func:`chop`, :func:`verify`, :func:`prune`, :func:`info`,
  :func:`cache_chunks`, :func:`tar`, :func:`untar`), the format
  (:class:`Index`, :func:`read_index`, :class:`ChunkSizes`, :class:`Digest`) and the errors.

Everything is trio-native: blocking work runs in ``trio.to_thread``; remote stores built on
asyncio libraries (S3, SFTP) run under trio-asyncio inside the store.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from aria.apps.storage.catalog import (
    DEFAULT_CONTENT_TYPE,
    LATEST,
    Asset,
    AssetCatalog,
    AssetReader,
    Content,
    GCReport,
)
from aria.apps.storage.chunker import ChunkSizes, chunk_boundaries
from aria.apps.storage.errors import (
    AssetExists,
    AssetNotFound,
    ChunkInvalid,
    ChunkMissing,
    ContentMismatch,
    InvalidArchive,
    InvalidIndex,
    StorageError,
    StoreFailure,
    StoreURLError,
    SweepInProgress,
    UploadExpired,
)
from aria.apps.storage.format import Digest, Index, IndexChunk, read_index
from aria.apps.storage.operations import (
    CacheStats,
    ExtractStats,
    MakeStats,
    VerifyReport,
    cache_chunks,
    cat,
    chop,
    extract,
    info,
    make,
    make_from_stream,
    prune,
    read_range,
    tar,
    untar,
    verify,
)
from aria.apps.storage.settings import StorageSection
from aria.apps.storage.stores import Store, StoreOptions, open_store, open_stores
from aria.errors import UsageError

__all__ = [
    "LATEST",
    "Asset",
    "AssetExists",
    "AssetNotFound",
    "AssetReader",
    "CacheStats",
    "ChunkInvalid",
    "ChunkMissing",
    "ChunkSizes",
    "ContentMismatch",
    "Digest",
    "ExtractStats",
    "GCReport",
    "Index",
    "IndexChunk",
    "InvalidArchive",
    "InvalidIndex",
    "MakeStats",
    "StorageApi",
    "StorageError",
    "Store",
    "StoreFailure",
    "StoreOptions",
    "StoreURLError",
    "SweepInProgress",
    "UploadExpired",
    "VerifyReport",
    "cache_chunks",
    "cat",
    "chop",
    "chunk_boundaries",
    "create_blueprint",
    "extract",
    "info",
    "make",
    "make_from_stream",
    "open_store",
    "open_stores",
    "prune",
    "read_index",
    "read_range",
    "tar",
    "untar",
    "verify",
]

IndexLike = Index | str | os.PathLike[str]


class StorageApi:
    """The running aria_storage service: the operations on the node's default store.

    Each method takes an ``Index`` or the path of an index file where an index is needed, and an
    optional ``store`` (an open :class:`Store`) to work on another store than the default.
    """

    implemented = True

    def __init__(
        self,
        store: Store,
        settings: StorageSection,
        *,
        chunk_server: str | None = None,
        catalog: AssetCatalog | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.sizes = ChunkSizes.parse(settings.chunk_size)
        self.digest = Digest.parse(settings.digest)
        self.concurrency = settings.concurrency or None
        self.chunk_server = chunk_server
        self._catalog = catalog
        self._started = trio.current_time()

    def status(self) -> dict[str, Any]:
        return {
            "app": "aria_storage",
            "state": "running",
            "implemented": True,
            "store": self.store.location,
            "chunk_size": self.settings.chunk_size,
            "digest": self.digest.value,
            "chunk_server": self.chunk_server,
            "catalog": self._catalog is not None,
            "assets": self.statistics().get("assets", 0),
        }

    # The asset catalog ------------------------------------------------------------------------

    @property
    def catalog(self) -> AssetCatalog:
        """The asset catalog (the running service always has one)."""
        if self._catalog is None:
            raise UsageError("this StorageApi has no asset catalog: it was built without aria_data")
        return self._catalog

    async def put_asset(
        self,
        name: str,
        content: Content,
        *,
        version: str | None = None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> Asset:
        """Store a new asset version from a stream, a file or bytes; see :meth:`AssetCatalog.put_asset`."""
        return await self.catalog.put_asset(name, content, version=version, content_type=content_type)

    async def open_asset(self, name: str, version: str | None = None) -> AssetReader:
        """A streaming reader (``read``, ``seek``, ``read_range``, ``stream``) of an asset version."""
        return await self.catalog.open_asset(name, version)

    async def get_asset(self, name: str, version: str | None = None) -> Asset:
        """An asset version's description (the newest when ``version`` is None or ``latest``)."""
        return await self.catalog.get_asset(name, version)

    async def list_assets(self, name: str | None = None, *, limit: int = 1000) -> list[dict[str, Any]]:
        """Every asset version (of ``name``), as JSON-friendly dicts (name, version, size,
        content_type, caid, chunks, timestamps, ...)."""
        return [asset.to_json() for asset in await self.catalog.list_assets(name, limit=limit)]

    async def delete_asset(self, name: str, version: str) -> Asset:
        """Remove an asset version from the catalog (its chunks go at the next gc unless shared)."""
        return await self.catalog.delete_asset(name, version)

    async def gc(self, *, dry_run: bool = False, keep: Sequence[IndexLike] = ()) -> GCReport:
        """Delete the default store's chunks that no asset references (nor the ``keep`` indexes)."""
        indexes = [await self.load_index(index) for index in keep]
        return await self.catalog.gc(dry_run=dry_run, keep=indexes)

    def statistics(self) -> dict[str, float]:
        """Catalog numbers for dashboards (synchronous, as of the last refresh): assets, bytes,
        stored_bytes, chunks, chunk_refs, dedup_ratio, uploads."""
        return self._catalog.statistics() if self._catalog is not None else {}

    async def dedup_statistics(self, name: str | None = None) -> dict[str, Any]:
        """The dedup figures, overall and per asset version (distinct and exclusive bytes)."""
        return await self.catalog.dedup_statistics(name)

    # Operations on the store ------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """Ok when the default store answers (a lookup of an absent chunk)."""
        try:
            await self.store.has_chunk(bytes(32))
        except StorageError as exc:
            return {"ok": False, "app": "aria_storage", "error": str(exc)}
        return {"ok": True, "app": "aria_storage", "store": self.store.location}

    async def load_index(self, index: IndexLike) -> Index:
        """``index`` itself, or the index file at that path."""
        if isinstance(index, Index):
            return index
        return await trio.to_thread.run_sync(read_index, index)

    async def make(
        self,
        source: str | os.PathLike[str],
        index_path: str | os.PathLike[str] | None = None,
        *,
        store: Store | None = None,
        sizes: ChunkSizes | None = None,
    ) -> Index:
        """Chunk ``source`` into the store; write the index to ``index_path`` if given."""
        index, _ = await make(
            source,
            store or self.store,
            sizes=sizes or self.sizes,
            digest=self.digest,
            concurrency=self.concurrency,
        )
        if index_path is not None:
            await trio.to_thread.run_sync(_write_index, Path(index_path), index)
        return index

    async def extract(
        self,
        index: IndexLike,
        output: str | os.PathLike[str],
        *,
        seeds: tuple[str | os.PathLike[str], ...] = (),
        store: Store | None = None,
    ) -> ExtractStats:
        """Rebuild ``output`` from ``index`` (seeds and the existing output first)."""
        return await extract(
            await self.load_index(index),
            output,
            store or self.store,
            seeds=seeds,
            concurrency=self.concurrency,
        )

    async def read_range(
        self, index: IndexLike, offset: int, length: int, *, store: Store | None = None
    ) -> bytes:
        """``length`` bytes of the indexed blob from ``offset`` (fewer at its end)."""
        return await read_range(await self.load_index(index), store or self.store, offset, length)

    async def chop(
        self, index: IndexLike, source: str | os.PathLike[str], *, store: Store | None = None
    ) -> int:
        return await chop(
            await self.load_index(index), source, store or self.store, concurrency=self.concurrency
        )

    async def verify(self, *, repair: bool = False, store: Store | None = None) -> VerifyReport:
        return await verify(
            store or self.store, digest=self.digest, repair=repair, concurrency=self.concurrency
        )

    async def prune(
        self, indexes: list[IndexLike], *, dry_run: bool = False, store: Store | None = None
    ) -> list[bytes]:
        loaded = [await self.load_index(index) for index in indexes]
        return await prune(store or self.store, loaded, dry_run=dry_run)

    async def info(self, index: IndexLike, *, store: Store | None = None) -> dict[str, object]:
        return await info(await self.load_index(index), store or self.store)

    async def cache(
        self, indexes: list[IndexLike], destination: Store, *, source: Store | None = None
    ) -> CacheStats:
        """Copy what the indexes reference from the default store (or ``source``) to ``destination``."""
        loaded = [await self.load_index(index) for index in indexes]
        return await cache_chunks(loaded, source or self.store, destination, concurrency=self.concurrency)


def create_blueprint(service: Any) -> Any:
    """aria_storage's routes for the gateway (``/api/v1/storage``); see :mod:`aria.apps.storage.http`."""
    # Imported here: Quart is for the gateway, not for scripts and the CLI.
    from aria.apps.storage.http import create_blueprint as build

    return build(service)


def _write_index(path: Path, index: Index) -> None:
    temporary = path.parent / f".{path.name}.aria-tmp"
    temporary.write_bytes(index.to_bytes())
    os.replace(temporary, path)
