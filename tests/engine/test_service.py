"""aria_engine as an app: configured domain modules, planning in worker threads, JSON requests."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import pytest
import trio

import aria
from aria.apps.engine.api import EngineApi, PlanningQueueUnavailable, PlanRequest
from aria.apps.engine.app import APP
from aria.apps.engine.domain import Domain
from aria.apps.engine.errors import SerializationError, UnknownDomain
from aria.apps.engine.serialize import state_to_json
from aria.apps.engine.state import State

# The engine alone, as an embedder may boot it: in-process planning only (the queued path, with
# aria_data and aria_queue, is tested in test_queued_planning.py and test_http.py).
ENGINE_ONLY = [dataclasses.replace(APP, depends_on=())]


@pytest.fixture
def engine_config(node_config: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {**node_config, "engine": {"domains": ["tests.engine.service_domain"], "default_time_limit": 5.0}}


async def test_boots_registers_configured_modules_and_plans(engine_config: dict[str, Any]) -> None:
    async with aria.running(apps=["aria_engine"], config=engine_config, catalog=ENGINE_ONLY):
        engine = aria.whereis("aria_engine")
        status = engine.status()
        assert status["implemented"] is True
        assert status["domains"] == ["service_switches"]
        assert "gtpyhop" not in sys.modules or sys.modules["gtpyhop"].__name__ != "aria.apps.engine.gtpyhop"
        outcome = await engine.plan("service_switches", State("s", on={"a": False}), [("turn_on", "a")])
        assert outcome.plan == [("flip", "a")]
        result = await engine.run_request(
            {
                "domain": "service_switches",
                "state": state_to_json(State("s", on={"a": False, "b": True})),
                "todo": [["turn_on", "a"], ["turn_on", "b"]],
            }
        )
        assert result["status"] == "success"
        assert result["plan"] == [["flip", "a"]]
        assert engine.status()["plans_made"] == 2
        assert (await engine.health())["ok"] is True
        assert engine.status()["queued_requests"] is False
        with pytest.raises(PlanningQueueUnavailable, match="without aria_data and aria_queue"):
            await engine.submit({"domain": "service_switches", "state": {}, "todo": []})


async def test_the_loop_keeps_running_while_a_plan_is_computed() -> None:
    api = EngineApi(default_time_limit=0)
    api.register_module("tests.engine.service_domain")
    checkpoints = 0
    outcome = None

    async def plan() -> None:
        nonlocal outcome
        outcome = await api.plan("service_switches", State("s", on={}), [("spin",)], time_limit=0.3)
        nursery.cancel_scope.cancel()

    async def count_checkpoints() -> None:
        nonlocal checkpoints
        while True:
            await trio.lowlevel.checkpoint()
            checkpoints += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(plan)
        nursery.start_soon(count_checkpoints)
    assert outcome is not None and outcome.status == "time_limit"
    assert checkpoints > 50


async def test_cancelling_the_caller_stops_the_search_thread() -> None:
    api = EngineApi(default_time_limit=0, default_max_expansions=0)
    api.register_module("tests.engine.service_domain")
    with trio.move_on_after(0.2) as scope:
        await api.plan("service_switches", State("s", on={}), [("spin",)])
    assert scope.cancelled_caught
    assert api.status()["planning_now"] == 0  # the thread returned: to_thread waited for it


async def test_bad_requests_and_names_are_refused_clearly() -> None:
    api = EngineApi()
    with pytest.raises(UnknownDomain, match="no planning domain named 'nope'"):
        await api.plan("nope", State("s"), [])
    with pytest.raises(SerializationError, match="the field 'todo' is missing"):
        PlanRequest.from_json({"domain": "d", "state": {}})
    with pytest.raises(SerializationError, match="strategy 'bfs' is not one of dfs, greedy"):
        PlanRequest.from_json({"domain": "d", "state": {}, "todo": [], "strategy": "bfs"})
    api.register_domain(Domain("d"))
    with pytest.raises(ValueError, match="a different domain is already registered as 'd'"):
        api.register_domain(Domain("d"))
    with pytest.raises(Exception, match="cannot be imported"):
        api.register_module("tests.engine.no_such_module")
