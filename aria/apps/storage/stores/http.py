"""A store reached over HTTP with desync's chunk-server protocol (GET/HEAD/PUT ``<base>/XXXX/<id>.cacnk``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType

import httpx
import trio

from aria.apps.storage.errors import ChunkMissing, StoreFailure
from aria.apps.storage.format import Digest, chunk_relative_path
from aria.apps.storage.stores.base import Store, StoreOptions


class HTTPStore(Store):
    """An HTTP(S) chunk store: 200 is found, 404 missing, anything else an error; PUT must answer 200.

    Listing and removing chunks are not part of the protocol, so ``verify`` and ``prune`` need the
    store behind the server instead.
    """

    def __init__(self, location: str, options: StoreOptions) -> None:
        self.location = location
        self.base = location if location.endswith("/") else f"{location}/"
        self.compressed = options.compressed
        self.concurrency = options.concurrency
        self._client = httpx.AsyncClient(
            timeout=options.timeout,
            headers=dict(options.http_headers),
            limits=httpx.Limits(max_connections=options.concurrency),
        )

    async def __aenter__(self) -> HTTPStore:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _url(self, chunk_id: bytes) -> str:
        return self.base + chunk_relative_path(chunk_id, compressed=self.compressed)

    async def _request(self, method: str, chunk_id: bytes, content: bytes | None = None) -> httpx.Response:
        try:
            return await self._client.request(method, self._url(chunk_id), content=content)
        except httpx.HTTPError as exc:
            raise StoreFailure(
                self.location, f"{method} chunk {chunk_id.hex()}", str(exc) or repr(exc)
            ) from exc

    def _unexpected(self, method: str, chunk_id: bytes, response: httpx.Response) -> StoreFailure:
        detail = response.text.strip()[:200]
        return StoreFailure(
            self.location,
            f"{method} chunk {chunk_id.hex()}",
            f"HTTP {response.status_code}{': ' + detail if detail else ''}",
        )

    async def get_chunk(self, chunk_id: bytes, digest: Digest = Digest.SHA512_256) -> bytes:
        response = await self._request("GET", chunk_id)
        if response.status_code == 404:
            raise ChunkMissing(chunk_id, self.location)
        if response.status_code != 200:
            raise self._unexpected("GET", chunk_id, response)
        return await trio.to_thread.run_sync(self.decode, chunk_id, response.content, digest)

    async def has_chunk(self, chunk_id: bytes) -> bool:
        response = await self._request("HEAD", chunk_id)
        if response.status_code in (200, 404):
            return response.status_code == 200
        raise self._unexpected("HEAD", chunk_id, response)

    async def put_chunk(self, chunk_id: bytes, data: bytes | memoryview) -> bool:
        if await self.has_chunk(chunk_id):
            return False
        encoded = await trio.to_thread.run_sync(self.encode, data)
        response = await self._request("PUT", chunk_id, encoded)
        if response.status_code != 200:
            raise self._unexpected("PUT", chunk_id, response)
        return True

    async def remove_chunk(self, chunk_id: bytes) -> None:
        raise StoreFailure(
            self.location, f"removing chunk {chunk_id.hex()}", "the HTTP protocol cannot delete"
        )

    async def list_chunks(self) -> AsyncIterator[bytes]:
        raise StoreFailure(self.location, "listing chunks", "the HTTP protocol cannot list chunks")
        yield b""  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        await self._client.aclose()
