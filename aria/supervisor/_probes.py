"""Readiness probes for OS-process children: how Aria knows a program is ready to serve."""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

_FIRST_INTERVAL = 0.01
_MAX_INTERVAL = 0.25


class Probe:
    """Base class: :meth:`wait_ready` returns once the program is ready (it is cancelled if the
    program exits first or the start timeout passes). :meth:`feed_line` sees every output line."""

    async def wait_ready(self) -> None:
        raise NotImplementedError

    def feed_line(self, line: str) -> None:
        """Called with each line the program prints (stdout and stderr)."""

    def reset(self) -> None:
        """Forget what a previous run of the program printed (called before each start)."""

    def describe(self) -> str:
        return type(self).__name__


async def _poll(check: Callable[[], object]) -> None:
    interval = _FIRST_INTERVAL
    while not await check():  # type: ignore[misc]
        await trio.sleep(interval)
        interval = min(interval * 1.5, _MAX_INTERVAL)


@dataclass
class TcpProbe(Probe):
    """Ready when a TCP connection to ``host:port`` succeeds."""

    port: int
    host: str = "127.0.0.1"

    async def wait_ready(self) -> None:
        async def check() -> bool:
            try:
                stream = await trio.open_tcp_stream(self.host, self.port)
            except OSError:
                return False
            await stream.aclose()
            return True

        await _poll(check)

    def describe(self) -> str:
        return f"tcp {self.host}:{self.port}"


@dataclass
class UnixSocketProbe(Probe):
    """Ready when a connection to the unix socket at ``path`` succeeds."""

    path: str | Path

    async def wait_ready(self) -> None:
        async def check() -> bool:
            try:
                stream = await trio.open_unix_socket(str(self.path))
            except OSError:
                return False
            await stream.aclose()
            return True

        await _poll(check)

    def describe(self) -> str:
        return f"unix socket {self.path}"


@dataclass
class HttpProbe(Probe):
    """Ready when ``GET url`` answers with a status in ``ok_statuses`` (2xx by default).

    ``ca_file`` verifies an HTTPS server against a private CA (never ``verify=False``).
    """

    url: str
    ok_statuses: Callable[[int], bool] = field(default=lambda status: 200 <= status < 300)
    ca_file: str | Path | None = None

    async def wait_ready(self) -> None:
        import httpx  # imported here: it is the slowest import of the supervisor and rarely needed

        verify: ssl.SSLContext | bool = True
        if self.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self.ca_file))
        async with httpx.AsyncClient(verify=verify, timeout=2.0) as client:

            async def check() -> bool:
                try:
                    response = await client.get(self.url)
                except httpx.TransportError:
                    return False
                return bool(self.ok_statuses(response.status_code))

            await _poll(check)

    def describe(self) -> str:
        return f"http {self.url}"


class LogLineProbe(Probe):
    """Ready when the program prints a line matching ``pattern`` (a regular expression)."""

    def __init__(self, pattern: str | re.Pattern[str]) -> None:
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        self._seen = trio.Event()

    def reset(self) -> None:
        self._seen = trio.Event()

    def feed_line(self, line: str) -> None:
        if not self._seen.is_set() and self.pattern.search(line):
            self._seen.set()

    async def wait_ready(self) -> None:
        await self._seen.wait()

    def describe(self) -> str:
        return f"log line /{self.pattern.pattern}/"
