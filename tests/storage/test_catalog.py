"""The asset catalog on the real aria_data (PostgreSQL child): puts, reads, deletes, gc, statistics."""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

import aria
from aria.apps.security.api import AppSecrets
from aria.apps.storage.api import (
    AssetExists,
    AssetNotFound,
    ChunkSizes,
    Digest,
    StorageApi,
    SweepInProgress,
    UploadExpired,
)
from aria.apps.storage.catalog import AssetCatalog
from aria.apps.storage.stores import LocalStore
from tests.conftest import eventually
from tests.storage.conftest import storage_config

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20


def random_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


class Pieces:
    """An upload body: ``data`` in pieces of ``size`` bytes, optionally stopping after ``pause_at``
    bytes until ``resume`` is set, or failing there with ``fail``."""

    def __init__(
        self,
        data: bytes,
        size: int = 100_000,
        *,
        pause_at: int | None = None,
        fail: Exception | None = None,
    ) -> None:
        self.data = data
        self.size = size
        self.offset = 0
        self.pause_at = pause_at
        self.fail = fail
        self.paused = trio.Event()
        self.resume = trio.Event()

    def __aiter__(self) -> Pieces:
        return self

    async def __anext__(self) -> bytes:
        if self.pause_at is not None and self.offset >= self.pause_at:
            self.paused.set()
            await self.resume.wait()
            if self.fail is not None:
                raise self.fail
            self.pause_at = None
        if self.offset >= len(self.data):
            raise StopAsyncIteration
        end = len(self.data) if self.pause_at is None else min(len(self.data), self.pause_at)
        piece = self.data[self.offset : min(end, self.offset + self.size)]
        self.offset += len(piece)
        return piece


class NeverRead:
    def __aiter__(self) -> NeverRead:
        return self

    async def __anext__(self) -> bytes:
        raise AssertionError("the content was read although the put should have been refused first")


class RecordingStore(LocalStore):
    """A local store that says when it has been asked to put chunks (the catalog announces them
    just before)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.put_batches = 0
        self.put_happened = trio.Event()
        self.in_flight: list[set[str]] = []
        self.watched: set[str] | None = None

    def watch(self) -> None:
        """From now on, collect in ``watched`` the chunks of every put in flight or started since."""
        self.watched = set().union(*self.in_flight)

    async def put_chunks(self, chunks: Any) -> int:
        names = {chunk_id.hex() for chunk_id, _ in chunks}
        if self.watched is not None:
            self.watched |= names
        self.in_flight.append(names)
        try:
            written = await super().put_chunks(chunks)
        finally:
            self.in_flight.remove(names)
        self.put_batches += 1
        self.put_happened.set()
        return written


@pytest.fixture
async def storage(storage_dir: Path) -> AsyncIterator[StorageApi]:
    async with aria.running(apps=["aria_storage"], config=storage_config(storage_dir)):
        yield aria.whereis("aria_storage")


async def catalog_on(store: LocalStore, upload_timeout: float = 600.0) -> AssetCatalog:
    """A second catalog on the node's database, over ``store`` (the service migrated the tables)."""
    return AssetCatalog(
        await aria.whereis("aria_data").get(),
        store,
        sizes=ChunkSizes(),
        digest=Digest.SHA512_256,
        concurrency=2,
        node="test",
        upload_timeout=upload_timeout,
    )


def store_ids(root: Path) -> set[str]:
    return {path.name.removesuffix(".cacnk") for path in root.rglob("*.cacnk")}


class TestPutAndRead:
    async def test_a_streamed_put_reads_back_whole_and_by_range(self, storage: Any, tmp_path: Path) -> None:
        # Random, then the same 300 KB three times: chunks repeat within the asset.
        repeated = random_bytes(2, 300_000)
        data = random_bytes(1, 2 * MIB) + repeated * 3
        asset = await storage.put_asset("robot.glb", Pieces(data), content_type="model/gltf-binary")
        assert (asset.name, asset.version, asset.size) == ("robot.glb", "1", len(data))
        assert asset.caid == hashlib.sha256(data).hexdigest()
        assert asset.content_type == "model/gltf-binary"
        assert asset.unique_chunks < asset.chunks
        assert asset.created_at >= asset.upload_started_at

        async with await storage.open_asset("robot.glb") as reader:
            assert reader.size == len(data)
            assert await reader.read() == data
            assert await reader.read() == b""
            for offset, length in [(0, 1), (12345, 70_000), (len(data) - 10, 100), (len(data), 5), (0, 0)]:
                assert await reader.read_range(offset, length) == data[offset : offset + length]
            reader.seek(-100, io.SEEK_END)
            assert await reader.read(40) == data[-100:-60]
            assert reader.tell() == len(data) - 60
            pieces = [piece async for piece in reader.stream(MIB, MIB)]
            assert len(pieces) > 1 and b"".join(pieces) == data[MIB : 2 * MIB]
            with pytest.raises(ValueError, match="before the start"):
                reader.seek(-1)

        # A second version from a file (numbered after the first), a third named explicitly.
        path = tmp_path / "robot-v2.glb"
        path.write_bytes(data[:MIB] + b"changed" + data[MIB:])
        second = await storage.put_asset("robot.glb", path, content_type="model/gltf-binary")
        assert second.version == "2"
        third = await storage.put_asset("robot.glb", b"tiny", version="2.1-beta")
        assert third.content_type == "application/octet-stream"
        assert (await storage.get_asset("robot.glb")).version == "2.1-beta"
        assert (await storage.get_asset("robot.glb", "latest")).version == "2.1-beta"
        async with await storage.open_asset("robot.glb", "2") as reader:
            assert hashlib.sha256(await reader.read()).hexdigest() == second.caid

        listed = await storage.list_assets()
        assert [(a["name"], a["version"]) for a in listed] == [
            ("robot.glb", "1"),
            ("robot.glb", "2"),
            ("robot.glb", "2.1-beta"),
        ]
        assert json.loads(json.dumps(listed)) == listed  # JSON-friendly, as the dashboard reads it
        assert {"name", "version", "size", "content_type", "caid"} <= set(listed[0])

        deleted = await storage.delete_asset("robot.glb", "1")
        assert deleted.caid == asset.caid
        with pytest.raises(AssetNotFound, match=r"asset 'robot\.glb' version '1' is not in the catalog"):
            await storage.open_asset("robot.glb", "1")
        assert [a["version"] for a in await storage.list_assets("robot.glb")] == ["2", "2.1-beta"]

    async def test_an_empty_asset(self, storage: Any) -> None:
        asset = await storage.put_asset("empty", b"")
        assert (asset.size, asset.chunks, asset.caid) == (0, 0, hashlib.sha256(b"").hexdigest())
        async with await storage.open_asset("empty") as reader:
            assert await reader.read() == b""

    async def test_bad_input_is_refused_before_anything_is_stored(self, storage: Any) -> None:
        await storage.put_asset("model", b"first", version="1")
        before = await storage.list_assets()
        with pytest.raises(AssetExists, match="asset 'model' version '1' already exists"):
            await storage.put_asset("model", NeverRead(), version="1")
        with pytest.raises(ValueError, match="asset name 'a/b' is not valid"):
            await storage.put_asset("a/b", NeverRead())
        with pytest.raises(ValueError, match="'latest' names the newest version"):
            await storage.put_asset("model", NeverRead(), version="latest")
        with pytest.raises(ValueError, match="content type 'gltf' is not a media type"):
            await storage.put_asset("model", NeverRead(), content_type="gltf")
        with pytest.raises(TypeError, match="asset content must be an async iterable"):
            await storage.put_asset("model", 42)
        with pytest.raises(AssetNotFound, match="asset 'nothing' is not in the catalog"):
            await storage.get_asset("nothing")
        with pytest.raises(AssetNotFound):
            await storage.delete_asset("model", "7")
        assert await storage.list_assets() == before
        db = aria.whereis("aria_data")
        assert await db.fetchval("SELECT count(*) FROM aria_storage_uploads") == 0

    async def test_a_failed_upload_catalogs_nothing_and_gc_removes_its_chunks(
        self, storage: Any, storage_dir: Path
    ) -> None:
        kept = await storage.put_asset("kept", random_bytes(3, MIB))
        chunks = storage_dir / "storage" / "chunks"
        before = store_ids(chunks)
        body = Pieces(random_bytes(4, 4 * MIB), pause_at=3 * MIB, fail=OSError("client went away"))
        failures: list[OSError] = []

        async def put() -> None:
            try:
                await storage.put_asset("broken", body)
            except OSError as exc:
                failures.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(put)
            await body.paused.wait()
            with trio.fail_after(20):
                await eventually(lambda: len(store_ids(chunks) - before) > 0)
            body.resume.set()
        assert str(failures[0]) == "client went away"
        assert [a["name"] for a in await storage.list_assets()] == ["kept"]
        db = aria.whereis("aria_data")
        assert await db.fetchval("SELECT count(*) FROM aria_storage_uploads") == 0
        written = store_ids(chunks) - before
        assert written  # it had stored chunks before failing
        report = await storage.gc()
        assert report.deleted == len(written)
        assert store_ids(chunks) == before
        async with await storage.open_asset("kept") as reader:
            assert hashlib.sha256(await reader.read()).hexdigest() == kept.caid


class TestStatistics:
    async def test_statistics_and_dedup_figures(self, storage: Any) -> None:
        assert storage.statistics()["assets"] == 0
        shared = random_bytes(5, 2 * MIB)
        await storage.put_asset("base", shared)
        await storage.put_asset("finetune", shared + random_bytes(6, MIB))
        stats = storage.statistics()  # synchronous: what aria_monitor reads for /metrics
        assert stats["assets"] == 2
        assert stats["bytes"] == 5 * MIB
        assert 3 * MIB - 300_000 < stats["stored_bytes"] < 3 * MIB + 300_000
        assert stats["dedup_ratio"] == pytest.approx(stats["bytes"] / stats["stored_bytes"], rel=1e-3)
        assert stats["dedup_ratio"] > 1.5
        assert stats["uploads"] == 0
        assert all(isinstance(value, int | float) for value in stats.values())
        detail = {row["name"]: row for row in (await storage.dedup_statistics())["assets_detail"]}
        assert detail["base"]["distinct_bytes"] == 2 * MIB
        # Only the chunk straddling the end of `shared` differs: base shares nearly all of it.
        assert detail["base"]["exclusive_bytes"] < 300_000
        assert detail["finetune"]["exclusive_bytes"] > MIB - 300_000

    async def test_the_monitor_shows_the_catalog(self, storage: Any) -> None:
        from aria.apps.monitor.http import storage_overview

        await storage.put_asset("shown", b"x" * 1000, content_type="text/plain")
        overview = await storage_overview(storage)
        assert overview["statistics"]["assets"] == 1
        assert overview["list_assets"][0]["content_type"] == "text/plain"


class TestGarbageCollection:
    async def test_gc_deletes_exactly_the_chunks_no_asset_uses(self, storage: Any, storage_dir: Path) -> None:
        chunks = storage_dir / "storage" / "chunks"
        common = random_bytes(7, MIB)
        await storage.put_asset("a", common + random_bytes(8, MIB))
        b = await storage.put_asset("b", common + random_bytes(9, MIB))
        made = await storage.make(_write(storage_dir / "loose", random_bytes(10, MIB)))
        all_chunks = store_ids(chunks)
        await storage.delete_asset("a", "1")

        dry = await storage.gc(dry_run=True, keep=[made])
        assert store_ids(chunks) == all_chunks and dry.deleted > 0
        report = await storage.gc(keep=[made])
        assert report.deleted == dry.deleted
        left = store_ids(chunks)
        async with await storage.open_asset("b") as reader:
            index_ids = {chunk.id.hex() for chunk in reader.index.chunks}
            assert hashlib.sha256(await reader.read()).hexdigest() == b.caid
        assert left == index_ids | {chunk.id.hex() for chunk in made.chunks}
        assert (await storage.gc(keep=[made])).deleted == 0

    async def test_gc_keeps_the_chunks_of_an_asset_being_put(self, storage: Any, storage_dir: Path) -> None:
        store = RecordingStore(storage_dir / "storage" / "chunks")
        catalog = await catalog_on(store)
        reused = random_bytes(11, 3 * MIB)
        await catalog.put_asset("old", reused)
        await catalog.delete_asset("old", "1")  # its chunks are garbage now...
        await catalog.put_asset("junk", random_bytes(12, MIB))
        junk_ids = {chunk.id.hex() for chunk in (await catalog.open_asset("junk")).index.chunks}
        await catalog.delete_asset("junk", "1")
        store.put_happened = trio.Event()

        # ...until an upload of the same bytes announces them (finding them stored, it skips them).
        body = Pieces(reused + random_bytes(13, MIB), pause_at=len(reused))
        async with trio.open_nursery() as nursery:
            result: list[Any] = []

            async def put() -> None:
                result.append(await catalog.put_asset("new", body))

            nursery.start_soon(put)
            await store.put_happened.wait()
            await body.paused.wait()
            db = aria.whereis("aria_data")
            announced = {
                bytes(row["chunk_id"]).hex()
                for row in await db.fetch("SELECT chunk_id FROM aria_storage_upload_chunks")
            }
            assert announced  # some of the reused chunks, found already stored

            report = await catalog.gc()
            left = store_ids(store.root)
            assert report.deleted >= len(junk_ids - announced) > 0
            assert not (junk_ids - announced) & left
            assert announced <= left
            body.resume.set()
        new = result[0]
        async with await catalog.open_asset("new") as reader:
            assert await reader.read() == body.data
            assert {chunk.id.hex() for chunk in reader.index.chunks} <= store_ids(store.root)
        assert new.caid == hashlib.sha256(body.data).hexdigest()

    async def test_one_sweep_at_a_time(self, storage: Any) -> None:
        db = aria.whereis("aria_data")
        await db.execute(
            "INSERT INTO aria_storage_gc (id, holder, expires_at) "
            "VALUES (1, 'elsewhere', now() + INTERVAL '1 minute')"
        )
        with pytest.raises(SweepInProgress, match="held by elsewhere"):
            await storage.gc()
        await db.execute("UPDATE aria_storage_gc SET expires_at = now() - INTERVAL '1 second'")
        assert (await storage.gc()).deleted == 0  # an expired lease is taken over

    async def test_a_forgotten_upload_cannot_commit(self, storage: Any, storage_dir: Path) -> None:
        store = RecordingStore(storage_dir / "storage" / "chunks")
        catalog = await catalog_on(store, upload_timeout=60.0)
        body = Pieces(random_bytes(14, 3 * MIB), pause_at=2 * MIB)
        db = aria.whereis("aria_data")
        async with trio.open_nursery() as nursery:
            failures: list[BaseException] = []

            async def put() -> None:
                try:
                    await catalog.put_asset("stalled", body)
                except UploadExpired as exc:
                    failures.append(exc)

            nursery.start_soon(put)
            await body.paused.wait()
            await store.put_happened.wait()  # some of its chunks are stored
            # Its process looks dead: no heartbeat for two minutes.
            await db.execute("UPDATE aria_storage_uploads SET heartbeat_at = now() - INTERVAL '2 minutes'")
            store.watch()
            report = await catalog.gc()
            assert report.expired_uploads == 1
            assert report.deleted >= 1
            # Everything it wrote was swept, except what a put still in flight when the sweep listed
            # the store wrote after that (the upload's pipeline runs on while its body is paused).
            assert store.watched is not None and store_ids(store.root) <= store.watched
            body.resume.set()
        assert "without a heartbeat" in str(failures[0])
        assert await catalog.list_assets() == []
        await catalog.gc()  # nothing is written any more: the next gc leaves nothing of it
        assert store_ids(store.root) == set()


class TestCrash:
    async def test_kill_9_mid_put_leaves_the_asset_whole_or_absent(self, storage_dir: Path) -> None:
        chunks = storage_dir / "storage" / "chunks"
        config = storage_config(storage_dir, upload_timeout=1.0)
        async with aria.running(apps=["aria_storage"], config=config):
            storage = aria.whereis("aria_storage")
            db = aria.whereis("aria_data")
            address = (await db.get()).status()["address"]
            password = await AppSecrets(aria.whereis("aria_security"), "aria_data").get_secret("db/password")
            writer = [
                sys.executable,
                "-m",
                "tests.storage.put_process",
                f"{storage_dir}-writer",
                f"postgresql://aria@{address}/aria",
                password["value"],
                str(chunks),
            ]
            # A plain Popen: the child lives across awaits and is read from a worker thread.
            process = subprocess.Popen(  # noqa: ASYNC220
                writer, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            try:
                assert process.stdout is not None
                with trio.fail_after(120):
                    whole = (await trio.to_thread.run_sync(process.stdout.readline)).split()
                    announced = (await trio.to_thread.run_sync(process.stdout.readline)).split()
                assert whole[:1] == ["whole"] and announced[:1] == ["announced"], (whole, announced)
                process.send_signal(signal.SIGKILL)
                await trio.to_thread.run_sync(process.wait)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                if process.stdout is not None:
                    process.stdout.close()
                shutil.rmtree(f"{storage_dir}-writer", ignore_errors=True)

            assert [(a["name"], a["caid"]) for a in await storage.list_assets()] == [("whole", whole[1])]
            async with await storage.open_asset("whole") as reader:
                assert hashlib.sha256(await reader.read()).hexdigest() == whole[1]
                whole_ids = {chunk.id.hex() for chunk in reader.index.chunks}
            assert store_ids(chunks) > whole_ids  # the killed put had written chunks
            assert await db.fetchval("SELECT count(*) FROM aria_storage_uploads") == 1
            with trio.fail_after(10):
                # gc forgets the dead upload once its last heartbeat is a second old.
                while (report := await storage.gc()).expired_uploads == 0:  # noqa: ASYNC110 - a clock
                    await trio.sleep(0.2)
            assert report.deleted > 0
            assert store_ids(chunks) == whole_ids
            assert storage.statistics()["uploads"] == 0


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
