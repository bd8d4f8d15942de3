"""A minimal WebSocket client (wsproto over a trio stream, plain or TLS), enough for signalling."""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from typing import Any

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, RejectConnection, Request, TextMessage


class WebSocket:
    """A minimal WebSocket client over a trio TCP stream (wsproto), enough for signalling."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.messages: list[str] = []
        self.close_code: int | None = None
        self._partial = ""

    @classmethod
    async def connect(
        cls,
        port: int,
        path: str,
        headers: Sequence[tuple[str, str]] = (),
        ssl_context: ssl.SSLContext | None = None,
    ) -> WebSocket:
        """Open ``ws://127.0.0.1:<port><path>`` (``wss://`` with ``ssl_context``)."""
        stream: trio.abc.Stream = await trio.open_tcp_stream("127.0.0.1", port)
        if ssl_context is not None:
            stream = trio.SSLStream(stream, ssl_context, server_hostname="127.0.0.1")
        client = cls(stream)
        request = Request(
            host=f"127.0.0.1:{port}",
            target=path,
            extra_headers=[(k.encode(), v.encode()) for k, v in headers],
        )
        await client.stream.send_all(client.ws.send(request))
        while True:
            for event in await client._events():
                if isinstance(event, AcceptConnection):
                    return client
                if isinstance(event, RejectConnection):
                    raise ConnectionError(f"websocket refused with HTTP {event.status_code}")

    async def _events(self) -> list[Any]:
        data = await self.stream.receive_some(65536)
        self.ws.receive_data(data or None)
        return list(self.ws.events())

    async def send(self, message: dict[str, Any]) -> None:
        await self.stream.send_all(self.ws.send(TextMessage(json.dumps(message))))

    async def receive(self) -> dict[str, Any] | None:
        """The next JSON message, or None once the server closed (``close_code`` says how)."""
        while not self.messages:
            if self.close_code is not None:
                return None
            for event in await self._events():
                if isinstance(event, TextMessage):
                    self._partial += event.data
                    if event.message_finished:
                        self.messages.append(self._partial)
                        self._partial = ""
                elif isinstance(event, CloseConnection):
                    self.close_code = event.code
                    try:
                        await self.stream.send_all(self.ws.send(event.response()))
                    except trio.BrokenResourceError:
                        pass
        return json.loads(self.messages.pop(0))

    async def close(self) -> None:
        try:
            await self.stream.send_all(self.ws.send(CloseConnection(code=1000)))
        except (trio.BrokenResourceError, trio.ClosedResourceError, Exception):
            pass
        await self.stream.aclose()
