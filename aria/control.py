"""The control channel: a unix socket in the data directory that ``aria status`` and ``aria stop`` use.

Protocol: the client sends one JSON object on one line (``{"op": "status"}``) and reads one JSON
object back (``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``). The socket is created with
mode 0600, so only the user running Aria can talk to it. Apps add operations through
``system.control_ops[name] = async_function``.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import trio

from aria.errors import AriaError

if TYPE_CHECKING:
    from aria.system import System

log = structlog.get_logger("aria.control")

_MAX_REQUEST = 1 << 20


class ControlError(AriaError):
    """Raised by the client when no Aria answers on the socket, or it answers with an error."""


async def serve_control(system: System, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Listen on the control socket until cancelled; remove the socket file afterwards."""
    path = system.config.control_socket
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_socket(path)
    listener_socket = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        await listener_socket.bind(str(path))
    finally:
        os.umask(old_umask)
    listener_socket.listen()
    listener = trio.SocketListener(listener_socket)
    task_status.started(path)
    try:
        await trio.serve_listeners(lambda stream: _handle(system, stream), [listener])
    finally:
        path.unlink(missing_ok=True)


def _remove_stale_socket(path: Path) -> None:
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)  # nobody listens: a leftover from a killed process
    else:
        raise ControlError(f"another aria process is already listening on {path}")
    finally:
        probe.close()


async def _handle(system: System, stream: trio.SocketStream) -> None:
    async with stream:
        try:
            request = json.loads(await _read_line(stream))
            response = await _dispatch(system, request)
        except Exception as exc:
            log.warning("control request failed", error=str(exc))
            response = {"ok": False, "error": str(exc)}
        try:
            await stream.send_all(json.dumps(response, default=str).encode() + b"\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def _read_line(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > _MAX_REQUEST:
            raise ValueError("control request too large")
    return data.split(b"\n", 1)[0]


async def _dispatch(system: System, request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "status":
        return {"ok": True, "tree": system.tree()}
    if op == "events":
        limit = int(request.get("limit", 100))
        return {"ok": True, "events": [event.to_json() for event in system.events.recent(limit)]}
    if op == "stop":
        system.stop_nowait()
        return {"ok": True, "stopping": True}
    handler = system.control_ops.get(str(op))
    if handler is None:
        known = ", ".join(["status", "events", "stop", *sorted(system.control_ops)])
        raise ValueError(f"unknown control op {op!r}; known: {known}")
    return {"ok": True, **(await handler(**request.get("args", {})))}


def request(path: Path, op: str, /, *, timeout: float = 30.0, **args: Any) -> dict[str, Any]:
    """Send one request to the Aria listening on ``path`` and return its answer (blocking).

    Raises:
        ControlError: if nothing listens there, or the answer says ``ok: false``.
    """
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    try:
        try:
            client.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(f"aria is not running (no control socket answers at {path})") from None
        client.sendall(json.dumps({"op": op, "args": args} if args else {"op": op}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        client.close()
    if not data:
        raise ControlError(f"aria closed the control connection at {path} without answering")
    answer: dict[str, Any] = json.loads(data)
    if not answer.get("ok"):
        raise ControlError(answer.get("error", "unknown error"))
    return answer
