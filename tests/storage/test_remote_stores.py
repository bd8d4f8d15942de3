"""S3 (against moto's server on loopback) and SFTP (against an asyncssh server started here)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trio_asyncio

from aria.apps.storage import operations
from aria.apps.storage.chunker import ChunkSizes
from aria.apps.storage.errors import ChunkInvalid, ChunkMissing, StoreFailure, StoreURLError
from aria.apps.storage.format import Digest, compress_chunk, read_index
from aria.apps.storage.stores import StoreOptions, open_store

BLOB1_SHA256 = "eb2fb317e36a1296ee6018371ca621017634f4a4790e4990846126b251147fca"
SMALL = ChunkSizes(2048, 8192, 32768)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server in server mode on a loopback port, as a child process of the test run."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (dev extra)")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto server did not start on port {port}")
                time.sleep(0.05)  # polling a child process's port, not synchronising tasks
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "aria-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aria-test-secret")


def _create_bucket(endpoint: str, name: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=f"http://{endpoint}", region_name="us-east-1")
    try:
        client.create_bucket(Bucket=name)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass


@pytest.mark.usefixtures("s3_credentials")
class TestS3:
    async def test_make_extract_verify_prune_round_trip(
        self, moto_endpoint: str, desync_data: Path, tmp_path: Path
    ) -> None:
        _create_bucket(moto_endpoint, "chunks")
        location = f"s3+http://{moto_endpoint}/chunks/blob1"
        async with open_store(location) as store:
            index, stats = await operations.make(desync_data / "blob1", store, sizes=SMALL)
            assert (stats.chunks, stats.unique, stats.written) == (161, 131, 131)
            assert index.to_bytes() == (desync_data / "blob1.caibx").read_bytes()
            _, again = await operations.make(desync_data / "blob1", store, sizes=SMALL)
            assert again.written == 0  # resumable: nothing stored twice
            await operations.extract(index, tmp_path / "out", store)
            assert hashlib.sha256((tmp_path / "out").read_bytes()).hexdigest() == BLOB1_SHA256
            assert len([chunk_id async for chunk_id in store.list_chunks()]) == 131
            report = await operations.verify(store)
            assert (report.checked, report.invalid) == (131, [])
            smaller = read_index(desync_data / "blob1.caibx")
            smaller.chunks = smaller.chunks[:10]
            doomed = await operations.prune(store, [smaller], dry_run=True)
            assert len(doomed) == 131 - len(set(c.id for c in smaller.chunks))
            assert len([chunk_id async for chunk_id in store.list_chunks()]) == 131

    async def test_a_corrupt_object_is_an_error_naming_chunk_and_store(
        self, moto_endpoint: str, desync_data: Path
    ) -> None:
        import boto3

        _create_bucket(moto_endpoint, "corrupt")
        index = read_index(desync_data / "blob1.caibx")
        target = index.chunks[0].id
        key = f"p/{target.hex()[:4]}/{target.hex()}.cacnk"
        boto3.client("s3", endpoint_url=f"http://{moto_endpoint}", region_name="us-east-1").put_object(
            Bucket="corrupt", Key=key, Body=compress_chunk(b"not the chunk")
        )
        location = f"s3+http://{moto_endpoint}/corrupt/p"
        async with open_store(location) as store:
            with pytest.raises(
                ChunkInvalid, match=re.escape(f"chunk {target.hex()} in store {location} is invalid")
            ):
                await store.get_chunk(target)
            with pytest.raises(ChunkMissing, match=f"chunk {index.chunks[1].id.hex()} is missing"):
                await store.get_chunk(index.chunks[1].id)

    async def test_a_missing_bucket_and_bad_locations(self, moto_endpoint: str) -> None:
        with pytest.raises(StoreFailure, match="checking the bucket failed"):
            async with open_store(f"s3+http://{moto_endpoint}/no-such-bucket"):
                pass
        with pytest.raises(StoreURLError, match="needs a bucket"):
            async with open_store(f"s3+http://{moto_endpoint}/"):
                pass
        with pytest.raises(StoreURLError, match="lookup='sideways' must be dns, path or auto"):
            async with open_store(f"s3+http://{moto_endpoint}/b?lookup=sideways"):
                pass

    async def test_errors_inside_the_block_are_not_wrapped(self, moto_endpoint: str) -> None:
        """trio-asyncio's nursery must not turn the caller's own error into an exception group."""
        _create_bucket(moto_endpoint, "plain")
        with pytest.raises(KeyError, match="mine"):
            async with open_store(f"s3+http://{moto_endpoint}/plain"):
                raise KeyError("mine")


@dataclass
class SFTPServer:
    port: int
    known_hosts: Path
    root: Path


@pytest.fixture
async def sftp_server(tmp_path: Path) -> AsyncIterator[SFTPServer]:
    """An asyncssh SFTP server on loopback, chrooted to a temporary directory, password login."""
    import asyncssh

    root = tmp_path / "sftp-root"
    root.mkdir()
    key = asyncssh.generate_private_key("ssh-ed25519")

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return (username, password) == ("aria", "secret")

    async with trio_asyncio.open_loop() as loop:
        listener = await trio_asyncio.aio_as_trio(asyncssh.listen, loop=loop)(
            host="127.0.0.1",
            port=0,
            server_host_keys=[key],
            server_factory=Server,
            sftp_factory=lambda channel: asyncssh.SFTPServer(channel, chroot=os.fsencode(root)),
        )
        port = listener.sockets[0].getsockname()[1]
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {key.export_public_key().decode()}")
        try:
            yield SFTPServer(port, known_hosts, root)
        finally:
            listener.close()
            with trio.CancelScope(shield=True):
                await trio_asyncio.aio_as_trio(listener.wait_closed, loop=loop)()


class TestSFTP:
    async def test_round_trip_with_atomic_layout(
        self, sftp_server: SFTPServer, desync_data: Path, tmp_path: Path
    ) -> None:
        options = StoreOptions(sftp_password="secret", sftp_known_hosts=str(sftp_server.known_hosts))
        location = f"sftp://aria@127.0.0.1:{sftp_server.port}/store"
        async with open_store(location, options=options) as store:
            index, stats = await operations.make(desync_data / "blob1", store, sizes=SMALL)
            assert stats.written == 131
            await operations.extract(index, tmp_path / "out", store)
            assert hashlib.sha256((tmp_path / "out").read_bytes()).hexdigest() == BLOB1_SHA256
            listed = {chunk_id async for chunk_id in store.list_chunks()}
            assert listed == set(index.unique_ids())
        first = index.chunks[0].id.hex()
        on_disk = sftp_server.root / "store" / first[:4] / f"{first}.cacnk"
        assert on_disk.is_file()
        leftovers = [p for p in (sftp_server.root / "store").rglob("*") if p.name.startswith(".tmp-cacnk")]
        assert leftovers == []
        async with open_store(location, options=options) as store:
            await store.remove_chunk(index.chunks[0].id)
            with pytest.raises(
                ChunkMissing, match=re.escape(f"chunk {first} is missing from store {location}")
            ):
                await store.get_chunk(index.chunks[0].id, Digest.SHA512_256)

    async def test_a_wrong_password_is_a_store_failure(self, sftp_server: SFTPServer) -> None:
        options = StoreOptions(sftp_password="wrong", sftp_known_hosts=str(sftp_server.known_hosts))
        with pytest.raises(StoreFailure, match="connecting failed"):
            async with open_store(f"sftp://aria@127.0.0.1:{sftp_server.port}/store", options=options):
                pass
