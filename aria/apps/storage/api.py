"""The Python API of aria_storage: content-addressed storage compatible with desync and casync.

Other apps and scripts use it in two ways:

* the running service, ``aria.whereis("aria_storage")``: a :class:`StorageApi` bound to the node's
  configured store (``[storage] store``), with async methods that run the operations on it::

      storage = aria.whereis("aria_storage")
      index = await storage.make("model.safetensors", "model.caibx")
      await storage.extract("model.caibx", "/tmp/model.safetensors")

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
from pathlib import Path
from typing import Any

import trio

from aria.apps.storage.chunker import ChunkSizes, chunk_boundaries
from aria.apps.storage.errors import (
    ChunkInvalid,
    ChunkMissing,
    ContentMismatch,
    InvalidArchive,
    InvalidIndex,
    StorageError,
    StoreFailure,
    StoreURLError,
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

__all__ = [
    "CacheStats",
    "ChunkInvalid",
    "ChunkMissing",
    "ChunkSizes",
    "ContentMismatch",
    "Digest",
    "ExtractStats",
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
    "VerifyReport",
    "cache_chunks",
    "cat",
    "chop",
    "chunk_boundaries",
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

    def __init__(self, store: Store, settings: StorageSection, *, chunk_server: str | None = None) -> None:
        self.store = store
        self.settings = settings
        self.sizes = ChunkSizes.parse(settings.chunk_size)
        self.digest = Digest.parse(settings.digest)
        self.concurrency = settings.concurrency or None
        self.chunk_server = chunk_server
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
        }

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


def _write_index(path: Path, index: Index) -> None:
    temporary = path.parent / f".{path.name}.aria-tmp"
    temporary.write_bytes(index.to_bytes())
    os.replace(temporary, path)
