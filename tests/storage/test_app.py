"""The aria_storage app: its config section, booting its store and chunk server, the running API."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

import aria
from aria.apps.storage.api import ChunkSizes, StorageApi
from aria.config import load
from aria.errors import ConfigError
from tests.storage.conftest import storage_config

BLOB1_SHA256 = "eb2fb317e36a1296ee6018371ca621017634f4a4790e4990846126b251147fca"


class TestConfig:
    def test_bad_values_stop_the_start_naming_the_key(self) -> None:
        with pytest.raises(ConfigError, match=r"storage.store = 'ftp://x/y'.*unknown scheme 'ftp'"):
            load(environ={"ARIA_STORAGE__STORE": "ftp://x/y"})
        with pytest.raises(ConfigError, match=r"storage.chunk_size = '16:64'.*min:avg:max in KiB"):
            load(environ={"ARIA_STORAGE__CHUNK_SIZE": "16:64"})
        with pytest.raises(ConfigError, match=r"storage.chunk_size = '64:16:256'.*min <= avg <= max"):
            load(environ={"ARIA_STORAGE__CHUNK_SIZE": "64:16:256"})
        with pytest.raises(ConfigError, match=r"storage.chunk_server = 'everywhere'.*HOST:PORT"):
            load(environ={"ARIA_STORAGE__CHUNK_SERVER": "everywhere"})
        with pytest.raises(ConfigError, match=r"storage.digest = 'md5'"):
            load(environ={"ARIA_STORAGE__DIGEST": "md5"})


class TestService:
    async def test_boots_the_default_store_and_runs_operations(
        self, storage_dir: Path, desync_data: Path, tmp_path: Path
    ) -> None:
        data_dir = storage_dir
        config = storage_config(storage_dir, chunk_size="2:8:32")
        async with aria.running(apps=["aria_storage"], config=config):
            storage = aria.whereis("aria_storage")
            status = storage.status()
            assert status["implemented"] is True
            assert status["store"] == str(data_dir / "storage" / "chunks")
            assert (await storage.health())["ok"] is True
            index = await storage.make(desync_data / "blob1", tmp_path / "blob1.caibx")
            assert (tmp_path / "blob1.caibx").read_bytes() == (desync_data / "blob1.caibx").read_bytes()
            await storage.extract(tmp_path / "blob1.caibx", tmp_path / "out")
            assert hashlib.sha256((tmp_path / "out").read_bytes()).hexdigest() == BLOB1_SHA256
            assert (
                await storage.read_range(index, 3505, 10) == (desync_data / "blob1").read_bytes()[3505:3515]
            )
            assert (await storage.info(index))["not-in-store"] == 0
            assert (await storage.verify()).checked == 131
        assert len(list((data_dir / "storage" / "chunks").rglob("*.cacnk"))) == 131

    async def test_the_configured_chunk_server_serves_the_store(
        self, storage_dir: Path, desync_data: Path
    ) -> None:
        config = storage_config(
            storage_dir, store=str(desync_data / "blob1.store"), chunk_server="127.0.0.1:0"
        )
        chunk = "686d5bf0fe02c431327829269ee90938d56921f01d0583f4fe94f1cd98c82cd8"
        async with aria.running(apps=["aria_storage"], config=config):
            address = aria.whereis("aria_storage").status()["chunk_server"]
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://{address}/{chunk[:4]}/{chunk}.cacnk")
            assert response.status_code == 200

    async def test_the_api_works_without_a_node(self, desync_data: Path) -> None:
        from aria.apps.storage.api import open_store
        from aria.apps.storage.settings import StorageSection

        async with open_store(str(desync_data / "blob1.store")) as store:
            api = StorageApi(store, StorageSection(chunk_size="2:8:32"))
            assert api.sizes == ChunkSizes(2048, 8192, 32768)
            summary = await api.info(desync_data / "blob1.caibx")
            assert summary["in-store"] == 131
