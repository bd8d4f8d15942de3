"""Operations on local and memory stores: make, extract with seeds, cat, chop, verify, prune, info, cache."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from aria.apps.storage import operations
from aria.apps.storage.chunker import ChunkSizes
from aria.apps.storage.errors import ChunkInvalid, ChunkMissing, ContentMismatch, StorageError
from aria.apps.storage.format import Digest, Index, compress_chunk, read_index
from aria.apps.storage.pipeline import Progress
from aria.apps.storage.stores import (
    CacheStore,
    LocalStore,
    MemoryStore,
    RouterStore,
    StorageProblem,
    open_store,
)

BLOB1_SHA256 = "eb2fb317e36a1296ee6018371ca621017634f4a4790e4990846126b251147fca"
BLOB2_SHA256 = "e26d0014dd1df50931d32f4ab518efb1ddc2f6d1eb842b3aa1bade2c0c33b01f"
SMALL = ChunkSizes(2048, 8192, 32768)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def blob1_store(desync_data: Path, tmp_path: Path) -> Path:
    """A writable copy of desync's blob1.store."""
    copy = tmp_path / "blob1.store"
    shutil.copytree(desync_data / "blob1.store", copy)
    return copy


def overwrite_start(path: Path, data: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.write(data)


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def random_file(path: Path, size: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


class TestMake:
    async def test_make_reproduces_desync_and_writes_a_desync_store(
        self, desync_data: Path, tmp_path: Path
    ) -> None:
        store = LocalStore(tmp_path / "store")
        index, stats = await operations.make(desync_data / "blob1", store, sizes=SMALL, concurrency=2)
        assert index.to_bytes() == (desync_data / "blob1.caibx").read_bytes()
        assert (stats.chunks, stats.unique, stats.written, stats.size) == (161, 131, 131, 2097152)
        files = sorted(p.relative_to(tmp_path / "store") for p in (tmp_path / "store").rglob("*.cacnk"))
        expected = sorted(
            p.relative_to(desync_data / "blob1.store") for p in (desync_data / "blob1.store").rglob("*.cacnk")
        )
        assert files == expected
        assert oct((tmp_path / "store" / files[0]).stat().st_mode & 0o777) == "0o644"

    async def test_default_sizes_match_desyncs_chunker_vector(self, desync_data: Path) -> None:
        index, _ = await operations.make(desync_data / "chunker.input", None)
        assert index.to_bytes() == (desync_data / "chunker.index").read_bytes()

    async def test_block_boundaries_do_not_change_the_cuts(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Reading in small blocks (chunks spanning several blocks) gives the same index."""
        random_file(tmp_path / "data", 300_000, seed=1)
        expected, _ = await operations.make(tmp_path / "data", None, sizes=ChunkSizes(64, 1024, 4096))
        monkeypatch.setattr(operations, "READ_BLOCK", 1000)
        monkeypatch.setattr(operations, "BATCH_CHUNKS", 3)
        small, _ = await operations.make(
            tmp_path / "data", None, sizes=ChunkSizes(64, 1024, 4096), concurrency=3
        )
        assert small.to_bytes() == expected.to_bytes()

    async def test_a_stream_in_pieces_of_any_size_gives_the_same_index(self, desync_data: Path) -> None:
        """An upload arrives in arbitrary pieces; the index and the content's SHA-256 do not care."""
        blob = (desync_data / "blob1").read_bytes()
        rng = random.Random(4)
        pieces = []
        position = 0
        while position < len(blob):
            size = rng.choice([0, 1, 47, 48, 1000, 70_000, 300_000])
            pieces.append(blob[position : position + size])
            position += size

        async def stream() -> AsyncIterator[bytes]:
            for piece in pieces:
                yield piece

        store = MemoryStore()
        index, stats = await operations.make_from_stream(stream(), store, sizes=SMALL, content_sha256=True)
        assert index.to_bytes() == (desync_data / "blob1.caibx").read_bytes()
        assert stats.sha256 == BLOB1_SHA256 and stats.size == len(blob)
        assert len(store.chunks) == 131

    async def test_sha256_mode(self, tmp_path: Path) -> None:
        data = random_file(tmp_path / "data", 100_000, seed=2)
        store = MemoryStore()
        index, _ = await operations.make(tmp_path / "data", store, sizes=SMALL, digest=Digest.SHA256)
        assert index.flags == 0x8000000000000000
        assert index.chunks[0].id == hashlib.sha256(data[: index.chunks[0].size]).digest()
        await operations.extract(Index.from_bytes(index.to_bytes()), tmp_path / "out", store)
        assert (tmp_path / "out").read_bytes() == data

    async def test_empty_file_gives_an_empty_index(self, tmp_path: Path) -> None:
        (tmp_path / "empty").write_bytes(b"")
        index, stats = await operations.make(tmp_path / "empty", MemoryStore())
        assert len(index.to_bytes()) == 104 and stats.chunks == 0
        await operations.extract(index, tmp_path / "out", MemoryStore())
        assert (tmp_path / "out").read_bytes() == b""

    async def test_rerun_after_an_interruption_stores_only_what_is_missing(self, tmp_path: Path) -> None:
        random_file(tmp_path / "data", 400_000, seed=3)
        store = LocalStore(tmp_path / "store")
        index, first = await operations.make(tmp_path / "data", store, sizes=SMALL)
        removed = index.unique_ids()[::3]
        for chunk_id in removed:
            store.path_of(chunk_id).unlink()
        # A crash mid-write leaves only a temp file, never a partial chunk under its real name.
        (store.path_of(removed[0]).parent / ".tmp-cacnkdeadbeef").write_bytes(b"half")
        _, second = await operations.make(tmp_path / "data", store, sizes=SMALL)
        assert second.written == len(removed)
        assert first.written == len(index.unique_ids())

    async def test_unreadable_and_odd_inputs(self, tmp_path: Path) -> None:
        with pytest.raises(StorageError, match=r"cannot read '.*missing': No such file"):
            await operations.make(tmp_path / "missing", None)
        with pytest.raises(StorageError, match="is not a regular file"):
            await operations.make(tmp_path, None)
        secret = tmp_path / "secret"
        secret.write_bytes(b"x")
        secret.chmod(0)
        if os.geteuid() != 0:  # root reads anything
            with pytest.raises(StorageError, match="Permission denied"):
                await operations.make(secret, None)


class TestExtract:
    async def test_extract_blob1_from_desyncs_store(self, desync_data: Path, tmp_path: Path) -> None:
        index = read_index(desync_data / "blob1.caibx")
        stats = await operations.extract(index, tmp_path / "blob1", LocalStore(desync_data / "blob1.store"))
        assert sha256_of(tmp_path / "blob1") == BLOB1_SHA256
        assert (stats.unique, stats.from_store, stats.null_chunks) == (131, 130, 1)

    async def test_delta_sync_with_a_seed_fetches_only_the_seven_new_chunks(
        self, desync_data: Path, tmp_path: Path
    ) -> None:
        index = read_index(desync_data / "blob2.caibx")
        store = LocalStore(desync_data / "blob2.store")
        stats = await operations.extract(
            index, tmp_path / "blob2", store, seeds=[desync_data / "blob1.caibx"]
        )
        assert sha256_of(tmp_path / "blob2") == BLOB2_SHA256
        assert (stats.from_store, stats.bytes_fetched) == (7, 80029)
        # A plain file works as a seed too: it is chunked with the index's sizes.
        stats = await operations.extract(
            index, tmp_path / "again", store, seeds=[desync_data / "blob1"], seed_output=False
        )
        assert (stats.from_store, stats.bytes_fetched) == (7, 80029)

    async def test_an_existing_output_is_its_own_seed(self, desync_data: Path, tmp_path: Path) -> None:
        out = tmp_path / "out"
        shutil.copy(desync_data / "blob1", out)
        stats = await operations.extract(
            read_index(desync_data / "blob2.caibx"), out, LocalStore(desync_data / "blob2.store")
        )
        assert sha256_of(out) == BLOB2_SHA256
        assert stats.from_store == 7

    async def test_a_stale_seed_is_not_trusted(self, desync_data: Path, tmp_path: Path) -> None:
        """A seed whose bytes changed since its index was made is re-hashed, and the store used."""
        shutil.copy(desync_data / "blob1", tmp_path / "seed")
        shutil.copy(desync_data / "blob1.caibx", tmp_path / "seed.caibx")
        overwrite_start(tmp_path / "seed", b"\xff" * 20000)
        stats = await operations.extract(
            read_index(desync_data / "blob1.caibx"),
            tmp_path / "out",
            LocalStore(desync_data / "blob1.store"),
            seeds=[tmp_path / "seed.caibx"],
        )
        assert sha256_of(tmp_path / "out") == BLOB1_SHA256
        assert stats.from_store >= 2 and stats.from_seeds > 100

    async def test_missing_chunks_name_the_chunk_and_leave_the_output_alone(
        self, desync_data: Path, tmp_path: Path
    ) -> None:
        out = tmp_path / "out"
        out.write_bytes(b"precious")
        index = read_index(desync_data / "blob2.caibx")
        location = str(desync_data / "blob1.store")
        with pytest.raises(ChunkMissing, match=f"is missing from store {location} \\(and 6 more chunks\\)"):
            await operations.extract(index, out, LocalStore(location), seed_output=False)
        assert out.read_bytes() == b"precious"
        assert names_in(tmp_path) == ["out"]

    async def test_a_corrupt_chunk_is_an_error_naming_it_and_the_store(
        self, desync_data: Path, blob1_store: Path, tmp_path: Path
    ) -> None:
        index = read_index(desync_data / "blob1.caibx")
        victim = index.chunks[5].id
        store = LocalStore(blob1_store)
        store.path_of(victim).write_bytes(compress_chunk(b"something else"))
        with pytest.raises(ChunkInvalid, match=f"chunk {victim.hex()} in store {blob1_store} is invalid"):
            await operations.extract(index, tmp_path / "out", store)
        store.path_of(victim).write_bytes(b"not zstd at all")
        with pytest.raises(ChunkInvalid, match="not a valid zstd frame"):
            await store.get_chunk(victim)
        assert not (tmp_path / "out").exists()

    async def test_a_batch_read_returns_each_problem_in_its_place(
        self, desync_data: Path, blob1_store: Path
    ) -> None:
        """One batch, verified all at once: a missing, a broken and a wrong chunk do not hide the rest."""
        index = read_index(desync_data / "blob1.caibx")
        blob = (desync_data / "blob1").read_bytes()
        content = {c.id: blob[c.start : c.end] for c in index.chunks}
        ids = index.unique_ids()[:12]
        store = LocalStore(blob1_store)
        store.path_of(ids[2]).unlink()
        store.path_of(ids[5]).write_bytes(b"not zstd at all")
        store.path_of(ids[9]).write_bytes(compress_chunk(b"something else"))
        results = await store.get_chunks(ids)
        problems = {n: r for n, r in enumerate(results) if isinstance(r, StorageProblem)}
        assert sorted(problems) == [2, 5, 9]
        assert problems[2].missing and isinstance(problems[2].error, ChunkMissing)
        assert "not a valid zstd frame" in str(problems[5].error)
        assert f"chunk {ids[9].hex()} in store {blob1_store} is invalid" in str(problems[9].error)
        assert "its 14 bytes hash to" in str(problems[9].error)
        assert all(results[n] == content[ids[n]] for n in range(12) if n not in problems)

    async def test_round_trip_of_a_larger_file_with_duplicates(self, tmp_path: Path) -> None:
        rng = random.Random(5)
        piece = rng.randbytes(70_000)
        data = rng.randbytes(500_000) + piece * 4 + bytes(300_000) + rng.randbytes(1000)
        (tmp_path / "data").write_bytes(data)
        store = LocalStore(tmp_path / "store")
        index, stats = await operations.make(tmp_path / "data", store, sizes=SMALL, concurrency=3)
        assert stats.unique < stats.chunks
        await operations.extract(index, tmp_path / "out", store, concurrency=3)
        assert (tmp_path / "out").read_bytes() == data

    def test_pieces_are_written_where_they_belong(self, tmp_path: Path) -> None:
        """Extract writes a batch's chunks as runs of adjacent pieces; more pieces than one
        ``pwritev`` takes, holes between runs and any order land byte for byte."""
        rng = random.Random(3)
        size = 3000 * 16
        expected = bytearray(size)
        pieces = []
        for offset in range(0, size, 16):
            if offset // 16 % 700 == 5:
                continue  # a hole: a new run starts after it
            data = rng.randbytes(16)
            expected[offset : offset + 16] = data
            pieces.append((offset, data))
        rng.shuffle(pieces)
        fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, size)
            operations._write_pieces(fd, pieces)
        finally:
            os.close(fd)
        assert (tmp_path / "out").read_bytes() == expected

    async def test_a_cancelled_extract_stops_its_workers_and_leaves_the_output_alone(
        self, tmp_path: Path
    ) -> None:
        random_file(tmp_path / "data", 3 * operations.EXTRACT_BATCH_BYTES, seed=8)  # several batches
        store = LocalStore(tmp_path / "store")
        index, _ = await operations.make(tmp_path / "data", store)
        out = tmp_path / "out"
        out.write_bytes(b"precious")
        with trio.CancelScope() as scope:

            class CancelAfterFirstBatch(Progress):
                def advance(self, amount: int) -> None:
                    super().advance(amount)
                    scope.cancel()  # runs in trio (the workers report through from_thread)

            progress = CancelAfterFirstBatch("extract", index.length)
            await operations.extract(index, out, store, progress=progress, concurrency=2)
        assert scope.cancelled_caught
        assert 0 < progress.done < index.length  # the workers stopped before the end
        assert out.read_bytes() == b"precious"
        assert names_in(tmp_path) == ["data", "out", "store"]


class TestOtherVerbs:
    async def test_cat_ranges(self, desync_data: Path) -> None:
        index = read_index(desync_data / "blob1.caibx")
        blob = (desync_data / "blob1").read_bytes()
        store = LocalStore(desync_data / "blob1.store")
        for offset, length in [
            (0, 10),
            (3500, 20),
            (100_000, 300_000),
            (2097000, 1000),
            (2097152, 5),
            (0, 0),
        ]:
            assert await operations.read_range(index, store, offset, length) == blob[offset : offset + length]
        pieces: list[bytes] = []

        async def sink(piece: bytes) -> None:
            pieces.append(piece)

        assert await operations.cat(index, store, sink) == len(blob)
        assert b"".join(pieces) == blob
        with pytest.raises(ValueError, match="offset 3000000 is past the end of the blob"):
            await operations.read_range(index, store, 3_000_000, 1)
        with pytest.raises(ValueError, match="must not be negative"):
            await operations.read_range(index, store, -1, 1)

    async def test_chop_stores_by_the_index_and_rejects_other_content(
        self, desync_data: Path, tmp_path: Path
    ) -> None:
        index = read_index(desync_data / "blob1.caibx")
        store = MemoryStore()
        assert await operations.chop(index, desync_data / "blob1", store) == 131
        assert set(store.chunks) == set(index.unique_ids())
        with pytest.raises(ContentMismatch, match=r"blob2 does not match its index: chunk \d+ at offset \d+"):
            await operations.chop(index, desync_data / "blob2", MemoryStore())
        (tmp_path / "short").write_bytes(b"abc")
        with pytest.raises(ContentMismatch, match="is 3 bytes but its index describes 2097152 bytes"):
            await operations.chop(index, tmp_path / "short", store)

    async def test_verify_finds_and_repairs_bad_chunks(self, desync_data: Path, blob1_store: Path) -> None:
        store = LocalStore(blob1_store)
        index = read_index(desync_data / "blob1.caibx")
        bad = [index.chunks[1].id, index.chunks[2].id]
        store.path_of(bad[0]).write_bytes(b"garbage")
        store.path_of(bad[1]).write_bytes(compress_chunk(b"wrong content"))
        report = await operations.verify(store)
        assert report.checked == 131
        assert sorted(error.chunk_id for error in report.invalid) == sorted(bad)
        assert all(str(blob1_store) in str(error) for error in report.invalid)
        repaired = await operations.verify(store, repair=True)
        assert repaired.removed == 2
        assert not store.path_of(bad[0]).exists()
        assert (await operations.verify(store)).invalid == []

    async def test_prune_keeps_what_indexes_reference(self, desync_data: Path, blob1_store: Path) -> None:
        store = LocalStore(blob1_store)
        index = read_index(desync_data / "blob1.caibx")
        keep = Index(index.flags, 2048, 8192, 32768, index.chunks[:20])
        leftover = blob1_store / "0000" / ".tmp-cacnk0123"
        leftover.parent.mkdir(exist_ok=True)
        leftover.write_bytes(b"partial")
        before = tree_snapshot(blob1_store)
        doomed = await operations.prune(store, [keep], dry_run=True)
        assert len(doomed) == 131 - len(set(keep.unique_ids()))
        assert tree_snapshot(blob1_store) == before
        deleted = await operations.prune(store, [keep])
        assert deleted == doomed
        remaining = {chunk_id async for chunk_id in store.list_chunks()}
        assert remaining == set(keep.unique_ids())
        assert not leftover.exists()
        with pytest.raises(ValueError, match="needs at least one index"):
            await operations.prune(store, [])

    async def test_info_like_desync(self, desync_data: Path) -> None:
        index = read_index(desync_data / "blob1.caibx")
        summary = await operations.info(index, LocalStore(desync_data / "blob1.store"))
        assert summary["total-chunks"] == 161 and summary["unique-chunks"] == 131
        assert summary["in-store"] == 131 and summary["not-in-store"] == 0
        assert summary["size"] == 2097152 and summary["dedup-size"] == 1114112
        other = await operations.info(
            read_index(desync_data / "blob2.caibx"), LocalStore(desync_data / "blob1.store")
        )
        assert other["not-in-store"] == 7 and len(other["missing-chunks"]) == 7  # type: ignore[arg-type]

    async def test_cache_copies_only_what_is_missing_and_resumes(
        self, desync_data: Path, tmp_path: Path
    ) -> None:
        index = read_index(desync_data / "blob1.caibx")
        source = LocalStore(desync_data / "blob1.store")
        destination = LocalStore(tmp_path / "cache")
        for chunk_id in index.unique_ids()[:31]:
            destination.put_blocking(chunk_id, source.get_blocking(chunk_id, Digest.SHA512_256))
        stats = await operations.cache_chunks([index], source, destination)
        assert (stats.unique, stats.present, stats.copied) == (131, 31, 100)
        again = await operations.cache_chunks([index], source, destination)
        assert again.copied == 0
        with pytest.raises(ChunkMissing, match=r"\(and 6 more chunks\)"):
            await operations.cache_chunks([read_index(desync_data / "blob2.caibx")], source, MemoryStore())


class TestStoreCompositions:
    async def test_cache_in_front_of_a_store_fills_and_heals(self, desync_data: Path, tmp_path: Path) -> None:
        index = read_index(desync_data / "blob1.caibx")
        cache = LocalStore(tmp_path / "cache")
        store = CacheStore(LocalStore(desync_data / "blob1.store"), cache)
        await operations.extract(index, tmp_path / "out", store)
        assert {c async for c in cache.list_chunks()} == set(index.unique_ids()) - {index.chunks[-2].id} | (
            {c async for c in cache.list_chunks()} & {index.chunks[-2].id}
        )
        victim = index.chunks[0].id
        cache.path_of(victim).write_bytes(b"rot")
        assert Digest.SHA512_256.of(await store.get_chunk(victim)) == victim
        assert Digest.SHA512_256.of(await cache.get_chunk(victim)) == victim

    async def test_router_tries_stores_in_order(self, desync_data: Path, tmp_path: Path) -> None:
        router = RouterStore(
            [LocalStore(desync_data / "blob1.store"), LocalStore(desync_data / "blob2.store")]
        )
        await operations.extract(read_index(desync_data / "blob2.caibx"), tmp_path / "out", router)
        assert sha256_of(tmp_path / "out") == BLOB2_SHA256
        missing = bytes(32)
        with pytest.raises(ChunkMissing, match=r"missing from store .*blob1.store \| .*blob2.store"):
            await router.get_chunk(missing)

    async def test_uncompressed_stores_use_bare_ids(self, desync_data: Path, tmp_path: Path) -> None:
        async with open_store(
            str(tmp_path / "raw"),
            options=__import__("aria.apps.storage.stores", fromlist=["StoreOptions"]).StoreOptions(
                compressed=False
            ),
        ) as store:
            index, _ = await operations.make(desync_data / "blob1", store, sizes=SMALL)
            first = index.chunks[0]
            path = tmp_path / "raw" / first.id.hex()[:4] / first.id.hex()
            assert path.read_bytes() == (desync_data / "blob1").read_bytes()[: first.size]
            await operations.extract(index, tmp_path / "out", store)
        assert sha256_of(tmp_path / "out") == BLOB1_SHA256
        # A compressed store does not see raw chunks, and the other way round.
        assert [c async for c in LocalStore(tmp_path / "raw").list_chunks()] == []

    async def test_concurrent_writers_of_one_chunk_leave_one_whole_file(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path / "store")
        data = random.Random(7).randbytes(50_000)
        chunk_id = Digest.SHA512_256.of(data)
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(store.put_chunk, chunk_id, data)
        assert await store.get_chunk(chunk_id) == data
        assert [p.name for p in store.path_of(chunk_id).parent.iterdir()] == [store.path_of(chunk_id).name]
