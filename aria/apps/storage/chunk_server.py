"""desync's HTTP chunk-server protocol, as a server in front of any store (``aria storage chunk-server``).

Paths are exactly ``/<id[:4]>/<id>.cacnk`` (``/<id[:4]>/<id>`` when serving uncompressed); anything
else is 400. ``GET`` answers 200 with the chunk (zstd-compressed unless uncompressed) or 404;
``HEAD`` the same without a body; ``PUT`` is accepted only on a writable server, verifies the body
against the ID in the path (400 on mismatch) and answers 200; other methods get 405. With an
authorization value configured, a request without that exact ``Authorization`` header gets 401. So
desync itself can use a running aria as its remote store (``desync extract -s http://host:port/``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio
import zstandard

from aria.apps.storage.errors import ChunkInvalid, ChunkMissing, StorageError
from aria.apps.storage.format import MAX_CHUNK_SIZE, Digest, decompress_chunk
from aria.apps.storage.stores.base import Store

_PATH = re.compile(r"^/([0-9a-f]{4})/(\1[0-9a-f]{60})(\.cacnk)?$")
_log = structlog.get_logger("aria_storage.chunk_server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ChunkServerApp:
    """The ASGI application serving one store.

    Args:
        store: The store to serve (a router or cache store works too).
        writable: Accept PUT.
        compressed: Serve and accept ``.cacnk`` (zstd); False for bare-ID raw chunks.
        authorization: If set, the exact ``Authorization`` header every request must carry.
        digest: The digest used to verify uploaded chunks.
    """

    def __init__(
        self,
        store: Store,
        *,
        writable: bool = False,
        compressed: bool = True,
        authorization: str = "",
        digest: Digest = Digest.SHA512_256,
    ) -> None:
        self.store = store
        self.writable = writable
        self.compressed = compressed
        self.authorization = authorization.encode()
        self.digest = digest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        status, body = await self._handle(scope, receive)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/octet-stream" if status == 200 else b"text/plain"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        if self.authorization:
            headers = dict(scope.get("headers", []))
            if headers.get(b"authorization") != self.authorization:
                return 401, b"unauthorized\n"
        method = scope["method"]
        if method not in ("GET", "HEAD", "PUT"):
            return 405, b"method not allowed\n"
        match = _PATH.match(scope["path"])
        if match is None or (match.group(3) is not None) != self.compressed:
            kind = "/XXXX/<id>.cacnk" if self.compressed else "/XXXX/<id>"
            return 400, f"expected a chunk path {kind}\n".encode()
        chunk_id = bytes.fromhex(match.group(2))
        try:
            if method == "HEAD":
                return (200, b"") if await self.store.has_chunk(chunk_id) else (404, b"")
            if method == "GET":
                return 200, await self.store.get_chunk_as(chunk_id, self.digest, compressed=self.compressed)
            if not self.writable:
                return 400, b"this chunk server is read-only\n"
            body = await _read_body(receive)
            if body is None:
                return 400, b"chunk too large\n"
            return await self._put(chunk_id, body)
        except ChunkMissing:
            return 404, b"chunk not found\n"
        except ChunkInvalid as exc:
            _log.error("invalid chunk in the served store", chunk=chunk_id.hex(), error=str(exc))
            return 500, f"{exc}\n".encode()
        except StorageError as exc:
            _log.error("store failure", chunk=chunk_id.hex(), error=str(exc))
            return 500, f"{exc}\n".encode()

    async def _put(self, chunk_id: bytes, body: bytes) -> tuple[int, bytes]:
        def check() -> bytes | None:
            try:
                data = decompress_chunk(body) if self.compressed else body
            except zstandard.ZstdError:
                return None
            return data if self.digest.of(data) == chunk_id else None

        data = await trio.to_thread.run_sync(check)
        if data is None:
            return 400, f"the body does not match chunk {chunk_id.hex()}\n".encode()
        await self.store.put_chunk(chunk_id, data)
        return 200, b""


async def _read_body(receive: Receive) -> bytes | None:
    parts = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_CHUNK_SIZE:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def serve_chunks(
    store: Store,
    listen: str,
    *,
    writable: bool = False,
    compressed: bool = True,
    authorization: str = "",
    digest: Digest = Digest.SHA512_256,
    on_ready: Callable[[str], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``store`` over HTTP on ``listen`` (``HOST:PORT``; port 0 picks a free one) until cancelled.

    Calls ``task_status.started(address)`` (and ``on_ready``) with the bound ``HOST:PORT`` once the
    socket listens.

    Raises:
        ValueError: if ``listen`` is not ``HOST:PORT``.
    """
    from hypercorn.config import Config
    from hypercorn.trio import serve

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"listen address {listen!r} must be HOST:PORT")
    config = Config()
    config.bind = [listen]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0
    app = ChunkServerApp(
        store, writable=writable, compressed=compressed, authorization=authorization, digest=digest
    )

    async def run(*, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(app, config, task_status=task_status, mode="asgi")  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(run)
        address = binds[0].removeprefix("http://")
        if on_ready is not None:
            await on_ready(address)
        task_status.started(address)
