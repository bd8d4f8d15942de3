"""Acting on plans: execution with repair on failure, and a Monte-Carlo executor to test plans.

:func:`execute` runs a plan action by action (each through its command ``c_<name>`` when the domain
declares one, else through the action itself) and, when one fails, asks
:meth:`~aria.apps.engine.planner.Planner.replan` for new actions from the state the failure left.
:class:`MonteCarloExecutor` repeats that under randomly injected failures, to measure how a domain's
plans hold up.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aria.apps.engine.planner import Planner
from aria.apps.engine.state import State, cow_child, seal
from aria.apps.engine.tree import Node

#: ``failure(action, state, rng) -> State | None``: None lets the action run normally; a State is
#: what the world looks like after the action failed (return ``state`` itself for "nothing happened").
FailureModel = Callable[[tuple[Any, ...], State, random.Random], State | None]


def fail_with_probability(probability: float) -> FailureModel:
    """A failure model: each action fails with ``probability``, leaving the state unchanged."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"a failure probability must be within [0, 1], not {probability!r}")

    def failure(action: tuple[Any, ...], state: State, rng: random.Random) -> State | None:
        return state if rng.random() < probability else None

    return failure


@dataclass
class Execution:
    """What one :func:`execute` run did.

    Attributes:
        success: The todo list was accomplished.
        executed: The actions that ran successfully, in order.
        failures: The actions that failed, in order.
        replans: How many times the plan was repaired.
        final_state: The state at the end.
        error: Why it stopped without success (None on success).
    """

    success: bool
    executed: list[tuple[Any, ...]]
    failures: list[tuple[Any, ...]]
    replans: int
    final_state: State
    error: str | None = None


def _run_action(planner: Planner, action: tuple[Any, ...], state: State) -> State | None:
    domain = planner.domain
    function = domain._command_dict.get(f"c_{action[0]}") or domain._action_dict.get(action[0])
    if function is None:
        return None
    child = cow_child(state)
    result = function(child, *action[1:])
    if isinstance(result, State):
        seal(child)
        return result
    return None


def execute(
    planner: Planner,
    state: State,
    todo_list: Sequence[Any],
    *,
    failure: FailureModel | None = None,
    rng: random.Random | None = None,
    max_replans: int = 50,
    blacklist_failed: bool = False,
) -> Execution:
    """Plan ``todo_list`` from ``state`` and execute it, repairing the plan whenever an action fails.

    Args:
        planner: Plans and repairs (its limits apply to each planning call).
        state: The initial state (not modified).
        failure: Injects failures (default: none; an action also fails when its command or action
            returns False/None).
        rng: Randomness for ``failure`` (default: a fresh unseeded one).
        max_replans: Give up after this many repairs.
        blacklist_failed: Blacklist each failed action so that repairs avoid it.
    """
    rng = rng or random.Random()
    outcome = planner.plan(state, list(todo_list))
    executed: list[tuple[Any, ...]] = []
    failures: list[tuple[Any, ...]] = []
    replans = 0
    current = state
    if not outcome.success:
        return Execution(False, executed, failures, replans, current.copy(current.__name__), outcome.message)
    tree = outcome.tree
    pending: list[Node] = [n for n in tree.action_nodes() if n.status == "planned"]
    while pending:
        node = pending.pop(0)
        action = tuple(node.item)
        after = failure(action, current, rng) if failure is not None else None
        if after is None:
            after = _run_action(planner, action, current)
            failed = after is None
        else:
            failed = True
        if not failed:
            assert after is not None
            current = after
            executed.append(action)
            continue
        failures.append(action)
        if after is not None and after is not current:
            current = after
        if replans >= max_replans:
            return Execution(
                False, executed, failures, replans, current.copy(current.__name__), "too many replans"
            )
        replans += 1
        if blacklist_failed:
            planner.blacklist_command(action)
        repaired = planner.replan(current, node, tree=tree)
        if not repaired.success:
            return Execution(
                False, executed, failures, replans, current.copy(current.__name__), repaired.message
            )
        pending = [n for n in tree.action_nodes() if n.status == "planned"]
    return Execution(True, executed, failures, replans, current.copy(current.__name__))


@dataclass
class MonteCarloReport:
    """The results of :meth:`MonteCarloExecutor.run`.

    Attributes:
        runs: How many executions.
        successes: How many accomplished the todo list.
        mean_replans: Average repairs per run.
        mean_executed: Average actions executed per run.
        failures: The error of each unsuccessful run.
    """

    runs: int
    successes: int
    mean_replans: float
    mean_executed: float
    failures: list[str] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return self.successes / self.runs if self.runs else 0.0


class MonteCarloExecutor:
    """Executes a todo list many times under injected action failures and reports how it went.

    Args:
        planner_factory: Makes a fresh planner per run (so blacklists do not leak between runs).
        failure: The failure model (see :func:`fail_with_probability`).
        seed: Seeds the runs' randomness, so a report can be reproduced.
        max_replans, blacklist_failed: As for :func:`execute`.
    """

    def __init__(
        self,
        planner_factory: Callable[[], Planner],
        failure: FailureModel,
        *,
        seed: int = 0,
        max_replans: int = 50,
        blacklist_failed: bool = False,
    ) -> None:
        self.planner_factory = planner_factory
        self.failure = failure
        self.seed = seed
        self.max_replans = max_replans
        self.blacklist_failed = blacklist_failed

    def run(self, state: State, todo_list: Sequence[Any], runs: int = 100) -> MonteCarloReport:
        """Execute ``todo_list`` from ``state`` ``runs`` times."""
        if runs < 1:
            raise ValueError(f"runs must be at least 1, not {runs}")
        rng = random.Random(self.seed)
        results = [
            execute(
                self.planner_factory(),
                state,
                todo_list,
                failure=self.failure,
                rng=random.Random(rng.getrandbits(64)),
                max_replans=self.max_replans,
                blacklist_failed=self.blacklist_failed,
            )
            for _ in range(runs)
        ]
        return MonteCarloReport(
            runs=runs,
            successes=sum(r.success for r in results),
            mean_replans=statistics.fmean(r.replans for r in results),
            mean_executed=statistics.fmean(len(r.executed) for r in results),
            failures=[r.error or "" for r in results if not r.success],
        )
