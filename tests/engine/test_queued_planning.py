"""Queued planning on a real node: aria_queue's planning queue, results in PostgreSQL, engine restarts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

import aria
from aria.apps.engine.api import RequestFinished, RequestNotFound
from aria.apps.engine.errors import SerializationError, UnknownDomain
from aria.apps.engine.serialize import state_to_json
from aria.apps.engine.state import State
from aria.system import System
from tests.conftest import eventually
from tests.engine import queue_domain


async def database_shows(check: Callable[[], Awaitable[Any]]) -> Any:
    """Wait until ``check()`` returns something true (state another task writes to the database)."""
    while not (found := await check()):  # noqa: ASYNC110 - the state is in the database, not in trio
        await trio.sleep(0.05)
    return found


def switches_request(todo: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "domain": "queue_switches",
        "state": state_to_json(State("s", on={"a": False, "b": True})),
        "todo": todo,
        **extra,
    }


async def test_a_submitted_request_is_planned_on_the_planning_queue_and_stored(engine_node: System) -> None:
    engine = aria.whereis("aria_engine")
    queue = aria.whereis("aria_queue")
    request_id = await engine.submit(switches_request([["turn_on", "a"], ["turn_on", "b"]]), submitted_by="t")
    status = await engine.wait_for_request(request_id, 15)
    assert status["state"] == "done"
    assert status["outcome"] == "success"
    assert status["attempts"] == 1
    assert status["submitted_by"] == "t"
    assert status["planned_by"] == engine_node.config.node_name
    result = status["result"]
    assert result["plan"] == [["flip", "a"]]
    assert result["stats"]["plan_length"] == 1
    assert [n["item"] for n in result["tree"]["nodes"] if n["kind"] == "action"] == [["flip", "a"]]
    job = await queue.get_job(request_id)
    assert (job.queue, job.worker) == ("planning", "aria_engine.plan")
    assert status["job"]["state"] in ("executing", "completed")  # completions are acked in batches

    # A search that stops without a plan is a result too: stored with its explanation.
    failed = await engine.submit(switches_request([["turn_on", "a"]], max_expansions=1))
    status = await engine.wait_for_request(failed, 15)
    assert (status["state"], status["outcome"]) == ("done", "expansion_limit")
    assert "node-expansion limit (1)" in status["result"]["explanation"]["reason"]
    listed = await engine.requests()
    assert [r["id"] for r in listed] == [failed, request_id]
    assert "result" not in listed[0]

    # The stored result survives the node: read back after a full restart of the apps.
    await engine_node.restart_child("aria_engine")
    again = await engine.request_status(request_id)
    assert again["result"] == result


async def test_a_planning_job_survives_a_restart_of_the_engine_app(engine_node: System) -> None:
    engine = aria.whereis("aria_engine")
    request_id = await engine.submit(switches_request([["wait_then_turn_on", "a"]]))
    with trio.fail_after(15):
        await eventually(queue_domain.ENTERED.is_set)  # the planner thread is in the search
    assert (await engine.request_status(request_id))["state"] == "running"

    await engine_node.kill_child("aria_engine/api")  # a crash: the supervisor restarts the engine

    async def failed_once() -> Any:
        status = await engine.request_status(request_id)
        return status if status["job"]["errors"] else None

    with trio.fail_after(15):
        status = await database_shows(failed_once)
    assert "aria_engine stopped (or restarted) while planning request" in status["job"]["errors"][0]["error"]
    assert status["state"] == "running" and status["job"]["state"] in ("retryable", "available", "executing")

    queue_domain.GATE.set()  # the retried attempt gets through
    status = await engine.wait_for_request(request_id, 20)
    assert status["state"] == "done", status
    assert status["outcome"] == "success"
    assert status["attempts"] == 2
    assert status["result"]["plan"] == [["flip", "a"]]
    assert aria.whereis("aria_engine").status()["planning_now"] == 0


async def test_cancelling_a_running_request_stops_its_search(engine_node: System) -> None:
    engine = aria.whereis("aria_engine")
    request_id = await engine.submit(switches_request([["wait_then_turn_on", "b"]]))
    with trio.fail_after(15):
        await eventually(queue_domain.ENTERED.is_set)
    status = await engine.cancel_request(request_id)
    assert status["state"] == "cancelled"
    with trio.fail_after(10):
        await eventually(lambda: engine.status()["planning_now"] == 0)  # the thread returned
    assert (await aria.whereis("aria_queue").get_job(request_id)).state == "cancelled"
    with pytest.raises(RequestFinished, match="is cancelled; it cannot be cancelled"):
        await engine.cancel_request(request_id)


async def test_bad_requests_are_refused_and_misbehaving_domains_stored_as_errors(engine_node: System) -> None:
    engine = aria.whereis("aria_engine")
    with pytest.raises(UnknownDomain, match="no planning domain named 'nope'"):
        await engine.submit({**switches_request([]), "domain": "nope"})
    with pytest.raises(SerializationError, match="'max_expansions' must be a positive integer"):
        await engine.submit(switches_request([], max_expansions=-3))
    assert await engine.requests() == []  # nothing was stored or queued
    with pytest.raises(RequestNotFound, match="not a request id"):
        await engine.request_status("../etc/passwd")
    with pytest.raises(RequestNotFound, match="no planning request"):
        await engine.request_status("00000000-0000-0000-0000-000000000000")

    request_id = await engine.submit(switches_request([["broken"]]))
    status = await engine.wait_for_request(request_id, 15)
    assert status["state"] == "error"
    assert "method m_broken" in status["error"] and "broken on purpose" in status["error"]
    assert status["attempts"] == 1  # a domain that raises is not retried

    async def discarded() -> Any:
        job = await aria.whereis("aria_queue").get_job(request_id)
        return job if job.state == "discarded" else None

    with trio.fail_after(10):
        job = await database_shows(discarded)
    assert "m_broken" in job.errors[-1]["error"]
