"""The planner: search, backtracking, depth, limits, explanations, bad domains, trees, replanning."""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from typing import Any

import pytest

from aria.apps.engine.domain import Domain
from aria.apps.engine.errors import DomainError
from aria.apps.engine.execution import MonteCarloExecutor, execute, fail_with_probability
from aria.apps.engine.planner import Planner
from aria.apps.engine.state import Multigoal, State
from aria.errors import UsageError
from tests.engine.domains import (
    blocks_domain,
    counting_domain,
    counting_state,
    doors_domain,
    doors_state,
    endless_domain,
    random_blocks_problem,
    simulate,
)


class TestSearch:
    def test_backtracks_over_methods_lazily_until_one_works(self) -> None:
        calls: list[str] = []
        domain = doors_domain()
        for task_methods in domain._task_method_dict["open_door"]:
            calls.append(task_methods.__name__)
        calls.clear()
        original = list(domain._task_method_dict["open_door"])

        def spy(method: Any) -> Any:
            def wrapped(state: State) -> Any:
                calls.append(method.__name__)
                return method(state)

            wrapped.__name__ = method.__name__
            return wrapped

        domain._task_method_dict["open_door"] = [spy(m) for m in original]
        outcome = Planner(domain).plan(doors_state("blue"), [("open_door",)])
        assert outcome.plan == [("grab", "blue"), ("use_key", "blue")]
        assert calls == ["m_with_red", "m_with_blue"]  # green never called: methods are tried lazily
        assert outcome.stats.backtracks == 1

        calls.clear()
        eager = Planner(domain, lazy_methods=False).plan(doors_state("blue"), [("open_door",)])
        assert eager.plan == outcome.plan
        assert calls == ["m_with_red", "m_with_blue", "m_with_green"]

    def test_greedy_commits_to_the_first_applicable_method(self) -> None:
        outcome = Planner(doors_domain(), backtracking=False).plan(doors_state("blue"), [("open_door",)])
        assert outcome.status == "failure"
        assert outcome.explanation is not None
        assert outcome.explanation.item == ("use_key", "red")

    def test_the_state_given_is_never_modified(self) -> None:
        state, goal = random_blocks_problem(8, random.Random(1))
        before = state.copy("before")
        outcome = Planner(blocks_domain()).plan(state, [goal])
        assert outcome.success
        assert state == before
        final = outcome.final_state
        assert final is not None and final.on == goal.on
        final.on["b0"] = "moved by the caller"  # a private copy: nothing shared with the input
        assert state == before

    def test_a_choice_point_keeps_its_state_after_actions_changed_it_in_place(self) -> None:
        """Actions change the state in place while no choice point holds it; one that a later choice
        point holds must not change under the actions tried after it, even when an in-place action
        put a list into a variable the search had known to hold only immutable values."""
        domain = Domain("in_place_then_choice")

        def noop(s: State) -> State:
            return s

        def never(s: State) -> None:
            return None

        def new_list(s: State) -> State:
            s.bag["k"] = []
            return s

        def add(s: State) -> State:
            s.bag["k"].append(len(s.bag["k"]))
            return s

        domain.declare_actions(noop, never, new_list, add)

        def m_warm_tries_and_fails(s: State) -> list[Any]:
            return [("noop",), ("never",)]  # a copy-on-write action, then a dead end

        def m_warm(s: State) -> list[Any]:
            return [("noop",)]

        def m_add_twice_then_fail(s: State) -> list[Any]:
            return [("add",), ("add",), ("never",)]

        def m_add_once(s: State) -> list[Any]:
            return [("add",)]

        domain.declare_task_methods("warm", m_warm_tries_and_fails, m_warm)
        domain.declare_task_methods("fill", m_add_twice_then_fail, m_add_once)
        state = State("s", bag={"other": 1})
        outcome = Planner(domain).plan(state, [("warm",), ("new_list",), ("fill",)])
        assert outcome.plan == [("noop",), ("new_list",), ("add",)]
        assert outcome.final_state is not None and outcome.final_state.bag == {"other": 1, "k": [0]}
        assert outcome.stats.backtracks == 2
        assert state.bag == {"other": 1}

    def test_actions_that_change_nothing_stay_in_the_plan_unless_asked(self) -> None:
        domain = Domain("idem")

        def noop(state: State) -> State:
            return state

        domain.declare_actions(noop)
        state = State("s", x={"a": 1})
        assert Planner(domain).plan(state, [("noop",), ("noop",)]).plan == [("noop",), ("noop",)]
        assert Planner(domain, drop_idempotent_actions=True).plan(state, [("noop",)]).plan == []

    def test_goals_that_hold_need_nothing_and_unigoals_are_verified(self) -> None:
        domain = blocks_domain()
        state = State("s", on={"a": "table", "b": "table"}, free={"a": True, "b": True}, hand={"h": None})
        assert Planner(domain).plan(state, [("on", "a", "table")]).plan == []
        outcome = Planner(domain).plan(state, [("on", "a", "b")])
        assert outcome.plan == [("take", "a"), ("drop", "a", "b")]
        kinds = [n.kind for n in outcome.tree.nodes()]
        assert kinds.count("verify_goal") == 1 and kinds.count("verify_multigoal") == 2


class TestDepth:
    def test_thousands_of_nested_tasks_beyond_the_recursion_limit(self) -> None:
        depth = 3 * sys.getrecursionlimit() + 1000
        outcome = Planner(counting_domain(nested=True)).plan(counting_state(), [("count", depth)])
        assert outcome.success
        assert len(outcome.plan) == depth
        assert outcome.plan[0] == ("tick", 1)  # the innermost task's action comes first
        assert outcome.stats.max_depth > depth
        encoded = json.loads(json.dumps(outcome.tree.to_json()))  # deep trees export too
        assert encoded["nodes"][1]["item"] == ["count", depth]
        assert len(encoded["nodes"]) == 2 * depth + 2
        assert outcome.final_state is not None and outcome.final_state.ticks == {"n": depth}

    def test_long_plans_cost_linear_time_per_step(self) -> None:
        """Ten times the plan length is about ten times the expansions (no per-step copying of the plan)."""
        small = Planner(counting_domain()).plan(counting_state(), [("count", 2000)])
        large = Planner(counting_domain()).plan(counting_state(), [("count", 20000)])
        assert large.stats.expansions == 10 * small.stats.expansions - 9


class TestLimits:
    def test_the_expansion_limit_is_exact(self) -> None:
        outcome = Planner(endless_domain(), max_expansions=500).plan(State("s"), [("forever",)])
        assert outcome.status == "expansion_limit"
        assert outcome.stats.expansions == 500
        assert outcome.plan == []
        assert outcome.explanation is not None and "node-expansion limit (500)" in outcome.explanation.reason

    def test_the_time_limit_returns_in_time(self) -> None:
        started = time.monotonic()
        outcome = Planner(endless_domain()).plan(State("s"), [("forever",)], time_limit=0.2)
        elapsed = time.monotonic() - started
        assert outcome.status == "time_limit"
        assert 0.2 <= elapsed < 1.0
        assert outcome.stats.expansions > 100
        assert "time limit" in outcome.message

    def test_cancel_from_another_thread(self) -> None:
        cancel = threading.Event()
        timer = threading.Timer(0.1, cancel.set)
        timer.start()
        try:
            outcome = Planner(endless_domain()).plan(State("s"), [("forever",)], cancel=cancel)
        finally:
            timer.join()
        assert outcome.status == "cancelled"

    @pytest.mark.parametrize("bad", [{"max_expansions": -1}, {"time_limit": -0.5}, {"max_expansions": 1.5}])
    def test_bad_limits_are_refused(self, bad: dict[str, Any]) -> None:
        with pytest.raises(ValueError, match=next(iter(bad))):
            Planner(endless_domain(), **bad)


class TestExplanations:
    def test_names_the_deepest_failure_and_the_methods_tried(self) -> None:
        domain = doors_domain()
        outcome = Planner(domain).plan(doors_state("purple"), [("open_door",)])
        assert outcome.status == "failure"
        explanation = outcome.explanation
        assert explanation is not None
        assert explanation.item == ("use_key", "red")  # the first of the deepest failures
        assert explanation.kind == "action"
        assert explanation.via_method == "m_with_red"
        assert explanation.path == ["('open_door',)", "('use_key', 'red')"]
        assert "preconditions do not hold" in explanation.message
        assert json.loads(json.dumps(explanation.to_json()))["via_method"] == "m_with_red"

    def test_a_task_without_applicable_methods_lists_them(self) -> None:
        domain = Domain("picky")

        def m_never(state: State) -> bool:
            return False

        def m_nope(state: State) -> None:
            return None

        domain.declare_task_methods("pick", m_never, m_nope)
        domain.declare_task_methods("outer", lambda state: [("pick",)])
        outcome = Planner(domain).plan(State("s"), [("outer",)])
        explanation = outcome.explanation
        assert explanation is not None
        assert explanation.item == ("pick",)
        assert explanation.reason == "no method applies in this state"
        assert explanation.attempts == [("m_never", "not applicable"), ("m_nope", "not applicable")]


class TestBadDomains:
    def test_unknown_task_name_is_named_with_its_origin(self) -> None:
        domain = Domain("typo")
        domain.declare_task_methods("go", lambda state: [("walkk", "home")])
        with pytest.raises(
            DomainError, match=r"\('walkk', 'home'\) \(returned by method <lambda> for \('go',\)\)"
        ):
            Planner(domain).plan(State("s"), [("go",)])
        with pytest.raises(DomainError, match="nothing named 'fly' is declared in domain 'typo'"):
            Planner(domain).plan(State("s"), [("fly",)])

    def test_method_returning_garbage(self) -> None:
        domain = Domain("garbage")

        def m_bad(state: State) -> Any:
            return ("not", "a", "list")

        domain.declare_task_methods("t", m_bad)
        with pytest.raises(DomainError, match=r"method m_bad for \('t',\) returned tuple"):
            Planner(domain).plan(State("s"), [("t",)])

    def test_action_raising_is_named_and_chained(self) -> None:
        domain = Domain("raising")

        def explode(state: State, how: str) -> State:
            raise KeyError(how)

        domain.declare_actions(explode)
        domain.declare_task_methods("t", lambda state: [("explode", "loudly")])
        with pytest.raises(DomainError, match=r"action \('explode', 'loudly'\) raised KeyError") as caught:
            Planner(domain).plan(State("s"), [("t",)])
        assert isinstance(caught.value.__cause__, KeyError)

    def test_action_returning_garbage_and_goal_on_a_missing_variable(self) -> None:
        domain = Domain("wrong")

        def yes(state: State) -> bool:
            return True

        domain.declare_actions(yes)
        domain.declare_unigoal_methods("loc", lambda state, arg, value: [])
        with pytest.raises(DomainError, match=r"action \('yes',\) returned bool True"):
            Planner(domain).plan(State("s"), [("yes",)])
        with pytest.raises(DomainError, match="state variable 'loc', which state 's' does not have"):
            Planner(domain).plan(State("s"), [("loc", "me", "home")])

    def test_method_that_does_not_achieve_its_goal(self) -> None:
        domain = Domain("liar")
        domain.declare_unigoal_methods("loc", lambda state, arg, value: [])
        with pytest.raises(
            DomainError, match=r"method <lambda> did not achieve goal \('loc', 'me', 'park'\)"
        ):
            Planner(domain).plan(State("s", loc={"me": "home"}), [("loc", "me", "park")])
        assert Planner(domain, verify_goals=False).plan(
            State("s", loc={"me": "home"}), [("loc", "me", "park")]
        )

    def test_declarations_are_checked(self) -> None:
        domain = Domain("checked")
        with pytest.raises(DomainError, match="action 42 is not a named function"):
            domain.declare_actions(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="a task name must be a string"):
            domain.declare_task_methods(("t",), print)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="needs a State"):
            Planner(domain).plan({"not": "a state"}, [])  # type: ignore[arg-type]


class TestTree:
    def test_records_methods_and_exports_json_and_mermaid(self) -> None:
        outcome = Planner(doors_domain()).plan(doors_state("blue"), [("open_door",)])
        tree = outcome.tree
        top = tree.root.children[0]
        assert (top.kind, top.method, top.status) == ("task", "m_with_blue", "refined")
        assert [c.item for c in top.children] == [("grab", "blue"), ("use_key", "blue")]
        encoded = json.loads(json.dumps(outcome.to_json()))
        nodes = {node["id"]: node for node in encoded["tree"]["nodes"]}
        assert nodes[top.id]["method"] == "m_with_blue"
        assert nodes[top.id]["children"] == [c.id for c in top.children]
        assert nodes[encoded["tree"]["root"]]["children"] == [top.id]
        assert encoded["plan"] == [["grab", "blue"], ["use_key", "blue"]]
        mermaid = tree.to_mermaid()
        assert mermaid.startswith("flowchart TD\n")
        assert f"n{top.id}(\"('open_door',) via m_with_blue\")" in mermaid
        assert f"n{top.id} --> n{top.children[0].id}" in mermaid


class TestReplanning:
    def test_repairs_from_the_failure_point_and_returns_only_new_actions(self) -> None:
        domain = blocks_domain()
        state = State(
            "s",
            on={"a": "table", "b": "table", "c": "table"},
            free={"a": True, "b": True, "c": True},
            hand={"h": None},
        )
        goal = Multigoal("tower", on={"a": "b", "b": "c", "c": "table"})
        planner = Planner(domain)
        outcome = planner.plan(state, [goal])
        assert outcome.plan == [("take", "b"), ("drop", "b", "c"), ("take", "a"), ("drop", "a", "b")]
        # The first two actions ran, then the world moved b back to the table, and "take a" failed.
        actions = outcome.tree.action_nodes()
        world = simulate(domain, state, outcome.plan[:2])
        assert world is not None
        world.on["b"] = "table"
        world.free["c"] = True
        repaired = planner.replan(world, actions[2])
        assert repaired.success
        # The remaining steps are retried first (take a, drop a on b), then the multigoal's own
        # recursion repairs the rest; only actions from the failure point on come back.
        assert repaired.plan[:2] == [("take", "a"), ("drop", "a", "b")]
        after = simulate(domain, world, repaired.plan)
        assert after is not None and all(after.on[b] == t for b, t in goal.on.items())
        statuses = [n.status for n in repaired.tree.nodes() if n.kind == "action"]
        assert statuses[:2] == ["executed", "executed"]
        assert any(n.superseded for n in repaired.tree.nodes())
        # Re-entrant: a second failure in the repaired plan is repaired too.
        again = planner.replan(world, repaired.tree.action_nodes()[2])
        assert again.success and again.plan == repaired.plan

    def test_blacklisted_commands_are_avoided(self) -> None:
        planner = Planner(doors_domain())
        planner.blacklist_command(("use_key", "red"))
        state = State("s", holding={"me": None}, fits={"door": "red"}, door={"open": False})
        outcome = planner.plan(state, [("open_door",)])
        assert outcome.status == "failure"
        assert outcome.explanation is not None and outcome.explanation.reason == "the command is blacklisted"

    def test_replan_refuses_a_node_that_is_not_a_planned_action(self) -> None:
        planner = Planner(doors_domain())
        outcome = planner.plan(doors_state("red"), [("open_door",)])
        with pytest.raises(UsageError, match="not a planned action"):
            planner.replan(doors_state("red"), outcome.tree.root.children[0])
        with pytest.raises(UsageError, match="has no node 999"):
            planner.replan(doors_state("red"), 999)

    def test_monte_carlo_execution_reaches_the_goal_under_random_failures(self) -> None:
        state, goal = random_blocks_problem(6, random.Random(5))
        executor = MonteCarloExecutor(lambda: Planner(blocks_domain()), fail_with_probability(0.3), seed=11)
        report = executor.run(state, [goal], runs=20)
        assert report.success_rate == 1.0
        assert report.mean_replans > 0.5
        again = MonteCarloExecutor(lambda: Planner(blocks_domain()), fail_with_probability(0.3), seed=11)
        assert again.run(state, [goal], runs=20) == report  # seeded: reproducible

    def test_execution_gives_up_after_too_many_replans(self) -> None:
        state, goal = random_blocks_problem(4, random.Random(2))
        result = execute(
            Planner(blocks_domain()), state, [goal], failure=fail_with_probability(1.0), max_replans=3
        )
        assert not result.success
        assert result.error == "too many replans"
        assert result.replans == 3
