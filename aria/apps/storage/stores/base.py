"""The chunk store interface: a few async methods, chosen by URL like an httpx transport.

Every store holds chunks named by their 32-byte ID. Reads return the verified, uncompressed bytes:
a store decompresses what it fetched and re-hashes it, and raises :class:`ChunkInvalid` (naming the
chunk and the store) when the content does not match its name. Writes are atomic (a temporary name
then a rename, or the backend's equivalent) and idempotent: putting a chunk that is already there
does nothing, which is what makes ``make`` and ``cache`` resumable.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import trio
import zstandard

from aria.apps.storage.errors import ChunkInvalid, ChunkMissing
from aria.apps.storage.format import Digest, compress_chunk, decompress_chunk

#: How many requests a remote store's batch methods keep in flight by default.
DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True)
class StoreOptions:
    """Options shared by every store kind.

    Attributes:
        compressed: False for an uncompressed store (desync's ``uncompressed`` option).
        concurrency: How many requests a remote store keeps in flight in batch calls.
        timeout: Seconds before a remote request fails.
        http_headers: Extra headers for HTTP stores (e.g. ``Authorization``).
        s3_access_key, s3_secret_key, s3_region: S3 credentials; empty means the environment's
            (``AWS_ACCESS_KEY_ID``, ...) as boto reads them.
        sftp_password, sftp_known_hosts, sftp_client_keys: SFTP login; ``sftp_known_hosts=None``
            means asyncssh's default (``~/.ssh/known_hosts``); an empty tuple of client keys means
            asyncssh's default keys and agent.
    """

    compressed: bool = True
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = 60.0
    http_headers: tuple[tuple[str, str], ...] = ()
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_region: str = ""
    sftp_password: str = ""
    sftp_known_hosts: str | None = None
    sftp_client_keys: tuple[str, ...] = field(default_factory=tuple)


class Store(abc.ABC):
    """A chunk store.

    Subclasses implement :meth:`get_chunk`, :meth:`has_chunk`, :meth:`put_chunk`,
    :meth:`remove_chunk` and :meth:`list_chunks`; the batch methods run those concurrently and may
    be overridden with something cheaper (the local store does a whole batch in one thread).

    Attributes:
        location: The store's URL or path, as used in messages.
        compressed: Whether chunks are kept zstd-compressed (``.cacnk``) or raw.
    """

    location: str = ""
    compressed: bool = True
    concurrency: int = DEFAULT_CONCURRENCY

    @abc.abstractmethod
    async def get_chunk(self, chunk_id: bytes, digest: Digest = Digest.SHA512_256) -> bytes:
        """The chunk's uncompressed bytes, verified against ``chunk_id`` with ``digest``.

        Raises:
            ChunkMissing: if the store does not hold it.
            ChunkInvalid: if it does not decompress or hash to its ID.
            StoreFailure: if the backend fails.
        """

    @abc.abstractmethod
    async def has_chunk(self, chunk_id: bytes) -> bool:
        """Whether the store holds the chunk (without reading or verifying it)."""

    @abc.abstractmethod
    async def put_chunk(self, chunk_id: bytes, data: bytes | memoryview) -> bool:
        """Store a chunk atomically unless it is already there.

        Args:
            chunk_id: The ID of ``data`` (the caller computed it).
            data: The uncompressed bytes; the store compresses them if it is a compressed store.

        Returns:
            True if the chunk was written, False if the store already held it.
        """

    @abc.abstractmethod
    async def remove_chunk(self, chunk_id: bytes) -> None:
        """Delete a chunk; deleting one that is not there is not an error."""

    @abc.abstractmethod
    def list_chunks(self) -> AsyncIterator[bytes]:
        """Every chunk ID the store holds (of its own kind: compressed or not), in no given order."""

    async def aclose(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release connections and files. Idempotent."""

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location}>"

    # Batches ----------------------------------------------------------------------------------

    async def get_chunks(
        self, chunk_ids: Sequence[bytes], digest: Digest = Digest.SHA512_256
    ) -> list[bytes | StorageProblem]:
        """Many chunks at once; a failed chunk is returned as its :class:`StorageProblem`, in place.

        Problems are returned rather than raised so that one missing chunk does not hide the others
        (a caller can try another store or a seed for them).
        """
        results: list[bytes | StorageProblem] = [b""] * len(chunk_ids)
        limiter = trio.CapacityLimiter(self.concurrency)

        async def one(position: int, chunk_id: bytes) -> None:
            async with limiter:
                try:
                    results[position] = await self.get_chunk(chunk_id, digest)
                except (ChunkMissing, ChunkInvalid) as problem:
                    results[position] = StorageProblem(problem)

        async with trio.open_nursery() as nursery:
            for position, chunk_id in enumerate(chunk_ids):
                nursery.start_soon(one, position, chunk_id)
        return results

    async def has_chunks(self, chunk_ids: Sequence[bytes]) -> list[bool]:
        """Whether the store holds each chunk."""
        results = [False] * len(chunk_ids)
        limiter = trio.CapacityLimiter(self.concurrency)

        async def one(position: int, chunk_id: bytes) -> None:
            async with limiter:
                results[position] = await self.has_chunk(chunk_id)

        async with trio.open_nursery() as nursery:
            for position, chunk_id in enumerate(chunk_ids):
                nursery.start_soon(one, position, chunk_id)
        return results

    async def put_chunks(self, chunks: Sequence[tuple[bytes, bytes | memoryview]]) -> int:
        """Store many chunks (each unless already there); returns how many were written."""
        written = 0
        limiter = trio.CapacityLimiter(self.concurrency)

        async def one(chunk_id: bytes, data: bytes | memoryview) -> None:
            nonlocal written
            async with limiter:
                if await self.put_chunk(chunk_id, data):
                    written += 1

        async with trio.open_nursery() as nursery:
            for chunk_id, data in chunks:
                nursery.start_soon(one, chunk_id, data)
        return written

    async def get_chunk_as(self, chunk_id: bytes, digest: Digest, *, compressed: bool) -> bytes:
        """The chunk as a wire or file body: one zstd frame if ``compressed``, else the raw bytes.

        Verified like :meth:`get_chunk`. Stores that keep chunks in the asked form return the stored
        bytes without compressing them again (the chunk server relies on this).
        """
        data = await self.get_chunk(chunk_id, digest)
        return await trio.to_thread.run_sync(compress_chunk, data) if compressed else data

    # Helpers for subclasses -------------------------------------------------------------------

    def encode(self, data: bytes | memoryview) -> bytes:
        """The bytes to keep for a chunk: zstd-compressed in a compressed store, else as they are."""
        return compress_chunk(data) if self.compressed else bytes(data)

    def decode(self, chunk_id: bytes, stored: bytes, digest: Digest) -> bytes:
        """Decompress (if compressed) and verify stored bytes; CPU-bound, so call it in a thread.

        Raises:
            ChunkInvalid: naming the chunk and this store.
        """
        data = self.unpack(chunk_id, stored)
        actual = digest.of(data)
        if actual != chunk_id:
            raise self._mismatch(chunk_id, data, actual, digest)
        return data

    def unpack(self, chunk_id: bytes, stored: bytes) -> bytes:
        """The chunk's bytes from what is stored: decompressed in a compressed store, not verified.

        Raises:
            ChunkInvalid: if a compressed chunk is not a valid zstd frame.
        """
        if not self.compressed:
            return stored
        try:
            return decompress_chunk(stored)
        except zstandard.ZstdError as exc:
            raise ChunkInvalid(chunk_id, self.location, f"not a valid zstd frame ({exc})") from exc

    def verify_many(
        self, chunk_ids: Sequence[bytes], contents: Sequence[bytes | StorageProblem], digest: Digest
    ) -> list[bytes | StorageProblem]:
        """Verify a batch of unpacked chunks, hashing them all at once (:meth:`Digest.of_many`).

        Args:
            contents: Each chunk's unpacked bytes, or the problem met getting it (passed through).

        Returns:
            Each chunk's bytes, or its :class:`StorageProblem` (what was passed, or
            :class:`ChunkInvalid` when the bytes do not hash to the chunk's ID).
        """
        results = list(contents)
        positions: list[int] = []
        found: list[bytes] = []
        for position, data in enumerate(results):
            if not isinstance(data, StorageProblem):
                positions.append(position)
                found.append(data)
        for position, data, actual in zip(positions, found, digest.of_many(found), strict=True):
            if actual != chunk_ids[position]:
                results[position] = StorageProblem(self._mismatch(chunk_ids[position], data, actual, digest))
        return results

    def _mismatch(self, chunk_id: bytes, data: bytes, actual: bytes, digest: Digest) -> ChunkInvalid:
        return ChunkInvalid(
            chunk_id, self.location, f"its {len(data)} bytes hash to {actual.hex()} ({digest.value})"
        )


class StorageProblem:
    """A failed chunk inside a batch result: holds the exception that would have been raised."""

    __slots__ = ("error",)

    def __init__(self, error: ChunkMissing | ChunkInvalid) -> None:
        self.error = error

    @property
    def missing(self) -> bool:
        return isinstance(self.error, ChunkMissing)

    def __repr__(self) -> str:
        return f"<StorageProblem {self.error}>"
