"""States: GTPyhop behaviour, the triple view, copy-on-write details, JSON errors."""

from __future__ import annotations

import copy
import pickle

import pytest

from aria.apps.engine.domain import Domain
from aria.apps.engine.errors import DomainError, SerializationError
from aria.apps.engine.planner import Planner
from aria.apps.engine.serialize import state_from_json, todo_from_json, value_to_json
from aria.apps.engine.state import State, cow_child, seal
from tests.engine.domains import blocks_domain


class TestState:
    def test_behaves_like_gtpyhops(self) -> None:
        state = State("s", loc={"alice": "home"}, cash=20)
        assert state.state_vars() == ["loc", "cash"]
        assert repr(state) == "State('s', loc={'alice': 'home'}, cash=20)"
        copied = state.copy()
        assert copied.__name__.startswith("s_copy_") and copied == state
        copied.loc["alice"] = "park"
        assert state.loc["alice"] == "home"
        assert state != copied
        assert copy.deepcopy(state) == state
        assert pickle.loads(pickle.dumps(state)) == state
        with pytest.raises(AttributeError, match="'where'"):
            _ = state.where

    def test_a_missing_variable_read_while_planning_is_named(self) -> None:
        domain = Domain("missing_variable")

        def look(state: State) -> State:
            _ = state.where["x"]
            return state

        def m_look(state: State) -> list[tuple[str]]:
            return [("look",)] if state.where else []

        domain.declare_actions(look)
        domain.declare_task_methods("peek", m_look)
        with pytest.raises(DomainError, match=r"action \('look',\) raised AttributeError: state 's' has no"):
            Planner(domain).plan(State("s", cash=1), [("look",)])
        with pytest.raises(DomainError, match=r"m_look .* raised AttributeError: state 's' has no state"):
            Planner(domain).plan(State("s", cash=1), [("peek",)])

    def test_triples_are_the_same_bindings(self) -> None:
        state = State.from_triples("t", [("on", "a", "b"), ("on", "b", "table"), ("color", "a", "red")])
        assert state.on == {"a": "b", "b": "table"}
        assert sorted(state.triples()) == [("color", "a", "red"), ("on", "a", "b"), ("on", "b", "table")]
        assert state.get("on", "a") == "b"
        state.put("held", "hand", None)
        state.retract("on", "a")
        assert state.match(predicate="on") == [("on", "b", "table")]
        assert state.match(obj="red") == [("color", "a", "red")]
        with pytest.raises(ValueError, match=r"\('on', 'b'\) is given two objects"):
            State.from_triples("bad", [("on", "b", "a"), ("on", "b", "c")])

    def test_a_triple_state_plans_with_unigoals_as_triples(self) -> None:
        state = State.from_triples(
            "blocks",
            [
                ("on", "a", "table"),
                ("on", "b", "table"),
                ("free", "a", True),
                ("free", "b", True),
                ("hand", "h", None),
            ],
        )
        outcome = Planner(blocks_domain()).plan(state, [("on", "a", "b")])  # the goal is a triple
        assert outcome.plan == [("take", "a"), ("drop", "a", "b")]
        assert outcome.final_state is not None and ("on", "a", "b") in set(outcome.final_state.triples())

    def test_children_copy_nested_containers_they_read(self) -> None:
        parent = State("p", bags={"x": ["apple"]}, count=1)
        child = cow_child(parent)
        child.bags["x"].append("pear")
        child.count = 2
        del child.count
        seal(child)
        assert parent.bags == {"x": ["apple"]} and parent.count == 1
        assert child.bags == {"x": ["apple", "pear"]}
        assert "count" not in child.state_vars()

    def test_a_mutable_value_written_into_a_flat_variable_is_copied_deeply_later(self) -> None:
        parent = State("p", bags={"x": "apple"})
        child = cow_child(parent)
        child.bags["y"] = ["pear"]  # the copy no longer holds only immutable values
        seal(child)
        grandchild = cow_child(child)
        grandchild.bags["y"].append("plum")
        seal(grandchild)
        assert child.bags == {"x": "apple", "y": ["pear"]}
        assert grandchild.bags == {"x": "apple", "y": ["pear", "plum"]}
        assert parent.bags == {"x": "apple"}
        assert type(child.copy().bags) is dict  # users get plain dictionaries back


class TestJsonErrors:
    def test_bad_input_is_named(self) -> None:
        with pytest.raises(SerializationError, match=r"variable 'f'.*has no JSON form"):
            value_to_json(object(), "variable 'f'")
        with pytest.raises(SerializationError, match="unknown tag '\\$date'"):
            state_from_json({"name": "s", "vars": {"x": {"$date": 1}}})
        with pytest.raises(SerializationError, match="not a valid state-variable name"):
            state_from_json({"name": "s", "vars": {"not a name": {}}})
        with pytest.raises(SerializationError, match="a todo item must be a non-empty array"):
            todo_from_json([[]])
