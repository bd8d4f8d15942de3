"""An S3 chunk store (``s3+http[s]://host[:port]/bucket[/prefix]``) with aiobotocore.

Keys are ``<prefix>/<id[:4]>/<id>.cacnk`` as desync lays them out. aiobotocore is asyncio-only, so
the store runs it under trio through trio-asyncio: it opens its own asyncio loop for its lifetime
(:func:`open_s3_store`) and every call crosses over with ``aio_as_trio``. An object PUT is atomic by
nature: a reader sees the whole chunk or nothing. Credentials come from the options or, when those
are empty, from the environment as boto reads it (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import trio
import trio_asyncio
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from aria.apps.storage.errors import ChunkMissing, StoreFailure, StoreURLError
from aria.apps.storage.format import Digest, chunk_relative_path
from aria.apps.storage.pipeline import single_errors
from aria.apps.storage.stores.base import Store, StoreOptions
from aria.asyncio_bridge import open_asyncio_loop

R = TypeVar("R")
_KEY = re.compile(r"(?:^|/)([0-9a-f]{4})/(\1[0-9a-f]{60})(\.cacnk)?$")


def parse_s3_location(location: str) -> tuple[str, str, str, str]:
    """``(endpoint URL, bucket, key prefix, addressing style)`` of an ``s3+http[s]://`` location.

    Raises:
        StoreURLError: if there is no host or no bucket, or ``lookup`` is not dns, path or auto.
    """
    parts = urlsplit(location)
    scheme = parts.scheme.removeprefix("s3+")
    if not parts.netloc:
        raise StoreURLError(location, "an S3 location needs a host: s3+http://host[:port]/bucket[/prefix]")
    bucket, _, prefix = parts.path.lstrip("/").partition("/")
    if not bucket:
        raise StoreURLError(location, "an S3 location needs a bucket: s3+http://host[:port]/bucket[/prefix]")
    lookup = parse_qs(parts.query).get("lookup", ["path"])[0]
    styles = {"dns": "virtual", "path": "path", "auto": "auto"}
    if lookup not in styles:
        raise StoreURLError(location, f"lookup={lookup!r} must be dns, path or auto")
    return f"{scheme}://{parts.netloc}", bucket, prefix.strip("/"), styles[lookup]


class S3Store(Store):
    """An S3 bucket (and key prefix) holding chunks; open it with :func:`open_s3_store`."""

    def __init__(
        self, location: str, client: Any, loop: Any, bucket: str, prefix: str, options: StoreOptions
    ) -> None:
        self.location = location
        self.compressed = options.compressed
        self.concurrency = options.concurrency
        self._client = client
        self._loop = loop
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""

    def _key(self, chunk_id: bytes) -> str:
        return self._prefix + chunk_relative_path(chunk_id, compressed=self.compressed)

    async def _call(self, operation: str, function: Callable[..., Awaitable[R]], **arguments: Any) -> R:
        try:
            return await trio_asyncio.aio_as_trio(function, loop=self._loop)(**arguments)
        except ClientError as exc:
            raise StoreFailure(self.location, operation, str(exc)) from exc
        except BotoCoreError as exc:
            raise StoreFailure(self.location, operation, str(exc)) from exc

    async def get_chunk(self, chunk_id: bytes, digest: Digest = Digest.SHA512_256) -> bytes:
        async def fetch() -> bytes | None:
            try:
                response = await self._client.get_object(Bucket=self._bucket, Key=self._key(chunk_id))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            async with response["Body"] as body:
                return await body.read()

        stored = await self._call(f"GET chunk {chunk_id.hex()}", fetch)
        if stored is None:
            raise ChunkMissing(chunk_id, self.location)
        return await trio.to_thread.run_sync(self.decode, chunk_id, stored, digest)

    async def has_chunk(self, chunk_id: bytes) -> bool:
        async def head() -> bool:
            try:
                await self._client.head_object(Bucket=self._bucket, Key=self._key(chunk_id))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                    return False
                raise
            return True

        return await self._call(f"HEAD chunk {chunk_id.hex()}", head)

    async def put_chunk(self, chunk_id: bytes, data: bytes | memoryview) -> bool:
        if await self.has_chunk(chunk_id):
            return False
        encoded = await trio.to_thread.run_sync(self.encode, data)
        await self._call(
            f"PUT chunk {chunk_id.hex()}",
            self._client.put_object,
            Bucket=self._bucket,
            Key=self._key(chunk_id),
            Body=encoded,
        )
        return True

    async def remove_chunk(self, chunk_id: bytes) -> None:
        await self._call(
            f"DELETE chunk {chunk_id.hex()}",
            self._client.delete_object,
            Bucket=self._bucket,
            Key=self._key(chunk_id),
        )

    async def list_chunks(self) -> AsyncIterator[bytes]:
        token: str | None = None
        while True:
            arguments: dict[str, Any] = {"Bucket": self._bucket, "Prefix": self._prefix}
            if token:
                arguments["ContinuationToken"] = token
            page = await self._call("listing chunks", self._client.list_objects_v2, **arguments)
            for item in page.get("Contents", []):
                match = _KEY.search(item["Key"])
                if match is None or (match.group(3) is not None) != self.compressed:
                    continue
                chunk_id = bytes.fromhex(match.group(2))
                if item["Key"] == self._key(chunk_id):  # exactly under our prefix, no deeper
                    yield chunk_id
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")


@asynccontextmanager
async def open_s3_store(location: str, options: StoreOptions) -> AsyncIterator[S3Store]:
    """Open an S3 store: its own trio-asyncio loop and an aiobotocore client, closed at the end.

    Raises:
        StoreURLError: for a malformed location.
        StoreFailure: if the bucket cannot be reached (checked once on opening).
    """
    endpoint, bucket, prefix, style = parse_s3_location(location)
    session = get_session()
    credentials: dict[str, str] = {}
    if options.s3_access_key:
        credentials = {
            "aws_access_key_id": options.s3_access_key,
            "aws_secret_access_key": options.s3_secret_key,
        }
    config = AioConfig(
        s3={"addressing_style": style},
        max_pool_connections=max(options.concurrency, 1),
        connect_timeout=options.timeout,
        read_timeout=options.timeout,
        retries={"max_attempts": 3},
    )
    with single_errors():
        async with (
            open_asyncio_loop() as loop,
            _client(location, session, endpoint, config, options, credentials, loop) as client,
        ):
            store = S3Store(location, client, loop, bucket, prefix, options)
            await store._call("checking the bucket", client.head_bucket, Bucket=bucket)
            yield store


@asynccontextmanager
async def _client(
    location: str,
    session: Any,
    endpoint: str,
    config: AioConfig,
    options: StoreOptions,
    credentials: Any,
    loop: Any,
) -> AsyncIterator[Any]:
    """An aiobotocore S3 client entered and exited on ``loop``."""
    creator = session.create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=options.s3_region or "us-east-1",
        config=config,
        **credentials,
    )
    try:
        client = await trio_asyncio.aio_as_trio(creator.__aenter__, loop=loop)()
    except BotoCoreError as exc:
        raise StoreFailure(location, "connecting", str(exc)) from exc
    try:
        yield client
    finally:
        with trio.CancelScope(shield=True):
            await trio_asyncio.aio_as_trio(creator.__aexit__, loop=loop)(None, None, None)
