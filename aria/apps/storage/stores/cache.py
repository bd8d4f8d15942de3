"""A writable store in front of another: reads try it first and copy what they fetch into it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from aria.apps.storage.errors import ChunkInvalid, ChunkMissing
from aria.apps.storage.format import Digest
from aria.apps.storage.stores.base import StorageProblem, Store


class CacheStore(Store):
    """``store`` with ``cache`` consulted first (desync's ``-c``).

    A chunk found in neither is missing; a chunk fetched from ``store`` is copied into ``cache``; an
    invalid cached chunk is deleted from the cache and fetched again. Writes go to both, listing and
    removal to ``store`` only (the cache is disposable).
    """

    def __init__(self, store: Store, cache: Store) -> None:
        self.store = store
        self.cache = cache
        self.location = f"{store.location} (cache {cache.location})"
        self.compressed = store.compressed
        self.concurrency = store.concurrency

    async def get_chunk(self, chunk_id: bytes, digest: Digest = Digest.SHA512_256) -> bytes:
        try:
            return await self.cache.get_chunk(chunk_id, digest)
        except ChunkMissing:
            pass
        except ChunkInvalid:
            await self.cache.remove_chunk(chunk_id)
        data = await self.store.get_chunk(chunk_id, digest)
        await self.cache.put_chunk(chunk_id, data)
        return data

    async def get_chunks(
        self, chunk_ids: Sequence[bytes], digest: Digest = Digest.SHA512_256
    ) -> list[bytes | StorageProblem]:
        results = await self.cache.get_chunks(chunk_ids, digest)
        retry = [position for position, result in enumerate(results) if isinstance(result, StorageProblem)]
        if not retry:
            return results
        for position in retry:
            problem = results[position]
            assert isinstance(problem, StorageProblem)
            if not problem.missing:
                await self.cache.remove_chunk(chunk_ids[position])
        fetched = await self.store.get_chunks([chunk_ids[p] for p in retry], digest)
        await self.cache.put_chunks(
            [(chunk_ids[p], data) for p, data in zip(retry, fetched, strict=True) if isinstance(data, bytes)]
        )
        for position, data in zip(retry, fetched, strict=True):
            results[position] = data
        return results

    async def has_chunk(self, chunk_id: bytes) -> bool:
        return await self.cache.has_chunk(chunk_id) or await self.store.has_chunk(chunk_id)

    async def put_chunk(self, chunk_id: bytes, data: bytes | memoryview) -> bool:
        written = await self.store.put_chunk(chunk_id, data)
        await self.cache.put_chunk(chunk_id, data)
        return written

    async def remove_chunk(self, chunk_id: bytes) -> None:
        await self.store.remove_chunk(chunk_id)
        await self.cache.remove_chunk(chunk_id)

    def list_chunks(self) -> AsyncIterator[bytes]:
        return self.store.list_chunks()

    async def aclose(self) -> None:
        await self.store.aclose()
        await self.cache.aclose()


class RouterStore(Store):
    """Several stores tried in order for reads (desync's repeated ``-s``); writes go to the first."""

    def __init__(self, stores: Sequence[Store]) -> None:
        if not stores:
            raise ValueError("a store router needs at least one store")
        self.stores = list(stores)
        self.location = " | ".join(store.location for store in self.stores)
        self.compressed = self.stores[0].compressed
        self.concurrency = self.stores[0].concurrency

    async def get_chunk(self, chunk_id: bytes, digest: Digest = Digest.SHA512_256) -> bytes:
        for store in self.stores[:-1]:
            try:
                return await store.get_chunk(chunk_id, digest)
            except ChunkMissing:
                continue
        try:
            return await self.stores[-1].get_chunk(chunk_id, digest)
        except ChunkMissing:
            raise ChunkMissing(chunk_id, self.location) from None

    async def get_chunks(
        self, chunk_ids: Sequence[bytes], digest: Digest = Digest.SHA512_256
    ) -> list[bytes | StorageProblem]:
        results = await self.stores[0].get_chunks(chunk_ids, digest)
        for store in self.stores[1:]:
            retry = [p for p, r in enumerate(results) if isinstance(r, StorageProblem) and r.missing]
            if not retry:
                break
            for position, data in zip(
                retry, await store.get_chunks([chunk_ids[p] for p in retry], digest), strict=True
            ):
                results[position] = data
        return results

    async def has_chunk(self, chunk_id: bytes) -> bool:
        for store in self.stores:
            if await store.has_chunk(chunk_id):
                return True
        return False

    async def put_chunk(self, chunk_id: bytes, data: bytes | memoryview) -> bool:
        return await self.stores[0].put_chunk(chunk_id, data)

    async def put_chunks(self, chunks: Sequence[tuple[bytes, bytes | memoryview]]) -> int:
        return await self.stores[0].put_chunks(chunks)

    async def remove_chunk(self, chunk_id: bytes) -> None:
        await self.stores[0].remove_chunk(chunk_id)

    def list_chunks(self) -> AsyncIterator[bytes]:
        return self.stores[0].list_chunks()

    async def aclose(self) -> None:
        for store in self.stores:
            await store.aclose()
