"""A chunk store in a local directory, laid out as desync and casync do.

``<root>/<id[:4]>/<id>.cacnk`` (zstd) or ``<root>/<id[:4]>/<id>`` (uncompressed). A chunk is written
to ``.tmp-cacnk<random>`` in its prefix directory and renamed into place, so a reader or a crash
never sees half a chunk; ``prune`` removes such leftovers. A whole batch is served in one worker
thread (file I/O, zstd and hashing all release the GIL), so batches run in parallel on all cores.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import trio

from aria.apps.storage.errors import ChunkInvalid, ChunkMissing, StoreFailure
from aria.apps.storage.format import CHUNK_EXTENSION, CHUNK_ID_SIZE, Digest, compress_chunk
from aria.apps.storage.stores.base import StorageProblem, Store

TEMP_PREFIX = ".tmp-cacnk"
_HEX = frozenset("0123456789abcdef")


class LocalStore(Store):
    """A directory of chunk files.

    Args:
        root: The store's directory; created on the first write if missing.
        compressed: False for an uncompressed store (bare-ID files holding raw bytes).
    """

    def __init__(self, root: str | os.PathLike[str], *, compressed: bool = True) -> None:
        self.root = Path(root)
        self.location = str(self.root)
        self.compressed = compressed
        self._suffix = CHUNK_EXTENSION if compressed else ""

    def path_of(self, chunk_id: bytes) -> Path:
        hex_id = chunk_id.hex()
        return self.root / hex_id[:4] / f"{hex_id}{self._suffix}"

    # Blocking primitives (run in worker threads) ----------------------------------------------

    def get_blocking(self, chunk_id: bytes, digest: Digest) -> bytes:
        return self.decode(chunk_id, self._read(chunk_id), digest)

    def get_many_blocking(self, chunk_ids: Sequence[bytes], digest: Digest) -> list[bytes | StorageProblem]:
        """Read and verify a batch (hashed all at once); a missing or invalid chunk is its problem.

        Raises:
            StoreFailure: if a chunk file exists but cannot be read.
        """
        contents: list[bytes | StorageProblem] = []
        for chunk_id in chunk_ids:
            try:
                # Unpacked as soon as read: only one compressed chunk is held at a time.
                contents.append(self.unpack(chunk_id, self._read(chunk_id)))
            except (ChunkMissing, ChunkInvalid) as problem:
                contents.append(StorageProblem(problem))
        return self.verify_many(chunk_ids, contents, digest)

    def _read(self, chunk_id: bytes) -> bytes:
        hex_id = chunk_id.hex()
        path = f"{self.location}/{hex_id[:4]}/{hex_id}{self._suffix}"  # a Path per chunk costs more
        try:
            # os-level calls: open() would add a tty check and two seeks to every chunk read.
            fd = os.open(path, os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                data = os.read(fd, size)
                while len(data) < size:  # short reads are legal, if rare on regular files
                    more = os.read(fd, size - len(data))
                    if not more:
                        break
                    data += more
                return data
            finally:
                os.close(fd)
        except FileNotFoundError:
            raise ChunkMissing(chunk_id, self.location) from None
        except OSError as exc:
            raise StoreFailure(self.location, f"reading {path}", exc.strerror or str(exc)) from exc

    async def get_chunk_as(self, chunk_id: bytes, digest: Digest, *, compressed: bool) -> bytes:
        def read() -> bytes:
            stored = self._read(chunk_id)
            data = self.decode(chunk_id, stored, digest)  # verified either way
            if compressed == self.compressed:
                return stored
            return compress_chunk(data) if compressed else data

        return await trio.to_thread.run_sync(read)

    def has_blocking(self, chunk_id: bytes) -> bool:
        return self.path_of(chunk_id).exists()

    def put_blocking(self, chunk_id: bytes, data: bytes | memoryview) -> bool:
        path = self.path_of(chunk_id)
        if path.exists():
            return False
        encoded = self.encode(data)
        directory = path.parent
        temporary = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            try:
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:
                directory.mkdir(mode=0o755, parents=True, exist_ok=True)
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(encoded)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(temporary, path)
        except OSError as exc:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise StoreFailure(
                self.location, f"writing chunk {chunk_id.hex()}", exc.strerror or str(exc)
            ) from exc
        return True

    def remove_blocking(self, chunk_id: bytes) -> None:
        try:
            os.unlink(self.path_of(chunk_id))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreFailure(
                self.location, f"removing chunk {chunk_id.hex()}", exc.strerror or str(exc)
            ) from exc

    def scan_blocking(self) -> tuple[list[bytes], list[Path]]:
        """Every chunk ID of this store's kind, and every leftover temporary file."""
        ids: list[bytes] = []
        temporaries: list[Path] = []
        try:
            prefixes = list(os.scandir(self.root))
        except FileNotFoundError:
            return ids, temporaries
        except OSError as exc:
            raise StoreFailure(self.location, "listing chunks", exc.strerror or str(exc)) from exc
        width = 2 * CHUNK_ID_SIZE
        for prefix in prefixes:
            if len(prefix.name) != 4 or not prefix.is_dir():
                continue
            for entry in os.scandir(prefix.path):
                name = entry.name
                if name.startswith(TEMP_PREFIX):
                    temporaries.append(Path(entry.path))
                    continue
                hex_id = name[:width]
                if (
                    len(name) == width + len(self._suffix)
                    and name.endswith(self._suffix)
                    and hex_id.startswith(prefix.name)
                    and set(hex_id) <= _HEX
                ):
                    ids.append(bytes.fromhex(hex_id))
        return ids, temporaries

    # The async interface ----------------------------------------------------------------------

    async def get_chunk(self, chunk_id: bytes, digest: Digest = Digest.SHA512_256) -> bytes:
        return await trio.to_thread.run_sync(self.get_blocking, chunk_id, digest)

    async def has_chunk(self, chunk_id: bytes) -> bool:
        return await trio.to_thread.run_sync(self.has_blocking, chunk_id)

    async def put_chunk(self, chunk_id: bytes, data: bytes | memoryview) -> bool:
        return await trio.to_thread.run_sync(self.put_blocking, chunk_id, data)

    async def remove_chunk(self, chunk_id: bytes) -> None:
        await trio.to_thread.run_sync(self.remove_blocking, chunk_id)

    async def list_chunks(self) -> AsyncIterator[bytes]:
        ids, _ = await trio.to_thread.run_sync(self.scan_blocking)
        for chunk_id in ids:
            yield chunk_id

    async def remove_temporaries(self, *, older_than: float = 0.0) -> int:
        """Delete leftover temporary files of interrupted writes; returns how many.

        Args:
            older_than: Only those last modified this many seconds ago or more, so that writes in
                progress (another process putting chunks) keep theirs.
        """

        def remove() -> int:
            _, temporaries = self.scan_blocking()
            cutoff = time.time() - older_than
            removed = 0
            for path in temporaries:
                try:
                    if older_than and path.stat().st_mtime > cutoff:
                        continue
                    path.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
            return removed

        return await trio.to_thread.run_sync(remove)

    async def get_chunks(
        self, chunk_ids: Sequence[bytes], digest: Digest = Digest.SHA512_256
    ) -> list[bytes | StorageProblem]:
        return await trio.to_thread.run_sync(self.get_many_blocking, chunk_ids, digest)

    async def has_chunks(self, chunk_ids: Sequence[bytes]) -> list[bool]:
        return await trio.to_thread.run_sync(lambda: [self.has_blocking(c) for c in chunk_ids])

    async def put_chunks(self, chunks: Sequence[tuple[bytes, bytes | memoryview]]) -> int:
        return await trio.to_thread.run_sync(lambda: sum(self.put_blocking(c, d) for c, d in chunks))
