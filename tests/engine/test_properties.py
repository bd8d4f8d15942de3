"""Property tests: plans are valid when simulated, repairs reach the goal, states copy and serialise."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aria.apps.engine.domain import Domain
from aria.apps.engine.execution import execute
from aria.apps.engine.planner import Planner
from aria.apps.engine.serialize import (
    state_from_json,
    state_to_json,
    todo_from_json,
    todo_to_json,
    value_from_json,
    value_to_json,
)
from aria.apps.engine.state import Multigoal, State, cow_child, seal
from tests.engine.domains import blocks_domain, random_blocks_problem, simulate

DOMAIN = blocks_domain("property_blocks")


@settings(max_examples=40, deadline=None)
@given(blocks=st.integers(1, 12), seed=st.integers(0, 2**32 - 1), greedy=st.booleans())
def test_every_plan_is_valid_and_reaches_the_goal(blocks: int, seed: int, greedy: bool) -> None:
    state, goal = random_blocks_problem(blocks, random.Random(seed))
    outcome = Planner(DOMAIN, backtracking=not greedy).plan(state, [goal])
    assert outcome.success, outcome.message
    final = simulate(DOMAIN, state, outcome.plan)
    assert final is not None
    assert all(final.on[b] == target for b, target in goal.on.items())
    assert final == outcome.final_state
    assert len(outcome.plan) <= 4 * blocks


def _perturb(rng: random.Random) -> Any:
    """A failure model: the action does nothing, or (once the hand is empty) a block falls off its tower."""

    def failure(action: tuple[Any, ...], state: State, chance: random.Random) -> State | None:
        if chance.random() >= 0.25:
            return None
        world = state.copy(state.__name__)
        if world.hand["h"] is None:
            fallen = [b for b in sorted(world.on) if world.free[b] and world.on[b] not in ("table", "hand")]
            if fallen:
                b = rng.choice(fallen)
                world.free[world.on[b]] = True
                world.on[b] = "table"
        return world

    return failure


@settings(max_examples=25, deadline=None)
@given(blocks=st.integers(2, 8), seed=st.integers(0, 2**32 - 1))
def test_replanning_after_injected_failures_reaches_the_goal(blocks: int, seed: int) -> None:
    """Blocks problems are always solvable, so repairs must always get there."""
    rng = random.Random(seed)
    state, goal = random_blocks_problem(blocks, rng)
    result = execute(Planner(DOMAIN), state, [goal], failure=_perturb(rng), rng=rng, max_replans=200)
    assert result.success, result.error
    assert all(result.final_state.on[b] == target for b, target in goal.on.items())


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(), inner, max_size=4)
        | st.dictionaries(st.integers() | st.tuples(st.text(), st.integers()), inner, max_size=4)
        | st.frozensets(st.integers(), max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(value=values)
def test_values_round_trip_through_json(value: Any) -> None:
    encoded = json.loads(json.dumps(value_to_json(value)))
    assert value_from_json(encoded) == value


@settings(max_examples=60, deadline=None)
@given(
    variables=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
        st.dictionaries(st.text(max_size=5), values),
        max_size=5,
    )
)
def test_states_and_todo_lists_round_trip_through_json(variables: dict[str, Any]) -> None:
    state = State("s", **variables)
    assert state_from_json(json.loads(json.dumps(state_to_json(state)))) == state
    todo = [("move", "a", 3), ("at", "a", ("x", 1)), Multigoal("g", at={"a": "b"})]
    back = todo_from_json(json.loads(json.dumps(todo_to_json(todo))))
    assert back[:2] == todo[:2]
    assert vars(back[2]) == vars(todo[2])


@settings(max_examples=80, deadline=None)
@given(
    variables=st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), values, min_size=1),
    touched=st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=4),
)
def test_copy_on_write_children_never_change_their_parent(
    variables: dict[str, Any], touched: list[str]
) -> None:
    parent = State("p", **variables)
    snapshot = json.dumps(state_to_json(parent), sort_keys=True)
    child = cow_child(parent)
    for name in touched:
        if name in variables:
            value = getattr(child, name)
            if isinstance(value, dict):
                value["new"] = 1
            elif isinstance(value, list):
                value.append(1)
            else:
                setattr(child, name, "replaced")
    seal(child)
    assert json.dumps(state_to_json(parent), sort_keys=True) == snapshot
    for name in variables:
        if name not in touched:
            assert getattr(child, name) is getattr(parent, name)  # untouched variables are shared


# One step of an action on a copy-on-write child: write an atomic value, write a list, append to a
# list held in a variable, replace a variable, delete a key, or only read.
_steps = st.tuples(
    st.sampled_from(["write", "write_list", "append", "replace", "delete", "read"]),
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, 3),
)


@settings(max_examples=150, deadline=None)
@given(
    actions=st.lists(
        st.tuples(st.lists(_steps, max_size=4), st.sets(st.sampled_from(["a", "b", "c"]))),
        min_size=1,
        max_size=12,
    )
)
def test_chains_of_children_never_change_an_earlier_state(
    actions: list[tuple[list[tuple[str, str, int]], set[str]]],
) -> None:
    """Whatever actions do to their child (flat dicts, lists written into them and appended to later,
    eagerly or lazily copied variables), no earlier state of the chain changes."""
    state = State("s0", a={0: "x", 1: "y"}, b={0: True}, c={0: (1, 2)}, n=0)
    history: list[tuple[State, str]] = []
    for steps, copy_now in actions:
        history.append((state, json.dumps(state_to_json(state), sort_keys=True)))
        child = cow_child(state, frozenset(copy_now))
        for what, variable, key in steps:
            bindings = getattr(child, variable)
            if what == "write":
                bindings[key] = f"v{key}"
            elif what == "write_list":
                bindings[key] = [key]
            elif what == "append" and isinstance(bindings.get(key), list):
                bindings[key].append("more")
            elif what == "replace":
                setattr(child, variable, {key: "fresh"})
            elif what == "delete":
                bindings.pop(key, None)
        state = seal(child)
        for earlier, snapshot in history:
            assert json.dumps(state_to_json(earlier), sort_keys=True) == snapshot
        assert all(type(getattr(state, v)) is dict for v in ("a", "b", "c"))  # plain dicts once sealed


def _random_domain(seed: int) -> tuple[Domain, State, list[Any]]:
    """A domain of tasks with several methods each (so choice points and backtracking), actions that
    fail after changing their state, nested lists written into the state and appended to later,
    unigoals and a multigoal; with a state and a todo list. The same seed gives the same domain."""
    rng = random.Random(seed)
    keys = ["x", "y", "z"]
    domain = Domain(f"random_{seed}")

    def inc(s: State, k: str) -> State | None:
        if s.v[k] >= 3:
            return None
        s.v[k] += 1
        return s

    def dec(s: State, k: str) -> State | None:
        s.v[k] -= 1  # changes the state before it finds that it does not apply
        return s if s.v[k] >= 0 else None

    def bag_new(s: State, k: str) -> State:
        s.bag[k] = []
        return s

    def bag_add(s: State, k: str) -> State | None:
        items = s.bag.get(k)
        if items is None or len(items) >= 2:
            return None
        items.append(len(items))  # changes a list inside the state
        return s

    domain.declare_actions(inc, dec, bag_new, bag_add)

    def make_method(task: int, number: int) -> Any:
        guard_key, threshold = rng.choice(keys), rng.randint(0, 3)
        body: list[tuple[Any, ...]] = []
        for _ in range(rng.randint(0, 3)):
            pick = rng.random()
            k = rng.choice([*keys, "K"])
            if pick < 0.45:
                body.append((rng.choice(["inc", "dec", "bag_new", "bag_add"]), k))
            elif pick < 0.75 and task < 3:
                body.append((f"t{rng.randint(task + 1, 3)}", k))
            else:
                body.append(("v", k, rng.randint(0, 3)))

        def method(s: State, k: str) -> list[Any] | bool:
            if s.v[guard_key] > threshold:
                return False
            return [tuple(k if part == "K" else part for part in item) for item in body]

        method.__name__ = f"m_t{task}_{number}"
        return method

    for task in range(4):
        domain.declare_task_methods(f"t{task}", *[make_method(task, n) for n in range(rng.randint(1, 3))])

    def m_v_up(s: State, k: str, n: int) -> list[Any] | bool:
        return [("inc", k), ("v", k, n)] if s.v[k] < n else False

    def m_v_down(s: State, k: str, n: int) -> list[Any] | bool:
        return [("dec", k), ("v", k, n)] if s.v[k] > n else False

    domain.declare_unigoal_methods("v", m_v_up, m_v_down)

    def m_goals(s: State, goal: Multigoal) -> list[Any]:
        for k, n in goal.v.items():
            if s.v[k] != n:
                return [("v", k, n), goal]
        return []

    domain.declare_multigoal_methods(m_goals)
    state = State("s", v={k: rng.randint(0, 3) for k in keys}, bag={})
    todo: list[Any] = [(f"t{rng.randint(0, 3)}", rng.choice(keys)) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.5:
        todo.insert(rng.randint(0, len(todo)), Multigoal("g", v={k: rng.randint(0, 3) for k in keys}))
    return domain, state, todo


def _tree_shape(outcome: Any) -> list[tuple[Any, ...]]:
    return [(n.depth, n.kind, n.status, n.method, repr(n.item)) for n in outcome.tree.nodes()]


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), greedy=st.booleans())
def test_the_fast_search_finds_what_the_observed_search_finds(seed: int, greedy: bool) -> None:
    """The search without observers (in-place actions while no choice point holds the state, copy-on-write
    while one does, the tree built afterwards from a log) returns what the observed search (copy-on-write
    for every action, a node per item) returns: status, plan, final state, tree, statistics and, on a
    failure, the explanation; and neither changes the caller's state."""
    domain, state, todo = _random_domain(seed)
    snapshot = json.dumps(state_to_json(state), sort_keys=True)
    fast = Planner(domain, backtracking=not greedy, max_expansions=3000).plan(state, todo)
    observed = Planner(
        domain, backtracking=not greedy, max_expansions=3000, observer=lambda event, node, detail: None
    ).plan(state, todo)
    assert json.dumps(state_to_json(state), sort_keys=True) == snapshot
    assert fast.status == observed.status
    assert fast.plan == observed.plan
    if fast.status == "expansion_limit":
        return  # the observed search counts each nested multigoal verification against the limit
    assert fast.final_state == observed.final_state
    for field in ("expansions", "backtracks", "methods_tried", "actions_tried", "max_depth", "plan_length"):
        assert getattr(fast.stats, field) == getattr(observed.stats, field), field
    if fast.success:
        assert _tree_shape(fast) == _tree_shape(observed)
    else:
        assert fast.explanation is not None and observed.explanation is not None
        assert fast.explanation.to_json() == observed.explanation.to_json()
