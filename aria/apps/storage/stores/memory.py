"""A chunk store in memory (``memory://name``): for tests and scripts; verifies reads like any store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from aria.apps.storage.errors import ChunkMissing
from aria.apps.storage.format import Digest
from aria.apps.storage.stores.base import Store


class MemoryStore(Store):
    """Chunks kept in a dict, compressed unless ``compressed=False``; lost when the process ends."""

    def __init__(self, name: str = "", *, compressed: bool = True) -> None:
        self.location = f"memory://{name}"
        self.compressed = compressed
        self.chunks: dict[bytes, bytes] = {}

    async def get_chunk(self, chunk_id: bytes, digest: Digest = Digest.SHA512_256) -> bytes:
        await trio.lowlevel.checkpoint()
        try:
            stored = self.chunks[chunk_id]
        except KeyError:
            raise ChunkMissing(chunk_id, self.location) from None
        return self.decode(chunk_id, stored, digest)

    async def has_chunk(self, chunk_id: bytes) -> bool:
        await trio.lowlevel.checkpoint()
        return chunk_id in self.chunks

    async def put_chunk(self, chunk_id: bytes, data: bytes | memoryview) -> bool:
        await trio.lowlevel.checkpoint()
        if chunk_id in self.chunks:
            return False
        self.chunks[chunk_id] = self.encode(data)
        return True

    async def remove_chunk(self, chunk_id: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self.chunks.pop(chunk_id, None)

    async def list_chunks(self) -> AsyncIterator[bytes]:
        for chunk_id in list(self.chunks):
            yield chunk_id
