"""A minimal WebSocket client for tests: wsproto over a trio TCP stream, TLS optional."""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from typing import Any

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, RejectConnection, Request, TextMessage
from wsproto.utilities import LocalProtocolError


class WebSocketRefused(ConnectionError):
    """The server answered the handshake with an HTTP status instead of switching protocols."""

    def __init__(self, status: int) -> None:
        super().__init__(f"websocket refused with HTTP {status}")
        self.status = status


class WebSocket:
    """JSON messages over one WebSocket connection."""

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
        *,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> WebSocket:
        stream: trio.abc.Stream
        if ssl_context is not None:
            stream = await trio.open_ssl_over_tcp_stream(
                host, port, ssl_context=ssl_context, https_compatible=True
            )
        else:
            stream = await trio.open_tcp_stream(host, port)
        client = cls(stream)
        request = Request(
            host=f"{host}:{port}",
            target=path,
            extra_headers=[(name.encode(), value.encode()) for name, value in headers],
        )
        await client.stream.send_all(client.ws.send(request))
        while True:
            for event in await client._events():
                if isinstance(event, AcceptConnection):
                    return client
                if isinstance(event, RejectConnection):
                    await stream.aclose()
                    raise WebSocketRefused(event.status_code)

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
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
        return json.loads(self.messages.pop(0))  # type: ignore[no-any-return]

    async def close(self) -> None:
        try:
            await self.stream.send_all(self.ws.send(CloseConnection(code=1000)))
        except (trio.BrokenResourceError, trio.ClosedResourceError, LocalProtocolError):
            pass  # the server closed first
        await self.stream.aclose()
