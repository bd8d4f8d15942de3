"""An SFTP chunk store (``sftp://[user@]host[:port]/path``) with asyncssh.

The layout is the local store's (``<path>/<id[:4]>/<id>.cacnk``) and so is the atomic write: a
``.tmp-cacnk<random>`` file in the prefix directory, renamed into place. asyncssh is asyncio-only,
so the store runs it under trio through trio-asyncio, like the S3 store.
"""

from __future__ import annotations

import posixpath
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import asyncssh
import trio
import trio_asyncio

from aria.apps.storage.errors import ChunkMissing, StoreFailure, StoreURLError
from aria.apps.storage.format import CHUNK_EXTENSION, Digest
from aria.apps.storage.pipeline import single_errors
from aria.apps.storage.stores.base import Store, StoreOptions
from aria.apps.storage.stores.local import TEMP_PREFIX
from aria.asyncio_bridge import open_asyncio_loop

R = TypeVar("R")
_NAME = re.compile(r"^([0-9a-f]{64})(\.cacnk)?$")


class SFTPStore(Store):
    """A directory on an SFTP server holding chunks; open it with :func:`open_sftp_store`."""

    def __init__(self, location: str, sftp: Any, loop: Any, root: str, options: StoreOptions) -> None:
        self.location = location
        self.compressed = options.compressed
        self.concurrency = options.concurrency
        self._sftp = sftp
        self._loop = loop
        self._root = root
        self._suffix = CHUNK_EXTENSION if options.compressed else ""

    def _path(self, chunk_id: bytes) -> str:
        hex_id = chunk_id.hex()
        return posixpath.join(self._root, hex_id[:4], hex_id + self._suffix)

    async def _call(self, operation: str, function: Callable[[], Awaitable[R]]) -> R:
        try:
            return await trio_asyncio.aio_as_trio(function, loop=self._loop)()
        except (asyncssh.Error, OSError) as exc:
            raise StoreFailure(self.location, operation, str(exc) or repr(exc)) from exc

    async def get_chunk(self, chunk_id: bytes, digest: Digest = Digest.SHA512_256) -> bytes:
        async def fetch() -> bytes | None:
            try:
                async with self._sftp.open(self._path(chunk_id), "rb") as handle:
                    return await handle.read()
            except asyncssh.SFTPNoSuchFile:
                return None

        stored = await self._call(f"reading chunk {chunk_id.hex()}", fetch)
        if stored is None:
            raise ChunkMissing(chunk_id, self.location)
        return await trio.to_thread.run_sync(self.decode, chunk_id, stored, digest)

    async def has_chunk(self, chunk_id: bytes) -> bool:
        return await self._call(
            f"checking chunk {chunk_id.hex()}", lambda: self._sftp.exists(self._path(chunk_id))
        )

    async def put_chunk(self, chunk_id: bytes, data: bytes | memoryview) -> bool:
        if await self.has_chunk(chunk_id):
            return False
        encoded = await trio.to_thread.run_sync(self.encode, data)
        path = self._path(chunk_id)
        directory = posixpath.dirname(path)
        temporary = posixpath.join(directory, f"{TEMP_PREFIX}{secrets.token_hex(8)}")

        async def write() -> None:
            await self._sftp.makedirs(directory, exist_ok=True)
            try:
                async with self._sftp.open(temporary, "wb") as handle:
                    await handle.write(encoded)
                if "posix-rename@openssh.com" in self._extensions():
                    await self._sftp.posix_rename(temporary, path)
                else:
                    await self._sftp.rename(temporary, path)
            except BaseException:
                try:
                    await self._sftp.remove(temporary)
                except (asyncssh.Error, OSError):
                    pass
                raise

        await self._call(f"writing chunk {chunk_id.hex()}", write)
        return True

    def _extensions(self) -> set[str]:
        extensions = getattr(self._sftp, "supports_extension", None)
        if extensions is None:
            return set()
        return {name for name in ("posix-rename@openssh.com",) if extensions(name)}

    async def remove_chunk(self, chunk_id: bytes) -> None:
        async def remove() -> None:
            try:
                await self._sftp.remove(self._path(chunk_id))
            except asyncssh.SFTPNoSuchFile:
                pass

        await self._call(f"removing chunk {chunk_id.hex()}", remove)

    async def list_chunks(self) -> AsyncIterator[bytes]:
        async def scan() -> list[bytes]:
            found: list[bytes] = []
            try:
                prefixes = await self._sftp.listdir(self._root)
            except asyncssh.SFTPNoSuchFile:
                return found
            for prefix in prefixes:
                if len(prefix) != 4:
                    continue
                directory = posixpath.join(self._root, prefix)
                if not await self._sftp.isdir(directory):
                    continue
                for name in await self._sftp.listdir(directory):
                    match = _NAME.match(name)
                    if match and match.group(1).startswith(prefix) and (match.group(2) or "") == self._suffix:
                        found.append(bytes.fromhex(match.group(1)))
            return found

        for chunk_id in await self._call("listing chunks", scan):
            yield chunk_id


@asynccontextmanager
async def open_sftp_store(location: str, options: StoreOptions) -> AsyncIterator[SFTPStore]:
    """Connect (its own trio-asyncio loop and one SSH connection) and close at the end.

    Raises:
        StoreURLError: for a location without host or path.
        StoreFailure: if the connection or the login fails.
    """
    parts = urlsplit(location)
    if not parts.hostname:
        raise StoreURLError(location, "an SFTP location needs a host: sftp://[user@]host[:port]/path")
    root = unquote(parts.path) or "/"
    arguments: dict[str, Any] = {"port": parts.port or 22}
    if parts.username:
        arguments["username"] = unquote(parts.username)
    if options.sftp_password:
        arguments["password"] = options.sftp_password
    if options.sftp_known_hosts is not None:
        arguments["known_hosts"] = options.sftp_known_hosts
    if options.sftp_client_keys:
        arguments["client_keys"] = list(options.sftp_client_keys)
    with single_errors():
        async with open_asyncio_loop() as loop:

            async def connect() -> tuple[Any, Any]:
                connection = await asyncssh.connect(parts.hostname, **arguments)
                try:
                    return connection, await connection.start_sftp_client()
                except BaseException:
                    connection.close()
                    raise

            try:
                connection, sftp = await trio_asyncio.aio_as_trio(connect, loop=loop)()
            except (asyncssh.Error, OSError) as exc:
                raise StoreFailure(location, "connecting", str(exc) or repr(exc)) from exc
            try:
                yield SFTPStore(location, sftp, loop, root, options)
            finally:

                async def close() -> None:
                    sftp.exit()
                    connection.close()
                    await connection.wait_closed()

                with trio.CancelScope(shield=True):
                    await trio_asyncio.aio_as_trio(close, loop=loop)()
