"""A domain for the queued-planning tests: switches, a task that waits for the test, a method that raises."""

from __future__ import annotations

import threading
from typing import Any

from aria.apps.engine.domain import Domain
from aria.apps.engine.state import State

#: Set by the test to let the waiting task finish.
GATE = threading.Event()
#: Set by the planner thread when it reaches the waiting task (planning is under way).
ENTERED = threading.Event()

the_domain = Domain("queue_switches")


def flip(state: State, switch: str) -> State:
    state.on[switch] = not state.on[switch]
    return state


def m_turn_on(state: State, switch: str) -> list[Any]:
    return [] if state.on[switch] else [("flip", switch)]


def m_wait_for_gate(state: State, switch: str) -> list[Any]:
    """Plan nothing until the test opens the gate (a slow search the engine can cancel in between)."""
    ENTERED.set()
    if GATE.wait(0.01):
        return [("turn_on", switch)]
    return [("wait_then_turn_on", switch)]


def m_broken(state: State) -> list[Any]:
    raise RuntimeError("this method is broken on purpose")


the_domain.declare_actions(flip)
the_domain.declare_task_methods("turn_on", m_turn_on)
the_domain.declare_task_methods("wait_then_turn_on", m_wait_for_gate)
the_domain.declare_task_methods("broken", m_broken)
