"""WebRTC: two aiortc peers on this machine open a data channel; their offer and answer travel only
through aria_auth's token-authenticated signalling channel (a WebSocket on the hypercorn server)."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_asyncio

from tests.auth.conftest import PASSWORD, Node, serving
from tests.websocket import WebSocket

aiortc = pytest.importorskip("aiortc", reason="aiortc (and its PyAV wheel) is not installed")


# ---- the peers (asyncio side, run through trio-asyncio) ---------------------------------------


class Peer:
    def __init__(self, configuration: Any = None) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection

        # By default no ICE servers: host candidates only, no STUN lookups leaving the machine.
        self.pc = RTCPeerConnection(configuration or RTCConfiguration(iceServers=[]))
        self.channel: Any = None
        self.opened = asyncio.get_event_loop().create_future()
        self.inbox: asyncio.Queue[str] = asyncio.Queue()

    def _watch(self, channel: Any) -> None:
        self.channel = channel
        channel.on("message", self.inbox.put_nowait)
        if channel.readyState == "open":
            self.opened.set_result(True)
        else:
            channel.on("open", lambda: self.opened.done() or self.opened.set_result(True))

    async def offer(self) -> dict[str, str]:
        self._watch(self.pc.createDataChannel("chat"))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return {"type": self.pc.localDescription.type, "sdp": self.pc.localDescription.sdp}

    async def answer(self, offer: dict[str, str]) -> dict[str, str]:
        from aiortc import RTCSessionDescription

        self.pc.on("datachannel", self._watch)
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], offer["type"]))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return {"type": self.pc.localDescription.type, "sdp": self.pc.localDescription.sdp}

    async def accept(self, answer: dict[str, str]) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))

    async def exchange(self, text: str) -> str:
        await self.opened
        self.channel.send(text)
        return await self.inbox.get()

    async def receive_then_reply(self, reply: str) -> str:
        await self.opened
        got = await self.inbox.get()
        self.channel.send(reply)
        return got

    async def close(self) -> None:
        await self.pc.close()


async def test_two_aiortc_peers_signal_through_the_authenticated_channel(node: Node) -> None:
    auth = node.auth
    await auth.put_role("caller", [{"permission": "webrtc.room:join"}])
    await auth.add_user("alice", PASSWORD, roles=["caller"])
    await auth.add_user("bob", PASSWORD, roles=["caller"])
    await auth.add_user("mallory", PASSWORD)  # no role: may not join
    alice = (await auth.login("alice", PASSWORD)).access_token
    bob = (await auth.login("bob", PASSWORD)).access_token
    mallory = (await auth.login("mallory", PASSWORD)).access_token
    port = node.listener.getsockname()[1]
    with trio.fail_after(90):
        async with serving(node), trio_asyncio.open_loop() as loop:
            # Unauthenticated, forged and unauthorised clients get nothing relayed.
            anonymous = await WebSocket.connect(port, "/webrtc/room1")
            await anonymous.send({"type": "auth", "token": alice[:-6] + "AAAAAA"})
            assert await anonymous.receive() == {"type": "error", "error": "unauthenticated"}
            assert await anonymous.receive() is None and anonymous.close_code == 4401
            intruder = await WebSocket.connect(
                port, "/webrtc/room1", [("Authorization", f"Bearer {mallory}")]
            )
            refused = await intruder.receive()
            assert (
                refused is not None
                and refused["error"] == "forbidden"
                and "deny by default" in refused["reason"]
            )
            assert await intruder.receive() is None and intruder.close_code == 4403

            # alice authenticates with a header, bob with a first message (what browsers can do).
            ws_a = await WebSocket.connect(port, "/webrtc/room1", [("Authorization", f"Bearer {alice}")])
            welcome_a = await ws_a.receive()
            assert welcome_a is not None and welcome_a["type"] == "welcome" and welcome_a["peers"] == []
            ws_b = await WebSocket.connect(port, "/webrtc/room1")
            await ws_b.send({"type": "auth", "token": bob})
            welcome_b = await ws_b.receive()
            assert welcome_b is not None and welcome_b["peers"] == [
                {"peer": welcome_a["peer"], "name": "alice"}
            ]
            joined = await ws_a.receive()
            assert joined == {"type": "peer-joined", "peer": welcome_b["peer"], "name": "bob"}

            peer_a = await loop.run_aio_coroutine(_make_peer())
            peer_b = await loop.run_aio_coroutine(_make_peer())
            try:
                offer = await loop.run_aio_coroutine(peer_a.offer())
                await ws_a.send({"type": "signal", "to": welcome_b["peer"], "data": offer})
                relayed = await ws_b.receive()
                assert (
                    relayed is not None
                    and relayed["from"] == welcome_a["peer"]
                    and relayed["name"] == "alice"
                )
                answer = await loop.run_aio_coroutine(peer_b.answer(relayed["data"]))
                await ws_b.send({"type": "signal", "to": relayed["from"], "data": answer})
                back = await ws_a.receive()
                assert back is not None and back["name"] == "bob"
                await loop.run_aio_coroutine(peer_a.accept(back["data"]))

                async with trio.open_nursery() as nursery:
                    results: dict[str, str] = {}

                    async def side_b() -> None:
                        results["b"] = await loop.run_aio_coroutine(peer_b.receive_then_reply("hello alice"))

                    nursery.start_soon(side_b)
                    results["a"] = await loop.run_aio_coroutine(peer_a.exchange("hello bob"))
                assert results == {"a": "hello alice", "b": "hello bob"}
            finally:
                await loop.run_aio_coroutine(peer_a.close())
                await loop.run_aio_coroutine(peer_b.close())

            # Revoking alice's token ends her signalling at her next message.
            await auth.revoke_token(alice)
            await ws_a.send({"type": "signal", "data": {"late": True}})
            assert await ws_a.receive() == {"type": "error", "error": "token expired or revoked"}
            assert await ws_a.receive() is None and ws_a.close_code == 4401
            left = await ws_b.receive()
            assert left == {"type": "peer-left", "peer": welcome_a["peer"]}
            for ws in (anonymous, intruder, ws_a, ws_b):
                await ws.close()
    records = await auth.audit(kind="authz", limit=10)
    assert {(r["principal"], r["result"]) for r in records} >= {
        ("alice", "allow"),
        ("bob", "allow"),
        ("mallory", "deny"),
    }


async def _make_peer(configuration: Any = None) -> Peer:
    return Peer(configuration)


@asynccontextmanager
async def turn_server(secret: bytes, workdir: Path) -> AsyncIterator[int]:
    """coturn on 127.0.0.1 checking TURN REST credentials with ``secret``; yields its port."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    relay_base = random.randrange(50000, 60000, 100)
    args = [
        "turnserver", "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={port}",
        f"--min-port={relay_base}", f"--max-port={relay_base + 99}", "--use-auth-secret",
        f"--static-auth-secret={secret.decode()}", "--realm=aria.test", "--no-tls", "--no-dtls", "--no-cli",
        "--allow-loopback-peers", "--log-file=stdout", "--simple-log", f"--pidfile={workdir / 'turn.pid'}",
        f"--userdb={workdir / 'turndb'}",
    ]  # fmt: skip
    process = await trio.lowlevel.open_process(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    try:
        async with trio.open_nursery() as nursery:
            seen = b""
            with trio.fail_after(30):
                while b"Total General servers" not in seen:
                    chunk = await process.stdout.receive_some(65536)
                    if not chunk:
                        raise RuntimeError(f"turnserver exited: {seen.decode(errors='replace')[-2000:]}")
                    seen += chunk

            async def drain() -> None:  # keep its log pipe from filling up
                while await process.stdout.receive_some(65536):
                    pass

            nursery.start_soon(drain)
            yield port
            nursery.cancel_scope.cancel()
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


@pytest.mark.skipif(shutil.which("turnserver") is None, reason="coturn's turnserver is not installed")
async def test_peers_relay_through_coturn_with_credentials_from_aria(node: Node, tmp_path: Path) -> None:
    """The TURN REST credentials work with a real TURN server: with relay-only ICE, two peers can
    connect only through coturn, which accepts aria's credentials and refuses expired or forged ones."""
    from aioice.stun import TransactionFailed
    from aioice.turn import create_turn_endpoint
    from aiortc import RTCConfiguration, RTCIceServer
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    from aria.apps.auth.turn import turn_credentials

    auth = node.auth
    await auth.add_user("alice", PASSWORD)
    await auth.add_user("bob", PASSWORD)
    secret = await auth.turn_shared_secret()
    principals = [
        await auth.verify_token((await auth.login(n, PASSWORD)).access_token) for n in ("alice", "bob")
    ]
    with trio.fail_after(90):
        async with turn_server(secret, tmp_path) as port, trio_asyncio.open_loop() as loop:

            def configuration(credentials: dict[str, Any]) -> Any:
                server = RTCIceServer(
                    urls=f"turn:127.0.0.1:{port}",
                    username=credentials["username"],
                    credential=credentials["credential"],
                )
                return RTCConfiguration(iceServers=[server], iceTransportPolicy=RTCIceTransportPolicy.RELAY)

            async def allocate(username: str, password: str) -> None:
                transport, _ = await create_turn_endpoint(
                    asyncio.DatagramProtocol, ("127.0.0.1", port), username, password
                )
                transport.close()

            good = auth.turn_credentials(principals[0])
            await loop.run_aio_coroutine(allocate(good["username"], good["credential"]))
            expired = turn_credentials(secret, principals[0].id, ttl=60, now=auth.clock() - 3600, uris=[])
            forged = {**good, "username": good["username"].replace(":", "0:", 1)}  # a later expiry
            for bad in (expired, forged):
                with pytest.raises(TransactionFailed, match="401"):
                    await loop.run_aio_coroutine(allocate(bad["username"], bad["credential"]))

            peer_a = await loop.run_aio_coroutine(
                _make_peer(configuration(auth.turn_credentials(principals[0])))
            )
            peer_b = await loop.run_aio_coroutine(
                _make_peer(configuration(auth.turn_credentials(principals[1])))
            )
            try:
                offer = await loop.run_aio_coroutine(peer_a.offer())
                assert "typ relay" in offer["sdp"] and "typ host" not in offer["sdp"]
                answer = await loop.run_aio_coroutine(peer_b.answer(offer))
                await loop.run_aio_coroutine(peer_a.accept(answer))
                async with trio.open_nursery() as nursery:
                    results: dict[str, str] = {}

                    async def side_b() -> None:
                        results["b"] = await loop.run_aio_coroutine(peer_b.receive_then_reply("relayed back"))

                    nursery.start_soon(side_b)
                    results["a"] = await loop.run_aio_coroutine(peer_a.exchange("relayed"))
                assert results == {"a": "relayed back", "b": "relayed"}
            finally:
                await loop.run_aio_coroutine(peer_a.close())
                await loop.run_aio_coroutine(peer_b.close())
