"""The desync HTTP chunk-server protocol: aria's server and aria's HTTP store client against it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx
import pytest
import trio

from aria.apps.storage import operations
from aria.apps.storage.chunk_server import serve_chunks
from aria.apps.storage.chunker import ChunkSizes
from aria.apps.storage.errors import ChunkMissing, StoreFailure
from aria.apps.storage.format import compress_chunk, read_index
from aria.apps.storage.stores import LocalStore, MemoryStore, StoreOptions, open_store

BLOB1_SHA256 = "eb2fb317e36a1296ee6018371ca621017634f4a4790e4990846126b251147fca"
FIRST = "686d5bf0fe02c431327829269ee90938d56921f01d0583f4fe94f1cd98c82cd8"


class TestChunkServer:
    async def test_extract_through_the_server(self, desync_data: Path, tmp_path: Path) -> None:
        async with trio.open_nursery() as nursery:
            address = await nursery.start(
                serve_chunks, LocalStore(desync_data / "blob1.store"), "127.0.0.1:0"
            )
            async with open_store(f"http://{address}/") as store:
                await operations.extract(read_index(desync_data / "blob1.caibx"), tmp_path / "out", store)
                with pytest.raises(ChunkMissing, match=re.escape(f"missing from store http://{address}/")):
                    await store.get_chunk(bytes(32))
                with pytest.raises(StoreFailure, match="HTTP protocol cannot list"):
                    await operations.verify(store)
            nursery.cancel_scope.cancel()
        assert hashlib.sha256((tmp_path / "out").read_bytes()).hexdigest() == BLOB1_SHA256

    async def test_status_codes_of_the_protocol(self, desync_data: Path) -> None:
        data = (desync_data / "blob1").read_bytes()[:3505]
        path = f"/{FIRST[:4]}/{FIRST}.cacnk"
        async with trio.open_nursery() as nursery:
            read_only = await nursery.start(
                serve_chunks, LocalStore(desync_data / "blob1.store"), "127.0.0.1:0"
            )
            backing = MemoryStore()
            writable = await nursery.start(
                lambda task_status: serve_chunks(
                    backing, "127.0.0.1:0", writable=True, authorization="Bearer t", task_status=task_status
                )
            )
            async with httpx.AsyncClient() as client:
                base = f"http://{read_only}"
                got = await client.get(base + path)
                assert got.status_code == 200 and got.content[:4] == b"\x28\xb5\x2f\xfd"
                assert (await client.head(base + path)).status_code == 200
                assert (await client.get(base + f"/0000/{'0' * 64}.cacnk")).status_code == 404
                assert (await client.get(base + f"/{FIRST[:4]}/{FIRST}")).status_code == 400  # no extension
                assert (await client.get(base + f"/abcd/{FIRST}.cacnk")).status_code == 400  # wrong prefix
                assert (await client.get(base + "/index.html")).status_code == 400
                assert (await client.put(base + path, content=compress_chunk(data))).status_code == 400
                assert (await client.delete(base + path)).status_code == 405
                auth = {"Authorization": "Bearer t"}
                other = f"http://{writable}"
                assert (await client.put(other + path, content=compress_chunk(data))).status_code == 401
                bad = await client.put(other + path, content=compress_chunk(b"other bytes"), headers=auth)
                assert bad.status_code == 400 and "does not match" in bad.text
                assert (await client.put(other + path, content=b"not zstd", headers=auth)).status_code == 400
                assert backing.chunks == {}
                good = await client.put(other + path, content=compress_chunk(data), headers=auth)
                assert good.status_code == 200
                assert list(backing.chunks) == [bytes.fromhex(FIRST)]
            nursery.cancel_scope.cancel()

    async def test_served_chunks_are_verified_and_not_recompressed(
        self, desync_data: Path, tmp_path: Path
    ) -> None:
        store = LocalStore(tmp_path / "store")
        data = (desync_data / "blob1").read_bytes()[:3505]
        chunk_id = bytes.fromhex(FIRST)
        await store.put_chunk(chunk_id, data)
        other = bytes(32)
        store.path_of(other).parent.mkdir(parents=True, exist_ok=True)
        store.path_of(other).write_bytes(compress_chunk(b"does not hash to zeros"))
        async with trio.open_nursery() as nursery:
            address = await nursery.start(serve_chunks, store, "127.0.0.1:0")
            raw_address = await nursery.start(
                lambda task_status: serve_chunks(
                    store, "127.0.0.1:0", compressed=False, task_status=task_status
                )
            )
            async with httpx.AsyncClient() as client:
                served = await client.get(f"http://{address}/{FIRST[:4]}/{FIRST}.cacnk")
                assert served.content == store.path_of(chunk_id).read_bytes()  # the stored frame itself
                raw = await client.get(f"http://{raw_address}/{FIRST[:4]}/{FIRST}")
                assert raw.content == data
                bad = await client.get(f"http://{address}/0000/{'0' * 64}.cacnk")
                assert bad.status_code == 500 and "is invalid" in bad.text
            nursery.cancel_scope.cancel()

    async def test_make_into_a_writable_server_uncompressed(self, desync_data: Path, tmp_path: Path) -> None:
        backing = LocalStore(tmp_path / "raw", compressed=False)
        async with trio.open_nursery() as nursery:
            address = await nursery.start(
                lambda task_status: serve_chunks(
                    backing, "127.0.0.1:0", writable=True, compressed=False, task_status=task_status
                )
            )
            options = StoreOptions(compressed=False)
            async with open_store(f"http://{address}", options=options) as store:
                index, stats = await operations.make(
                    desync_data / "blob1", store, sizes=ChunkSizes(2048, 8192, 32768)
                )
                assert stats.written == 131
                await operations.extract(index, tmp_path / "out", store)
            nursery.cancel_scope.cancel()
        assert hashlib.sha256((tmp_path / "out").read_bytes()).hexdigest() == BLOB1_SHA256
        assert (tmp_path / "raw" / FIRST[:4] / FIRST).is_file()

    async def test_a_dead_server_is_a_store_failure(self) -> None:
        async with open_store("http://127.0.0.1:9/") as store:
            with pytest.raises(StoreFailure, match=re.escape("store http://127.0.0.1:9/: GET chunk 0000")):
                await store.get_chunk(bytes(32))

    async def test_bad_listen_address(self) -> None:
        with pytest.raises(ValueError, match="must be HOST:PORT"):
            await serve_chunks(MemoryStore(), "nowhere")
