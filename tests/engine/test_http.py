"""aria_engine's routes through the real gateway: TLS, tokens, permissions, queued and synchronous plans."""

from __future__ import annotations

from typing import Any

from aria.apps.engine.serialize import state_to_json
from aria.apps.engine.state import State
from tests.engine.conftest import GatewayNode


def body(todo: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "domain": "queue_switches",
        "state": state_to_json(State("s", on={"a": False, "b": True})),
        "todo": todo,
        **extra,
    }


async def test_routes_need_a_token_and_their_own_permissions(gateway_node: GatewayNode) -> None:
    async with gateway_node.client() as anonymous:
        assert (await anonymous.get("/domains")).status_code == 401
        assert (await anonymous.post("/plan", json=body([["turn_on", "a"]]))).status_code == 401
    async with gateway_node.client(await gateway_node.token("reader")) as reader:
        assert (await reader.get("/requests")).status_code == 200  # aria_engine.requests:read
        for response in (
            await reader.post("/requests", json=body([["turn_on", "a"]])),
            await reader.post("/plan", json=body([["turn_on", "a"]])),
            await reader.get("/domains"),
        ):
            assert response.status_code == 403, response.text
    async with gateway_node.client(await gateway_node.token()) as operator:
        domains = (await operator.get("/domains")).json()
        assert [d["name"] for d in domains] == ["queue_switches"]
        assert domains[0]["tasks"]["turn_on"] == ["m_turn_on"]


async def test_synchronous_planning_within_its_limits(gateway_node: GatewayNode) -> None:
    async with gateway_node.client(await gateway_node.token()) as client:
        response = await client.post("/plan", json=body([["turn_on", "a"], ["turn_on", "b"]]))
        assert response.status_code == 200, response.text
        result = response.json()
        assert (result["status"], result["plan"]) == ("success", [["flip", "a"]])
        assert result["stats"]["expansions"] == 3  # turn_on a, flip a, turn_on b (nothing to do)

        too_long = await client.post("/plan", json=body([["turn_on", "a"]], time_limit=3600))
        assert too_long.status_code == 400
        assert "synchronous planning allows at most" in too_long.json()["error_description"]
        unknown = await client.post("/plan", json={**body([]), "domain": "nope"})
        assert (unknown.status_code, unknown.json()["error"]) == (400, "unknown_domain")
        malformed = await client.post("/plan", json={"domain": "queue_switches"})
        assert malformed.status_code == 400
        assert "the field 'state' is missing" in malformed.json()["error_description"]
        broken = await client.post("/plan", json=body([["broken"]]))
        assert (broken.status_code, broken.json()["error"]) == (422, "domain_error")
        assert "m_broken" in broken.json()["error_description"]


async def test_queued_requests_are_submitted_read_back_and_cancelled(gateway_node: GatewayNode) -> None:
    async with gateway_node.client(await gateway_node.token()) as client:
        submitted = await client.post("/requests", json=body([["turn_on", "a"]], priority=2))
        assert submitted.status_code == 202, submitted.text
        request_id = submitted.json()["id"]
        assert submitted.headers["Location"] == f"/api/v1/engine/requests/{request_id}"
        assert submitted.json()["submitted_by"] == "oper"

        done = (await client.get(f"/requests/{request_id}", params={"wait": 15})).json()
        assert (done["state"], done["outcome"]) == ("done", "success")
        assert done["result"]["plan"] == [["flip", "a"]]
        listed = (await client.get("/requests", params={"state": "done"})).json()
        assert [r["id"] for r in listed] == [request_id]

        finished = await client.post(f"/requests/{request_id}/cancel")
        assert finished.status_code == 409
        assert (await client.get("/requests/00000000-0000-0000-0000-000000000000")).status_code == 404
        assert (await client.get("/requests/not-an-id")).status_code == 404
        assert (await client.get(f"/requests/{request_id}", params={"wait": "forever"})).status_code == 400
        bad_priority = await client.post("/requests", json=body([], priority=12))
        assert bad_priority.status_code == 400
        assert (await client.get("/requests", params={"state": "lost"})).status_code == 400

        waiting = await client.post("/requests", json=body([["wait_then_turn_on", "a"]]))
        waiting_id = waiting.json()["id"]
        cancelled = await client.post(f"/requests/{waiting_id}/cancel")
        assert (cancelled.status_code, cancelled.json()["state"]) == (200, "cancelled")
