"""Small planning domains written for these tests (nothing here comes from GTPyhop's examples)."""

from __future__ import annotations

import random
from typing import Any

from aria.apps.engine.domain import Domain
from aria.apps.engine.state import Multigoal, State

# --------------------------------------------------------------------------------------------------
# Blocks: a hand moves blocks between the table and each other. State: on[b] (a block or 'table' or
# 'hand'), free[b] (nothing on it, not held), hand['h'] (the held block or None).


def _take(s: State, b: str) -> State | None:
    if s.free[b] and s.hand["h"] is None and s.on[b] != "hand":
        below = s.on[b]
        if below != "table":
            s.free[below] = True
        s.on[b] = "hand"
        s.free[b] = False
        s.hand["h"] = b
        return s
    return None


def _drop(s: State, b: str, target: str) -> State | None:
    if s.hand["h"] == b and (target == "table" or (target != b and s.free[target])):
        s.on[b] = target
        s.free[b] = True
        if target != "table":
            s.free[target] = False
        s.hand["h"] = None
        return s
    return None


def take(s: State, b: str) -> State | None:
    return _take(s, b)


def drop(s: State, b: str, target: str) -> State | None:
    return _drop(s, b, target)


def _settled(s: State, b: str, goal: dict[str, str]) -> bool:
    """b and everything under it are where the goal wants them (or the goal does not care)."""
    while b != "table":
        if b in goal and s.on[b] != goal[b]:
            return False
        b = s.on[b]
        if b == "hand":
            return False
    return True


def m_arrange(s: State, goal: Multigoal) -> list[Any] | None:
    """Move one block closer to the goal, then arrange the rest; [] when every goal holds."""
    wanted = goal.on
    if all(s.on[b] == t for b, t in wanted.items()):
        return []
    free_blocks = sorted(b for b in s.on if s.free[b])
    for b in free_blocks:  # a block that can go straight to its final place
        target = wanted.get(b)
        ready = target == "table" or (target is not None and s.free[target] and _settled(s, target, wanted))
        if target is not None and not _settled(s, b, wanted) and ready:
            return [("take", b), ("drop", b, target), goal]
    for b in free_blocks:  # otherwise clear the way: an unsettled block goes to the table
        if not _settled(s, b, wanted) and s.on[b] != "table":
            return [("take", b), ("drop", b, "table"), goal]
    for b in free_blocks:  # a block sitting on something it must leave
        if s.on[b] != "table" and not _settled(s, s.on[b], wanted):
            return [("take", b), ("drop", b, "table"), goal]
    return None


def m_on_goal(s: State, b: str, target: str) -> list[Any] | None:
    """A single goal ('on', b, target): reach it through the multigoal method."""
    return [Multigoal(f"put {b}", on={b: target})]


def blocks_domain(name: str = "test_blocks") -> Domain:
    domain = Domain(name)
    domain.declare_actions(take, drop)
    domain.declare_multigoal_methods(m_arrange)
    domain.declare_unigoal_methods("on", m_on_goal)
    return domain


def random_blocks_problem(blocks: int, rng: random.Random) -> tuple[State, Multigoal]:
    """Random towers of ``blocks`` blocks, and a random arrangement of them as the goal."""
    names = [f"b{i}" for i in range(blocks)]

    def towers() -> dict[str, str]:
        order = names[:]
        rng.shuffle(order)
        on: dict[str, str] = {}
        below = "table"
        for b in order:
            if below == "table" or rng.random() < 0.4:
                below = "table"
            on[b] = below
            below = b
        return on

    on = towers()
    state = State(
        f"blocks{blocks}",
        on=on,
        free={b: b not in on.values() for b in names},
        hand={"h": None},
    )
    return state, Multigoal(f"goal{blocks}", on=towers())


def simulate(domain: Domain, state: State, plan: list[Any]) -> State | None:
    """Run a plan's actions from ``state`` (on a copy); None if one of them does not apply."""
    current = state.copy()
    for step in plan:
        current = domain._action_dict[step[0]](current.copy(), *step[1:])
        if current is None or current is False:
            return None
    return current


# --------------------------------------------------------------------------------------------------
# Counting: ('count', n) refines into ('tick', n) and ('count', n - 1), n levels deep.


def tick(s: State, n: int) -> State:
    s.ticks["n"] = s.ticks["n"] + 1
    return s


def m_count(s: State, n: int) -> list[Any]:
    return [("tick", n), ("count", n - 1)] if n > 0 else []


def m_count_nested(s: State, n: int) -> list[Any]:
    """Nests the recursion inside the subtasks' tail: ('count', n-1) first, then the tick."""
    return [("count", n - 1), ("tick", n)] if n > 0 else []


def counting_domain(nested: bool = False) -> Domain:
    domain = Domain("counting")
    domain.declare_actions(tick)
    domain.declare_task_methods("count", m_count_nested if nested else m_count)
    return domain


def counting_state() -> State:
    return State("zero", ticks={"n": 0})


# --------------------------------------------------------------------------------------------------
# A domain whose task never ends (for limits and cancellation).


def m_forever(s: State) -> list[Any]:
    return [("forever",)]


def endless_domain() -> Domain:
    domain = Domain("endless")
    domain.declare_task_methods("forever", m_forever)
    return domain


# --------------------------------------------------------------------------------------------------
# Doors: choosing the wrong key first forces backtracking.


def use_key(s: State, key: str) -> State | None:
    if s.holding["me"] == key and s.fits["door"] == key:
        s.door["open"] = True
        return s
    return None


def grab(s: State, key: str) -> State:
    s.holding["me"] = key
    return s


def m_with_red(s: State) -> list[Any]:
    return [("grab", "red"), ("use_key", "red")]


def m_with_blue(s: State) -> list[Any]:
    return [("grab", "blue"), ("use_key", "blue")]


def m_with_green(s: State) -> list[Any]:
    return [("grab", "green"), ("use_key", "green")]


def doors_domain() -> Domain:
    domain = Domain("doors")
    domain.declare_actions(use_key, grab)
    domain.declare_task_methods("open_door", m_with_red, m_with_blue, m_with_green)
    return domain


def doors_state(fits: str = "green") -> State:
    return State("closed", holding={"me": None}, fits={"door": fits}, door={"open": False})
