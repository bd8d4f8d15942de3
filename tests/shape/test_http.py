"""aria_shape's routes through the real gateway (HTTPS, tokens, permissions), and token streaming
over its WebSocket."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import aria
from aria.apps.shape.rules import validate
from aria.apps.shape.schema import schema_errors
from tests.shape.conftest import PASSWORD, needs_xgrammar, node_config
from tests.websocket import WebSocket, WebSocketRefused

pytestmark = needs_xgrammar
WAIT = 120
SHAPE = "/api/v1/shape"


class Gateway:
    """The running node's gateway: HTTPS clients that trust its CA, and tokens."""

    def __init__(self) -> None:
        service = aria.whereis("aria_coordinate")
        self.url: str = service.url
        self.ca_file: str = service.ca_file
        self.port = int(self.url.rsplit(":", 1)[1])

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # Generation takes seconds on a busy 2-core machine (httpx's default gives up after 5).
        return httpx.AsyncClient(
            base_url=self.url,
            verify=ssl.create_default_context(cafile=self.ca_file),
            headers=headers,
            timeout=60.0,
        )

    async def token(self, user: str) -> str:
        auth = await aria.whereis("aria_auth").get()
        return str((await auth.login(user, PASSWORD)).access_token)

    async def websocket(self, path: str, headers: list[tuple[str, str]] | None = None) -> WebSocket:
        context = ssl.create_default_context(cafile=self.ca_file)
        return await WebSocket.connect(self.port, path, headers or [], ssl_context=context)


@asynccontextmanager
async def gateway(node_dir: Path, model_dir: Path) -> AsyncIterator[Gateway]:
    async with aria.running(config=node_config(node_dir, model_dir, batch_size=4)):
        yield Gateway()


class TestRoutes:
    async def test_generate_queue_and_read_characters_with_permissions(
        self, node_dir: Path, tiny_model_dir: Path
    ) -> None:
        async with gateway(node_dir, tiny_model_dir) as node:
            request = {"n": 2, "seed": 5, "constraints": {"species": "elf"}, "prompt": "a kind elf"}
            async with node.client() as anonymous:
                assert (await anonymous.post(f"{SHAPE}/characters", json=request)).status_code == 401
            async with node.client(await node.token("reader")) as reader:
                refused = await reader.post(f"{SHAPE}/characters", json=request)
                assert refused.status_code == 403
                assert "aria_shape.characters:write is not allowed" in refused.json()["error_description"]
                assert (await reader.post(f"{SHAPE}/batches", json=request)).status_code == 403

            async with node.client(await node.token("oper")) as oper:
                made = await oper.post(f"{SHAPE}/characters", json=request)
                assert made.status_code == 200, made.text
                body = made.json()
                assert [c["meta"]["index"] for c in body["characters"]] == [0, 1]
                for item in body["characters"]:
                    assert item["character"]["species"] == "elf" and validate(item["character"]) == []
                    assert item["meta"]["batch"] == body["batch"] and item["meta"]["seed"] == 5
                    stored = (await oper.get(f"{SHAPE}/characters/{item['id']}")).json()
                    assert stored == {
                        **item,
                        "meta": {**item["meta"], "created_at": stored["meta"]["created_at"]},
                    }

                queued = await oper.post(f"{SHAPE}/batches", json={**request, "priority": 3})
                assert queued.status_code == 202, queued.text
                batch = queued.json()
                assert queued.headers["Location"] == f"{SHAPE}/batches/{batch['id']}"
                assert batch["state"] == "queued" and batch["requested_by"] == "oper"
                with trio.fail_after(WAIT):
                    while (batch := (await oper.get(f"{SHAPE}/batches/{batch['id']}")).json())[  # noqa: ASYNC110 - a job on the queue, polled over HTTP
                        "state"
                    ] not in ("completed", "failed"):
                        await trio.sleep(0.1)
                assert batch["state"] == "completed" and batch["done"] == 2

            async with node.client(await node.token("reader")) as reader:
                listed = await reader.get(f"{SHAPE}/batches/{batch['id']}/characters")
                assert listed.status_code == 200
                # The same request, queued or answered at once: the same characters.
                assert [c["character"] for c in listed.json()] == [c["character"] for c in body["characters"]]
                page = await reader.get(f"{SHAPE}/batches/{batch['id']}/characters?limit=1&offset=1")
                assert [c["meta"]["index"] for c in page.json()] == [1]

    async def test_bad_requests_are_named(self, node_dir: Path, tiny_model_dir: Path) -> None:
        async with gateway(node_dir, tiny_model_dir) as node, node.client(await node.token("oper")) as oper:
            cases: list[tuple[str, Any, str]] = [
                ("/characters", {"n": 17}, "n must be at most 16 here; submit a batch"),
                ("/characters", {"bogus": 1}, "unknown fields ['bogus']"),
                ("/characters", {"n": "2"}, 'n must be an integer, not "2"'),
                ("/characters", [1, 2], "the body must be a JSON object"),
                (
                    "/characters",
                    {"constraints": {"species": "dragon"}},
                    "constraint species='dragon' is impossible",
                ),
                ("/characters", {"seed": -3}, "seed must be 0..9223372036854775807, not -3"),
                ("/batches", {"n": 10001}, "n must be 1..10000, not 10001"),
                ("/batches", {"priority": 12}, "priority must be an integer from 0 to 9, not 12"),
            ]
            for path, body, message in cases:
                response = await oper.post(f"{SHAPE}{path}", json=body)
                assert response.status_code == 400, (path, body, response.text)
                assert response.json()["error"] == "invalid_request"
                assert message in response.json()["error_description"], (path, body)
            missing = await oper.get(f"{SHAPE}/batches/not-a-uuid")
            assert missing.status_code == 404 and "is not a UUID" in missing.json()["error_description"]
            assert (
                await oper.get(f"{SHAPE}/characters/00000000-0000-0000-0000-000000000001")
            ).status_code == 404
            bad_page = await oper.get(
                f"{SHAPE}/batches/00000000-0000-0000-0000-000000000001/characters?limit=x"
            )
            assert bad_page.status_code == 400
            # Generation was counted in the node's Prometheus metrics (aria_monitor's /metrics).
            assert "aria_shape_generation_attempts_total" in (await oper.get("/metrics")).text


async def stream_session(socket: WebSocket, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Send one request; return every message until the server closes."""
    await socket.send(request)
    messages = []
    with trio.fail_after(WAIT):
        while (message := await socket.receive()) is not None:
            messages.append(message)
    return messages


class TestStreaming:
    async def test_tokens_stream_over_a_websocket_and_the_characters_are_stored(
        self, node_dir: Path, tiny_model_dir: Path
    ) -> None:
        async with gateway(node_dir, tiny_model_dir) as node:
            path = f"{SHAPE}/stream"
            with pytest.raises(WebSocketRefused) as anonymous:
                await node.websocket(path)
            assert anonymous.value.status == 401
            with pytest.raises(WebSocketRefused) as reader:
                await node.websocket(f"{path}?access_token={await node.token('reader')}")
            assert reader.value.status == 403

            token = await node.token("oper")
            request = {"n": 2, "seed": 9, "prompt": "a sly rogue"}
            socket = await node.websocket(path, [("Authorization", f"Bearer {token}")])
            try:
                messages = await stream_session(socket, request)
            finally:
                await socket.close()
            assert socket.close_code == 1000
            kinds = [m["type"] for m in messages]
            assert kinds[-1] == "done" and kinds.count("character") == 2 and kinds.count("token") > 100
            done = messages[-1]
            assert done["seed"] == 9 and len(done["ids"]) == 2 and done["batch"]
            characters = {m["index"]: m for m in messages if m["type"] == "character"}
            for index in (0, 1):
                # The streamed pieces of the attempt that made it are the sheet as the model wrote it.
                attempt = characters[index]["meta"]["attempts"] - 1
                text = "".join(
                    m["text"]
                    for m in messages
                    if m["type"] == "token" and m["index"] == index and m["attempt"] == attempt
                )
                sheet = json.loads(text)
                assert schema_errors(sheet) == []
                if not characters[index]["meta"]["repaired_rules"]:
                    assert sheet == characters[index]["character"]
                # Each character message comes after its tokens.
                last_token = max(
                    i for i, m in enumerate(messages) if m["type"] == "token" and m["index"] == index
                )
                assert messages.index(characters[index]) > last_token

            async with node.client(token) as oper:
                for index, character_id in enumerate(done["ids"]):
                    stored = (await oper.get(f"{SHAPE}/characters/{character_id}")).json()
                    assert stored["character"] == characters[index]["character"]
                    assert stored["meta"]["batch"] == done["batch"]
                # The same request over plain HTTP gives the same characters.
                again = (await oper.post(f"{SHAPE}/characters", json=request)).json()
                assert [c["character"] for c in again["characters"]] == [
                    characters[0]["character"],
                    characters[1]["character"],
                ]

            socket = await node.websocket(f"{path}?access_token={token}")
            try:
                messages = await stream_session(socket, {"n": 99})
            finally:
                await socket.close()
            assert socket.close_code == 4400 and messages[0]["error"] == "invalid_request"
            assert "n must be at most 16" in messages[0]["error_description"]

            # A 20-year-old elf breaks a rule that no attempt can repair around the fixed age.
            impossible = {"n": 1, "seed": 1, "constraints": {"species": "elf", "age": 20}}
            socket = await node.websocket(f"{path}?access_token={token}")
            try:
                messages = await stream_session(socket, impossible)
            finally:
                await socket.close()
            assert socket.close_code == 4422 and messages[-1]["error"] == "generation_failed"
            assert "age.species_range" in messages[-1]["error_description"]
            assert [m["attempt"] for m in messages if m["type"] == "retry"] == [0, 1, 2]
            async with node.client(token) as oper:
                failed = await oper.post(f"{SHAPE}/characters", json=impossible)
            assert failed.status_code == 422 and failed.json()["error"] == "generation_failed"


class TestUntrainedModel:
    async def test_generation_routes_answer_503_instead_of_training_the_default_model(
        self, data_dir: Path
    ) -> None:
        from quart_trio import QuartTrio

        from aria.apps.shape.api import ShapeApi, create_blueprint
        from aria.apps.shape.service import ShapeService
        from aria.apps.shape.settings import ShapeSection
        from aria.supervisor import Registry, ServiceRef

        registry = Registry()
        registry.declare("aria_shape")
        registry.register("aria_shape", ShapeApi(ShapeService(ShapeSection(), data_dir / "shape")))
        app = QuartTrio(__name__)
        app.register_blueprint(create_blueprint(ServiceRef(registry, "aria_shape")), url_prefix=SHAPE)
        client = app.test_client()
        for path in ("/characters", "/batches"):
            response = await client.post(f"{SHAPE}{path}", json={"n": 1})
            assert response.status_code == 503 and response.headers["Retry-After"] == "60"
            body = await response.get_json()
            assert body["error"] == "model_not_ready" and "aria shape train-base" in body["error_description"]
        assert not (data_dir / "shape" / "models").exists()  # nothing was trained
