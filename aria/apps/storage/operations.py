"""The storage operations behind ``aria storage <verb>`` and the Python API, all trio-native.

Every operation streams: files are read and written in blocks with ``os.pread``/``os.pwrite`` in
worker threads, chunks travel in batches through bounded pipelines (:func:`map_ordered`), and at most
``concurrency`` batches are in flight, so memory stays flat whatever the file size. Hashing, zstd
and file I/O release the GIL, so the batches really run on all cores.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import stat
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from aria.apps.storage.errors import ChunkInvalid, ChunkMissing, ContentMismatch, StorageError
from aria.apps.storage.format import (
    BLOB_INDEX_FLAGS,
    FLAG_SHA512_256,
    Digest,
    Index,
    IndexChunk,
    read_index,
)
from aria.apps.storage.pipeline import Progress, default_concurrency, map_ordered, single_errors
from aria.apps.storage.sizes import ChunkSizes
from aria.apps.storage.stores import LocalStore, StorageProblem, Store

#: Bytes read and scanned per job by ``make``.
READ_BLOCK = 1 << 20
#: A batch of chunks handed to one worker: at most this many bytes or chunks.
BATCH_BYTES = 1 << 20
BATCH_CHUNKS = 256
#: Extract's batches from a local store or seeds: larger, so that each worker hashes more chunks
#: side by side (:meth:`Digest.of_many`) and writes more of them per system call (measured: 4 MiB
#: costs the same CPU as 2 MiB, and 8 MiB more peak memory for a 1 GiB file).
EXTRACT_BATCH_BYTES = 2 << 20
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16

Chunk = bytes | memoryview


@dataclass
class MakeStats:
    """What ``make`` did: chunks in the index, distinct ones, how many were new to the store."""

    chunks: int = 0
    unique: int = 0
    written: int = 0
    size: int = 0
    sha256: str = ""


@dataclass
class ExtractStats:
    """Where ``extract`` got each distinct chunk from."""

    unique: int = 0
    from_seeds: int = 0
    from_store: int = 0
    null_chunks: int = 0
    bytes_fetched: int = 0


@dataclass
class VerifyReport:
    checked: int = 0
    invalid: list[ChunkInvalid] = field(default_factory=list)
    removed: int = 0


@dataclass
class CacheStats:
    unique: int = 0
    present: int = 0
    copied: int = 0


class _items(AsyncIterator[Any]):
    """An iterable as an async iterator (a class: an async generator abandoned mid-way warns)."""

    def __init__(self, iterable: Iterable[Any]) -> None:
        self._iterator = iter(iterable)

    async def __anext__(self) -> Any:
        try:
            return next(self._iterator)
        except StopIteration:
            raise StopAsyncIteration from None


def _open_regular(path: Path) -> tuple[int, int]:
    """An fd and the size of a regular file, with errors that name it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise StorageError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise StorageError(f"{str(path)!r} is not a regular file")
    return fd, info.st_size


# make ------------------------------------------------------------------------------------------


async def make(
    source: str | os.PathLike[str],
    store: Store | None,
    *,
    sizes: ChunkSizes | None = None,
    digest: Digest = Digest.SHA512_256,
    concurrency: int | None = None,
    progress: Progress | None = None,
) -> tuple[Index, MakeStats]:
    """Chunk a file into an index, storing each chunk the store does not hold yet.

    Args:
        source: A regular file.
        store: Where chunks go; None only computes the index (desync's ``make`` without ``-s``).
        sizes: The chunker's min/avg/max (desync's defaults if None).
        digest: SHA-512/256 (the default) or SHA-256; recorded in the index's flags.
        concurrency: Parallel jobs (scanning, hashing, storing); the number of cores if None.
        progress: Advanced by the bytes processed.

    Returns:
        The index (as desync would write it for this file) and what was done. Re-running after an
        interruption writes only the chunks still missing, since stores skip what they hold.

    Raises:
        StorageError: if the file cannot be read or is not a regular file.
        StoreFailure: if the store fails.
    """
    path = Path(source)
    fd, _ = await trio.to_thread.run_sync(_open_regular, path)
    try:
        return await make_from_stream(
            _FileBlocks(fd, path),
            store,
            sizes=sizes,
            digest=digest,
            concurrency=concurrency,
            progress=progress,
        )
    finally:
        os.close(fd)


class _FileBlocks(AsyncIterator[bytes]):
    """A file's content in ``READ_BLOCK`` pieces, each read in a worker thread."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self._path = path

    async def __anext__(self) -> bytes:
        def read() -> bytes:
            try:
                return os.read(self._fd, READ_BLOCK)
            except OSError as exc:
                raise StorageError(f"cannot read {str(self._path)!r}: {exc.strerror or exc}") from exc

        block = await trio.to_thread.run_sync(read)
        if not block:
            raise StopAsyncIteration
        return block


class _Numbered(AsyncIterator[tuple[int, bytes, bytes]]):
    """``(offset, the 47 bytes before it, block)`` for each non-empty block of a byte stream."""

    def __init__(self, blocks: AsyncIterable[bytes]) -> None:
        self._blocks = aiter(blocks)
        self._offset = 0
        self._tail = b""
        self.total = 0

    async def __anext__(self) -> tuple[int, bytes, bytes]:
        block = b""
        while not block:
            block = bytes(await anext(self._blocks))
        item = (self._offset, self._tail, block)
        self._tail = (self._tail + block[-47:])[-47:]
        self._offset += len(block)
        self.total = self._offset
        return item


async def make_from_stream(
    blocks: AsyncIterable[bytes],
    store: Store | None,
    *,
    sizes: ChunkSizes | None = None,
    digest: Digest = Digest.SHA512_256,
    concurrency: int | None = None,
    progress: Progress | None = None,
    content_sha256: bool = False,
    announce: Callable[[list[bytes]], Awaitable[None]] | None = None,
) -> tuple[Index, MakeStats]:
    """Chunk a stream of bytes (an upload, a pipe, a file) into an index, storing its chunks.

    The stream is consumed once, in order, and never held whole: blocks are scanned for chunk
    boundaries ``concurrency // 2`` at a time, cut in order, then hashed and stored in parallel
    batches. This is what :func:`make` runs on a file, and what an asset upload runs on its body.

    Args:
        blocks: The content, in pieces of any size (empty pieces are skipped).
        content_sha256: Also compute the SHA-256 of the whole content (``stats.sha256``), as an
            asset's content ID.
        announce: Awaited with the IDs of each batch's chunks new to this stream, before the batch
            is written (or found already stored); every distinct chunk is announced once. The asset
            catalog records them there, so a concurrent gc keeps them.

    Returns:
        The index and what was done; see :func:`make`.
    """
    # Imported here: the chunker may bring numpy (its fallback scan); other verbs start faster.
    from aria.apps.storage.chunker import BoundaryWalker, find_candidates

    sizes = sizes or ChunkSizes()
    jobs = concurrency or default_concurrency()
    discriminator = sizes.discriminator
    ends: list[int] = []
    ids: list[bytes] = []
    stats = MakeStats()
    seen: set[bytes] = set()
    whole = hashlib.sha256() if content_sha256 else None
    numbered = _Numbered(blocks)

    def scan(offset: int, lookback: bytes, data: bytes) -> tuple[int, memoryview, list[int]]:
        found = find_candidates(data, offset, discriminator)
        if lookback:  # windows that end in this block's first 47 bytes start in the previous one
            seam = find_candidates(lookback + data[:47], offset - len(lookback), discriminator)
            found = [position for position in seam if position > offset] + found
        return offset, memoryview(data), found

    async def scan_job(item: tuple[int, bytes, bytes]) -> tuple[int, memoryview, list[int]]:
        return await trio.to_thread.run_sync(scan, *item)

    async def cut(blocks: trio.MemoryReceiveChannel, batches: trio.MemorySendChannel) -> None:
        walker = BoundaryWalker(sizes)
        segments: list[tuple[int, memoryview]] = []
        previous = 0
        batch: list[Chunk] = []
        batch_bytes = 0

        async def emit(decided: list[int]) -> None:
            nonlocal previous, batch, batch_bytes
            for end in decided:
                chunk = _slice(segments, previous, end)
                ends.append(end)
                batch.append(chunk)
                batch_bytes += end - previous
                previous = end
                if batch_bytes >= BATCH_BYTES or len(batch) >= BATCH_CHUNKS:
                    await batches.send(batch)
                    batch, batch_bytes = [], 0
            while segments and segments[0][0] + len(segments[0][1]) <= previous:
                segments.pop(0)

        async with batches:
            known = 0
            async for offset, data, found in blocks:
                if whole is not None:
                    await trio.to_thread.run_sync(whole.update, data)
                walker.add_candidates(found)
                segments.append((offset, data))
                known = offset + len(data)
                await emit(walker.cuts(known, final=False))
            await emit(walker.cuts(known, final=True))
            if batch:
                await batches.send(batch)

    async def store_job(batch: list[Chunk]) -> list[bytes]:
        batch_ids = await trio.to_thread.run_sync(digest.of_many, batch)
        if store is not None:
            fresh = []
            for chunk_id, chunk in zip(batch_ids, batch, strict=True):
                if chunk_id not in seen:
                    seen.add(chunk_id)
                    fresh.append((chunk_id, chunk))
            if fresh:
                if announce is not None:
                    await announce([chunk_id for chunk_id, _ in fresh])
                count = await store.put_chunks(fresh)
                stats.written += count  # after the await: concurrent jobs must not lose updates
        if progress is not None:
            progress.advance(sum(len(chunk) for chunk in batch))
        return batch_ids

    with single_errors():
        async with trio.open_nursery() as nursery:
            # Half the workers scan, the rest hash and store: numpy's many short GIL releases make
            # scanners contend with each other (measured: two scanners on two cores cost 5x the
            # system time of one, for the same wall time).
            scanners = max(1, jobs // 2)
            scanned = map_ordered(nursery, numbered, scan_job, scanners)
            batches_in, batches_out = trio.open_memory_channel[list[Chunk]](0)
            nursery.start_soon(cut, scanned, batches_in)
            async for batch_ids in map_ordered(nursery, batches_out, store_job, jobs):
                ids.extend(batch_ids)
    flags = BLOB_INDEX_FLAGS if digest is Digest.SHA512_256 else BLOB_INDEX_FLAGS & ~FLAG_SHA512_256
    index = Index.from_ends(flags, sizes.as_tuple(), ends, ids)
    stats.size = numbered.total
    stats.chunks = len(ids)
    stats.unique = len(set(ids))
    if whole is not None:
        stats.sha256 = whole.hexdigest()
    return index, stats


def _slice(segments: list[tuple[int, memoryview]], start: int, end: int) -> Chunk:
    """Bytes ``[start, end)`` from consecutive segments; a view when one segment holds them all."""
    parts = []
    for offset, data in segments:
        stop = offset + len(data)
        if stop <= start:
            continue
        if offset >= end:
            break
        parts.append(data[max(start - offset, 0) : min(end, stop) - offset])
    return parts[0] if len(parts) == 1 else b"".join(parts)


# extract ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SeedChunk:
    fd: int
    offset: int


def _looks_like_index(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return len(head) == 16 and int.from_bytes(head[8:16], "little") == 0x96824D9C7B129FF9


async def extract(
    index: Index,
    output: str | os.PathLike[str],
    store: Store | None,
    *,
    seeds: Sequence[str | os.PathLike[str]] = (),
    seed_output: bool = True,
    concurrency: int | None = None,
    progress: Progress | None = None,
) -> ExtractStats:
    """Rebuild a blob from its index, taking chunks from seeds first and the store for the rest.

    The delta sync: a chunk whose ID appears in a seed is copied from there (after re-hashing the
    seed's bytes, so a seed that changed since its index was made is harmless); only the others are
    fetched. A seed is either an index file (its blob is the same path without the extension, as
    desync's ``--seed``) or any other file, which is chunked with the index's sizes to find what it
    shares. The existing output is a seed too (``seed_output``). All-zero max-size chunks are
    never fetched: the output starts as a sparse file of zeros.

    The output is written to a temporary file beside it and renamed over it at the end, so a failure
    leaves the previous file untouched.

    Raises:
        ChunkMissing: naming the first chunk that neither a seed nor the store has (and how many
            more), after trying all of them; the output is not changed.
        ChunkInvalid: if the store returns a chunk that does not match its ID.
        StorageError: for unreadable seeds or an unwritable output.
    """
    jobs = concurrency or default_concurrency()
    output = Path(output)
    digest = index.digest
    sizes_of: dict[bytes, int] = {}
    places: dict[bytes, list[int]] = {}
    for chunk in index.chunks:
        sizes_of.setdefault(chunk.id, chunk.size)
        places.setdefault(chunk.id, []).append(chunk.start)
    null_id = digest.of(bytes(index.chunk_size_max))
    stats = ExtractStats(unique=len(places))
    seed_fds: list[int] = []
    seed_map: dict[bytes, _SeedChunk] = {}
    seed_paths = [Path(seed) for seed in seeds]
    if seed_output and output.is_file():
        seed_paths.append(output)
    try:
        for seed in seed_paths:
            await _add_seed(seed, index, digest, places, seed_map, seed_fds, jobs)
        await _write_output(index, output, store, places, sizes_of, null_id, seed_map, stats, jobs, progress)
    finally:
        for fd in seed_fds:
            os.close(fd)
    return stats


async def _add_seed(
    seed: Path,
    index: Index,
    digest: Digest,
    wanted: dict[bytes, list[int]],
    seed_map: dict[bytes, _SeedChunk],
    seed_fds: list[int],
    jobs: int,
) -> None:
    if await trio.to_thread.run_sync(_looks_like_index, seed):
        seed_index = await trio.to_thread.run_sync(read_index, seed)
        blob = seed.with_suffix("") if seed.suffix in (".caibx", ".caidx") else seed
        if seed_index.digest is not digest:
            return  # IDs of another digest can never match
    else:
        blob = seed
        seed_index, _ = await make(
            seed,
            None,
            sizes=ChunkSizes(index.chunk_size_min, index.chunk_size_avg, index.chunk_size_max),
            digest=digest,
            concurrency=jobs,
        )
    fd, _ = await trio.to_thread.run_sync(_open_regular, blob)
    seed_fds.append(fd)
    for chunk in seed_index.chunks:
        if chunk.id in wanted and chunk.id not in seed_map:
            seed_map[chunk.id] = _SeedChunk(fd, chunk.start)


async def _write_output(
    index: Index,
    output: Path,
    store: Store | None,
    places: dict[bytes, list[int]],
    sizes_of: dict[bytes, int],
    null_id: bytes,
    seed_map: dict[bytes, _SeedChunk],
    stats: ExtractStats,
    jobs: int,
    progress: Progress | None,
) -> None:
    digest = index.digest
    temporary = output.parent / f".{output.name}.aria-{secrets.token_hex(6)}"
    missing: list[bytes] = []
    # One writer at a time: the kernel serialises writes to a file anyway, and a second writer
    # spins on the file's lock meanwhile (measured: twice the system time of one writer for the same
    # wall time); on this lock it sleeps.
    write_lock = threading.Lock()

    def write(pieces: list[tuple[int, bytes]]) -> None:
        with write_lock:
            _write_pieces(fd, pieces)

    def create() -> int:
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.ftruncate(fd, index.length)
        except OSError as exc:
            raise StorageError(f"cannot write {str(output)!r}: {exc.strerror or exc}") from exc
        return fd

    fd = await trio.to_thread.run_sync(create)

    def place(chunk_id: bytes, data: bytes, pieces: list[tuple[int, bytes]]) -> None:
        for start in places[chunk_id]:
            pieces.append((start, data))

    def from_seeds(batch: list[bytes], pieces: list[tuple[int, bytes]]) -> tuple[list[bytes], int]:
        """Verify what the seeds hold and add it to ``pieces``; returns the IDs still needed and how
        many were found."""
        rest = [chunk_id for chunk_id in batch if chunk_id not in seed_map]
        seeded = [chunk_id for chunk_id in batch if chunk_id in seed_map]
        found = [os.pread(seed_map[c].fd, sizes_of[c], seed_map[c].offset) for c in seeded]
        copied = 0
        for chunk_id, data, actual in zip(seeded, found, digest.of_many(found), strict=True):
            if actual == chunk_id:
                place(chunk_id, data, pieces)
                copied += 1
            else:  # the seed changed since its index was made: fetch the chunk instead
                rest.append(chunk_id)
        return rest, copied

    def from_results(
        chunk_ids: list[bytes], results: list[bytes | StorageProblem], pieces: list[tuple[int, bytes]]
    ) -> tuple[int, int]:
        """Add a store's verified chunks to ``pieces`` and note the missing ones; returns (chunks,
        bytes) found. Raises a chunk's error if it is invalid."""
        placed = fetched = 0
        for chunk_id, result in zip(chunk_ids, results, strict=True):
            if isinstance(result, StorageProblem):
                if not result.missing:
                    raise result.error
                missing.append(chunk_id)
                continue
            place(chunk_id, result, pieces)
            placed += 1
            fetched += len(result)
        return placed, fetched

    def worker(batches: list[list[bytes]], turns: Iterator[int]) -> tuple[int, int, int]:
        """Take batches in turn until none is left: from seeds, then from the local store (or
        noted missing), each batch written at once. Returns (from seeds, from store, bytes fetched)."""
        seeded = placed = fetched = 0
        for turn in turns:  # a shared itertools.count: each batch goes to one worker
            trio.from_thread.check_cancelled()
            if turn >= len(batches):
                break
            batch = batches[turn]
            pieces: list[tuple[int, bytes]] = []
            rest, copied = from_seeds(batch, pieces) if seed_map else (batch, 0)
            seeded += copied
            if isinstance(store, LocalStore):
                more, size = from_results(rest, store.get_many_blocking(rest, digest), pieces)
                placed, fetched = placed + more, fetched + size
            else:
                missing.extend(rest)
            write(pieces)
            if progress is not None:
                trio.from_thread.run_sync(progress.advance, sum(sizes_of[c] * len(places[c]) for c in batch))
        return seeded, placed, fetched

    async def run_worker(batches: list[list[bytes]], turns: Iterator[int]) -> None:
        seeded, placed, fetched = await trio.to_thread.run_sync(worker, batches, turns)
        stats.from_seeds += seeded
        stats.from_store += placed
        stats.bytes_fetched += fetched

    async def job(batch: list[bytes]) -> None:
        pieces: list[tuple[int, bytes]] = []
        rest = batch
        if seed_map:
            rest, copied = await trio.to_thread.run_sync(from_seeds, batch, pieces)
            stats.from_seeds += copied
        if rest:
            if store is None:
                missing.extend(rest)
            else:
                results = await store.get_chunks(rest, digest)
                placed, fetched = from_results(rest, results, pieces)
                stats.from_store += placed
                stats.bytes_fetched += fetched
        if pieces:
            await trio.to_thread.run_sync(write, pieces)
        if progress is not None:
            progress.advance(sum(sizes_of[c] * len(places[c]) for c in batch))

    async def fill() -> None:
        work = []
        for chunk_id in places:
            if chunk_id == null_id and sizes_of[chunk_id] == index.chunk_size_max:
                stats.null_chunks += 1
                if progress is not None:
                    progress.advance(sizes_of[chunk_id] * len(places[chunk_id]))
                continue
            work.append(chunk_id)
        with single_errors():
            async with trio.open_nursery() as nursery:
                if store is None or isinstance(store, LocalStore):
                    # Everything is local: each worker thread takes batches in turn by itself, with
                    # no round trip through trio per batch (measured: the main thread's share of a
                    # 256 MiB extract's CPU went from ~0.2 s to ~0.02 s).
                    batches = list(_batches(work, sizes_of, EXTRACT_BATCH_BYTES))
                    turns = itertools.count()
                    for _ in range(min(jobs, len(batches))):
                        nursery.start_soon(run_worker, batches, turns)
                else:
                    async for _ in map_ordered(nursery, _items(_batches(work, sizes_of)), job, jobs):
                        pass
        if missing:
            location = store.location if store else "(none given)"
            raise ChunkMissing(missing[0], location, also_missing=len(missing) - 1)

    def finish() -> None:
        # No fsync, like desync and casync: the rename keeps readers from seeing a partial file.
        os.close(fd)
        os.replace(temporary, output)

    try:
        try:
            await fill()
        except BaseException:
            os.close(fd)
            raise
        await trio.to_thread.run_sync(finish)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def _write_pieces(fd: int, pieces: list[tuple[int, bytes]]) -> None:
    """Write each ``(offset, data)`` into ``fd``, pieces that follow each other in one ``pwritev``.

    A batch's chunks mostly lie end to end in the output, so this is a few system calls (and takes
    the file's lock a few times, not once per chunk while another worker writes too).
    """
    pieces.sort(key=_first)
    run: list[bytes] = []
    run_start = run_end = 0
    for offset, data in pieces:
        if run and (offset != run_end or len(run) == _IOV_MAX):
            _pwrite_all(fd, run, run_start)
            run = []
        if not run:
            run_start = run_end = offset
        run.append(data)
        run_end += len(data)
    if run:
        _pwrite_all(fd, run, run_start)


def _first(piece: tuple[int, bytes]) -> int:
    return piece[0]


def _pwrite_all(fd: int, buffers: list[bytes], offset: int) -> None:
    written = os.pwritev(fd, buffers, offset)
    if written < sum(len(buffer) for buffer in buffers):  # a short write: rare, but legal
        rest = memoryview(b"".join(buffers))[written:]
        offset += written
        while rest:
            count = os.pwrite(fd, rest, offset)
            rest, offset = rest[count:], offset + count


def _batches(
    chunk_ids: list[bytes], sizes_of: dict[bytes, int], batch_bytes: int = BATCH_BYTES
) -> Iterable[list[bytes]]:
    batch: list[bytes] = []
    total = 0
    for chunk_id in chunk_ids:
        batch.append(chunk_id)
        total += sizes_of[chunk_id]
        if total >= batch_bytes or len(batch) >= BATCH_CHUNKS:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


# cat -------------------------------------------------------------------------------------------


async def cat(
    index: Index,
    store: Store,
    sink: Callable[[bytes], Awaitable[None]],
    *,
    offset: int = 0,
    length: int | None = None,
    concurrency: int | None = None,
) -> int:
    """Stream ``length`` bytes of the blob from ``offset`` (to the end if None) into ``sink``.

    Chunks are fetched ``concurrency`` at a time ahead of the writer and verified like every read.

    Returns:
        The number of bytes written.

    Raises:
        ValueError: for a negative offset or length, or an offset past the end.
        ChunkMissing, ChunkInvalid: for a chunk the store cannot give.
    """
    if offset < 0 or (length is not None and length < 0):
        raise ValueError(f"offset {offset} and length {length} must not be negative")
    if offset > index.length:
        raise ValueError(f"offset {offset} is past the end of the blob ({index.length} bytes)")
    stop = index.length if length is None else min(index.length, offset + length)
    jobs = concurrency or default_concurrency()
    digest = index.digest

    async def fetch(chunk: IndexChunk) -> bytes:
        data = await store.get_chunk(chunk.id, digest)
        return data[max(offset - chunk.start, 0) : min(stop, chunk.end) - chunk.start]

    written = 0
    with single_errors():
        async with trio.open_nursery() as nursery:
            pieces = map_ordered(nursery, _items(index.chunks_in_range(offset, stop - offset)), fetch, jobs)
            async for piece in pieces:
                await sink(piece)
                written += len(piece)
    return written


async def read_range(index: Index, store: Store, offset: int, length: int) -> bytes:
    """``length`` bytes of the blob from ``offset`` (fewer at the end), as one bytes object."""
    parts: list[bytes] = []

    async def collect(piece: bytes) -> None:
        parts.append(piece)

    await cat(index, store, collect, offset=offset, length=length)
    return b"".join(parts)


# chop ------------------------------------------------------------------------------------------


async def chop(
    index: Index,
    source: str | os.PathLike[str],
    store: Store,
    *,
    concurrency: int | None = None,
    progress: Progress | None = None,
) -> int:
    """Store the chunks of a file cut where an existing index says (desync's ``chop``).

    Returns:
        How many chunks were written (the others were already in the store).

    Raises:
        ContentMismatch: if the file's size differs from the index's, or a chunk of it does not hash
            to the ID the index records (naming the chunk's number and offset); chunks before it
            may already be stored, which is harmless: they are valid.
    """
    path = Path(source)
    fd, size = await trio.to_thread.run_sync(_open_regular, path)
    digest = index.digest
    jobs = concurrency or default_concurrency()
    written = 0
    numbered = list(enumerate(index.chunks))

    def read(batch: list[tuple[int, IndexChunk]]) -> list[tuple[bytes, bytes]]:
        chunks = []
        found = [os.pread(fd, chunk.size, chunk.start) for _, chunk in batch]
        for (number, chunk), data, actual in zip(batch, found, digest.of_many(found), strict=True):
            if actual != chunk.id:
                raise ContentMismatch(
                    f"{path} does not match its index: chunk {number} at offset {chunk.start} "
                    f"({chunk.size} bytes) hashes to {actual.hex()}, the index says {chunk.id.hex()}"
                )
            chunks.append((chunk.id, data))
        return chunks

    async def job(batch: list[tuple[int, IndexChunk]]) -> None:
        nonlocal written
        chunks = await trio.to_thread.run_sync(read, batch)
        count = await store.put_chunks(chunks)
        written += count
        if progress is not None:
            progress.advance(sum(chunk.size for _, chunk in batch))

    try:
        if size != index.length:
            raise ContentMismatch(f"{path} is {size} bytes but its index describes {index.length} bytes")
        batches = [numbered[i : i + 64] for i in range(0, len(numbered), 64)]
        with single_errors():
            async with trio.open_nursery() as nursery:
                async for _ in map_ordered(nursery, _items(batches), job, jobs):
                    pass
    finally:
        os.close(fd)
    return written


# verify, prune, info, cache --------------------------------------------------------------------


async def verify(
    store: Store,
    *,
    digest: Digest = Digest.SHA512_256,
    repair: bool = False,
    concurrency: int | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Read, decompress and re-hash every chunk of a store (desync's ``verify``).

    Args:
        repair: Delete the invalid chunks (desync's ``-r``), so a later ``make`` or ``cache`` puts
            good copies back.

    Returns:
        How many chunks were checked and which were invalid (each error names the chunk and store).
    """
    jobs = concurrency or default_concurrency()
    report = VerifyReport()
    chunk_ids = [chunk_id async for chunk_id in store.list_chunks()]

    async def job(batch: list[bytes]) -> None:
        results = await store.get_chunks(batch, digest)
        for result in results:
            if isinstance(result, StorageProblem) and isinstance(result.error, ChunkInvalid):
                report.invalid.append(result.error)
        report.checked += len(batch)
        if progress is not None:
            progress.advance(len(batch))

    with single_errors():
        async with trio.open_nursery() as nursery:
            batches = [chunk_ids[i : i + 64] for i in range(0, len(chunk_ids), 64)]
            async for _ in map_ordered(nursery, _items(batches), job, jobs):
                pass
    if repair:
        for error in report.invalid:
            await store.remove_chunk(error.chunk_id)
            report.removed += 1
    return report


async def prune(store: Store, indexes: Sequence[Index], *, dry_run: bool = False) -> list[bytes]:
    """Delete every chunk no given index references (and, in a local store, leftover temp files).

    Returns:
        The IDs deleted (or that would be, with ``dry_run``), sorted.

    Raises:
        ValueError: if no index is given (that would delete the whole store).
    """
    if not indexes:
        raise ValueError("prune needs at least one index: without one it would delete every chunk")
    keep: set[bytes] = set()
    for index in indexes:
        keep.update(chunk.id for chunk in index.chunks)
    doomed = sorted([chunk_id async for chunk_id in store.list_chunks() if chunk_id not in keep])
    if not dry_run:
        for chunk_id in doomed:
            await store.remove_chunk(chunk_id)
        if isinstance(store, LocalStore):
            await store.remove_temporaries()
    return doomed


async def info(index: Index, store: Store | None = None) -> dict[str, object]:
    """desync's ``info``: chunk counts, sizes, dedup size and, given a store, what it lacks."""
    unique = index.unique_ids()
    result: dict[str, object] = {
        "total-chunks": len(index.chunks),
        "unique-chunks": len(unique),
        "size": index.length,
        "dedup-size": index.dedup_size(),
        "chunk-size-min": index.chunk_size_min,
        "chunk-size-avg": index.chunk_size_avg,
        "chunk-size-max": index.chunk_size_max,
        "digest": index.digest.value,
        "dedup-ratio": round(index.length / index.dedup_size(), 3) if index.chunks else 1.0,
    }
    if store is not None:
        present = await store.has_chunks(unique)
        result["in-store"] = sum(present)
        result["not-in-store"] = len(unique) - sum(present)
        result["missing-chunks"] = [c.hex() for c, here in zip(unique, present, strict=True) if not here]
    return result


async def cache_chunks(
    indexes: Sequence[Index],
    source: Store,
    destination: Store,
    *,
    concurrency: int | None = None,
    progress: Progress | None = None,
) -> CacheStats:
    """Copy every chunk the indexes reference from ``source`` into ``destination`` unless there.

    Resumable: chunks already in ``destination`` are skipped. All copyable chunks are copied before
    a missing one is reported.

    Raises:
        ChunkMissing: for the first chunk ``source`` lacks (and how many more).
        ChunkInvalid: if ``source`` returns a bad chunk (nothing bad is copied).
    """
    jobs = concurrency or default_concurrency()
    wanted: dict[bytes, Digest] = {}
    for index in indexes:
        for chunk in index.chunks:
            wanted.setdefault(chunk.id, index.digest)
    stats = CacheStats(unique=len(wanted))
    missing: list[bytes] = []
    ids = list(wanted)

    async def job(batch: list[bytes]) -> None:
        present = await destination.has_chunks(batch)
        needed = [chunk_id for chunk_id, here in zip(batch, present, strict=True) if not here]
        stats.present += len(batch) - len(needed)
        by_digest: dict[Digest, list[bytes]] = {}
        for chunk_id in needed:
            by_digest.setdefault(wanted[chunk_id], []).append(chunk_id)
        for digest, group in by_digest.items():
            results = await source.get_chunks(group, digest)
            good = []
            for chunk_id, result in zip(group, results, strict=True):
                if isinstance(result, StorageProblem):
                    if not result.missing:
                        raise result.error
                    missing.append(chunk_id)
                else:
                    good.append((chunk_id, result))
            await destination.put_chunks(good)
            stats.copied += len(good)
        if progress is not None:
            progress.advance(len(batch))

    with single_errors():
        async with trio.open_nursery() as nursery:
            batches = [ids[i : i + 64] for i in range(0, len(ids), 64)]
            async for _ in map_ordered(nursery, _items(batches), job, jobs):
                pass
    if missing:
        raise ChunkMissing(missing[0], source.location, also_missing=len(missing) - 1)
    return stats


async def untar(
    archive: str | os.PathLike[str],
    target: str | os.PathLike[str],
    store: Store | None = None,
    *,
    concurrency: int | None = None,
) -> int:
    """Unpack a ``.catar`` archive, or a ``.caidx`` index of one (chunks from ``store``), into ``target``.

    An index is first extracted to a temporary file beside ``target`` (streamed, so memory stays
    flat), then unpacked; the temporary file is removed either way.

    Returns:
        The number of entries created.

    Raises:
        InvalidArchive, InvalidIndex: for a malformed archive or index.
        ValueError: for an index without a store.
    """
    from aria.apps.storage.catar import untar as unpack

    archive = Path(archive)
    target = Path(target)
    if not await trio.to_thread.run_sync(_looks_like_index, archive):

        def from_file() -> int:
            try:
                with open(archive, "rb") as stream:
                    return unpack(stream, target, str(archive))
            except OSError as exc:
                raise StorageError(f"cannot read {str(archive)!r}: {exc.strerror or exc}") from exc

        return await trio.to_thread.run_sync(from_file)
    if store is None:
        raise ValueError(f"{archive} is an index: unpacking it needs a store (-s STORE)")
    index = await trio.to_thread.run_sync(read_index, archive)
    temporary = target.parent / f".{target.name}.catar-{secrets.token_hex(6)}"
    try:
        await extract(index, temporary, store, seed_output=False, concurrency=concurrency)

        def from_temporary() -> int:
            with open(temporary, "rb") as stream:
                return unpack(stream, target, str(archive))

        return await trio.to_thread.run_sync(from_temporary)
    finally:
        with trio.CancelScope(shield=True):  # removed even when the unpacking was cancelled
            await trio.to_thread.run_sync(lambda: temporary.unlink(missing_ok=True))


async def tar(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    store: Store | None = None,
    *,
    sizes: ChunkSizes | None = None,
    digest: Digest = Digest.SHA512_256,
    concurrency: int | None = None,
) -> Index | None:
    """Archive a directory tree as a catar (desync's ``tar``), or chunk it into a store (``tar -i``).

    Args:
        source: The directory.
        output: Without a store, the ``.catar`` to write (atomically: a temporary file renamed);
            with a store it is ignored (pass None) and the archive is streamed into the chunker.
        store: Where the archive's chunks go; the returned index is then its ``.caidx``.

    Returns:
        The archive's index when a store is given, else None.

    Raises:
        StorageError: if the tree cannot be read, or the output cannot be written.
    """
    from aria.apps.storage.catar import ARCHIVE_FLAGS, write_catar

    source = Path(source)
    if store is None:
        if output is None:
            raise ValueError("tar needs an output file or a store")
        target = Path(output)
        temporary = target.parent / f".{target.name}.aria-{secrets.token_hex(6)}"

        def write() -> None:
            try:
                with open(temporary, "wb") as out:
                    write_catar(source, out)
                os.replace(temporary, target)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise

        await trio.to_thread.run_sync(write)
        return None
    send, receive = trio.open_memory_channel[bytes](1)

    async def produce() -> None:
        async with send:
            sink = _ChannelSink(send)

            def write() -> None:
                write_catar(source, sink)
                sink.flush()

            await trio.to_thread.run_sync(write)

    with single_errors():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            index, _ = await make_from_stream(
                receive, store, sizes=sizes, digest=digest, concurrency=concurrency
            )
    index.flags = ARCHIVE_FLAGS if digest is Digest.SHA512_256 else ARCHIVE_FLAGS & ~FLAG_SHA512_256
    return index


class _ChannelSink:
    """A file-like object for a worker thread that sends what is written, in 1 MiB pieces, to trio."""

    def __init__(self, channel: trio.MemorySendChannel[bytes]) -> None:
        self._channel = channel
        self._buffer = bytearray()

    def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= READ_BLOCK:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            trio.from_thread.run(self._channel.send, bytes(self._buffer))
            self._buffer.clear()


__all__ = [
    "CacheStats",
    "ExtractStats",
    "MakeStats",
    "VerifyReport",
    "cache_chunks",
    "cat",
    "chop",
    "extract",
    "info",
    "make",
    "make_from_stream",
    "prune",
    "read_range",
    "tar",
    "untar",
    "verify",
]
