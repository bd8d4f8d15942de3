"""The planner: GTPyhop's goal-task-network search on an explicit stack, with a solution tree.

The search is GTPyhop's: take the first todo item; an action is applied to (a copy of) the state; a
task, unigoal or multigoal is refined by the first of its methods that applies, and the method's
subtasks replace it at the front of the todo list; a goal that already holds needs nothing; a goal
refinement ends with a check that the method achieved the goal. What differs:

* No recursion: the todo list is a persistent linked list and the alternatives left are *choice
  points* on an explicit stack, so planning depth is bounded by memory only.
* Lazy methods with full backtracking: a choice point remembers which method to try next; a method is
  called only when the search backtracks to it (GTPyhop 2.x's iterative DFS calls every method of an
  item up front; ``lazy_methods=False`` does that too).
* Actions that leave the state unchanged stay in the plan (GTPyhop 2.x drops them, which breaks its
  own ``backtracking_htn`` example; ``drop_idempotent_actions=True`` restores that).
* Cheap steps: actions change the planner's own copy of the state in place while no choice point
  can go back to it, and get copy-on-write children (:mod:`aria.apps.engine.state`) while one can;
  O(1) todo and plan updates; without an observer, no tree node per item until the tree is read
  (:meth:`_Search._fast_search`).
* Enforced node-expansion and wall-clock limits, cancellation, statistics, a solution tree, and on
  failure an explanation naming the deepest item reached and what failed there.
* Re-entrant repair: :meth:`Planner.replan` after an action fails while acting, and command
  blacklisting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aria.apps.engine.domain import Domain
from aria.apps.engine.errors import DomainError
from aria.apps.engine.state import (
    Multigoal,
    State,
    cow_child,
    seal,
    touched_equal,
    touched_variables,
    unachieved_goals,
)
from aria.apps.engine.tree import (
    ACHIEVED,
    ACTION,
    DROPPED,
    EXECUTED,
    FAILED,
    MULTIGOAL,
    OPEN,
    PLANNED,
    REFINED,
    TASK,
    UNIGOAL,
    VERIFIED,
    VERIFY_GOAL,
    VERIFY_MULTIGOAL,
    Node,
    SolutionTree,
    label,
)

SUCCESS = "success"
FAILURE = "failure"
EXPANSION_LIMIT = "expansion_limit"
TIME_LIMIT = "time_limit"
CANCELLED = "cancelled"

# How many expansions between two looks at the clock and the cancel flag: time.monotonic() is cheap,
# but not free next to a dict lookup.
_CLOCK_EVERY = 32

Observer = Callable[[str, Node, Any], None]


@dataclass
class Stats:
    """What one search did.

    Attributes:
        expansions: Todo items taken from the front of the todo list (actions applied or tried,
            tasks and goals refined or found achieved, verifications).
        backtracks: Times the search returned to a choice point.
        methods_tried: Method calls.
        actions_tried: Action calls.
        max_depth: Deepest solution-tree level reached.
        plan_length: Actions in the plan returned (0 on failure).
        duration_s: Wall-clock time of the search.
    """

    expansions: int = 0
    backtracks: int = 0
    methods_tried: int = 0
    actions_tried: int = 0
    max_depth: int = 0
    plan_length: int = 0
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "expansions": self.expansions,
            "backtracks": self.backtracks,
            "methods_tried": self.methods_tried,
            "actions_tried": self.actions_tried,
            "max_depth": self.max_depth,
            "plan_length": self.plan_length,
            "duration_s": self.duration_s,
        }


@dataclass
class FailureExplanation:
    """Why planning failed: the deepest point the search reached, and what failed there.

    Attributes:
        item: The todo item (task, goal, multigoal or action) at the deepest failure.
        kind: Its kind (``task``, ``unigoal``, ``multigoal``, ``action``).
        depth: Its depth in the solution tree.
        reason: What happened there, in words.
        path: Labels of the items from the top-level todo item down to it.
        via_method: The method whose refinement produced the item (None at the top level).
        attempts: For a task or goal, each method tried and its outcome (``not applicable`` or
            ``failed below``); empty for an action.
    """

    item: Any
    kind: str
    depth: int
    reason: str
    path: list[str]
    via_method: str | None
    attempts: list[tuple[str, str]] = field(default_factory=list)

    @property
    def message(self) -> str:
        where = " > ".join(self.path)
        text = f"planning failed at depth {self.depth}, {self.kind} {self.path[-1]}: {self.reason}"
        if self.attempts:
            text += " (" + "; ".join(f"{m}: {outcome}" for m, outcome in self.attempts) + ")"
        if self.via_method:
            text += f"; it came from method {self.via_method}"
        return f"{text}; path: {where}"

    def to_json(self) -> dict[str, Any]:
        from aria.apps.engine.serialize import item_to_json

        return {
            "item": item_to_json(self.item),
            "kind": self.kind,
            "depth": self.depth,
            "reason": self.reason,
            "path": self.path,
            "via_method": self.via_method,
            "attempts": [{"method": m, "outcome": o} for m, o in self.attempts],
            "message": self.message,
        }


class PlanOutcome:
    """The result of :meth:`Planner.plan` or :meth:`Planner.replan`.

    Attributes:
        status: ``success``, ``failure`` (the search space is exhausted), ``expansion_limit``,
            ``time_limit`` or ``cancelled``.
        plan: The actions, in order (empty unless ``status == 'success'``); for a replan, only the
            new actions from the failure point on.
        tree: The solution tree (for a replan, the repaired tree).
        stats: What the search did.
        explanation: On failure or a limit, why (None on success).
    """

    def __init__(
        self,
        status: str,
        plan: list[Any],
        tree: SolutionTree,
        stats: Stats,
        explanation: FailureExplanation | None,
        final_state: State | None,
    ) -> None:
        self.status = status
        self.plan = plan
        self.tree = tree
        self.stats = stats
        self.explanation = explanation
        self._final_state = final_state
        self._detached: State | None = None

    @property
    def success(self) -> bool:
        return self.status == SUCCESS

    def __bool__(self) -> bool:
        return self.success

    @property
    def final_state(self) -> State | None:
        """The state the plan leads to (a private copy; None unless successful)."""
        if self._final_state is None:
            return None
        if self._detached is None:
            self._detached = self._final_state.copy(self._final_state.__name__)
        return self._detached

    @property
    def message(self) -> str:
        """One line saying what happened."""
        if self.success:
            return f"plan of {len(self.plan)} actions found in {self.stats.expansions} expansions"
        if self.status == EXPANSION_LIMIT:
            return f"no plan: the node-expansion limit ({self.stats.expansions}) was reached"
        if self.status == TIME_LIMIT:
            return f"no plan: the time limit was reached after {self.stats.duration_s:.3f} s"
        if self.status == CANCELLED:
            return "no plan: planning was cancelled"
        return self.explanation.message if self.explanation else "no plan: the search space is exhausted"

    def __repr__(self) -> str:
        return f"<PlanOutcome {self.status}: {self.message}>"

    def to_json(self) -> dict[str, Any]:
        """Plan, tree, stats and explanation in the engine's JSON form."""
        from aria.apps.engine.serialize import plan_to_json

        return {
            "status": self.status,
            "success": self.success,
            "message": self.message,
            "plan": plan_to_json(self.plan),
            "tree": self.tree.to_json(),
            "stats": self.stats.to_json(),
            "explanation": self.explanation.to_json() if self.explanation else None,
        }


class _Choice:
    """A choice point: an item being refined, the state and todo list to refine it in, the next method."""

    __slots__ = ("applied", "index", "kind", "methods", "node", "plan", "rest", "results", "state")

    def __init__(
        self, node: Node, kind: str, state: State, rest: Any, plan: Any, methods: Sequence[Any]
    ) -> None:
        self.node = node
        self.kind = kind
        self.state = state
        self.rest = rest
        self.plan = plan
        self.methods = methods
        self.index = 0
        self.applied: list[int] = []
        self.results: list[tuple[int, list[Any]]] | None = None  # eager mode: precomputed refinements


class _FastChoice:
    """A fast-search choice point: the agenda cell to resume, the state and log it had, the next method."""

    __slots__ = (
        "applied",
        "index",
        "item",
        "kind",
        "log",
        "methods",
        "parent",
        "plan_length",
        "rest",
        "state",
    )

    def __init__(
        self,
        item: Any,
        kind: str,
        parent: tuple[Any, ...],
        rest: Any,
        log: Any,
        state: State,
        methods: Any,
        plan_length: int,
    ) -> None:
        self.item = item
        self.kind = kind
        self.parent = parent
        self.rest = rest
        self.log = log
        self.state = state
        self.methods = methods
        self.plan_length = plan_length
        self.index = 0
        self.applied: list[int] = []


class _Stop(Exception):
    """Internal: a limit was reached or planning was cancelled."""

    def __init__(self, status: str) -> None:
        self.status = status


class Planner:
    """Plans with one domain. Not thread-safe: use one planner per thread (they are cheap).

    Args:
        domain: The domain's actions and methods.
        backtracking: Keep alternatives and backtrack to them (True); or commit to the first method
            that applies, as GTPyhop's ``iterative_greedy`` strategy does (False).
        lazy_methods: Call a method only when the search reaches it (True); or call all methods of an
            item when it is first refined, as GTPyhop 2.x's iterative DFS does (False). Only matters
            for methods with side effects or high cost: the plans are the same.
        drop_idempotent_actions: Leave out of the plan an action whose result equals its input
            state, as GTPyhop 2.x does (False keeps every action, as Pyhop and the examples expect).
        verify_goals: Check after each goal refinement that the method achieved the goal, and raise
            :class:`DomainError` if not (GTPyhop's verification tasks).
        max_expansions: Stop after this many expansions (None: unbounded).
        time_limit: Stop after this many seconds (None: unbounded). Checked between expansions, so
            one slow action or method call can overrun it by its own duration.
        observer: Called as ``observer(event, node, detail)`` at each step (GTPyhop trace event
            names: ``applied``, ``not_applicable``, ``method_applicable``, ``task_exhausted``...).
    """

    def __init__(
        self,
        domain: Domain,
        *,
        backtracking: bool = True,
        lazy_methods: bool = True,
        drop_idempotent_actions: bool = False,
        verify_goals: bool = True,
        max_expansions: int | None = None,
        time_limit: float | None = None,
        observer: Observer | None = None,
    ) -> None:
        if not hasattr(domain, "_action_dict"):
            raise TypeError(f"Planner needs a Domain, not {domain!r}")
        _check_limits(max_expansions, time_limit)
        self.domain = domain
        self.backtracking = backtracking
        self.lazy_methods = lazy_methods
        self.drop_idempotent_actions = drop_idempotent_actions
        self.verify_goals = verify_goals
        self.max_expansions = max_expansions
        self.time_limit = time_limit
        self.observer = observer
        self.blacklist: set[tuple[Any, ...]] = set()
        self.tree: SolutionTree | None = None

    # ----------------------------------------------------------------------------------------------
    # Public API

    def blacklist_command(self, action: Sequence[Any]) -> None:
        """Never plan this ground action again (for example after it failed when executed)."""
        self.blacklist.add(tuple(action))

    def plan(
        self,
        state: State,
        todo_list: Iterable[Any],
        *,
        max_expansions: int | None = None,
        time_limit: float | None = None,
        cancel: threading.Event | None = None,
    ) -> PlanOutcome:
        """Find a plan for ``todo_list`` from ``state``; the state is not modified.

        Args:
            state: The initial state.
            todo_list: Tasks, goals (``(variable, arg, value)``), multigoals and actions.
            max_expansions, time_limit: Override the planner's limits for this call.
            cancel: Set it (from another thread) to stop the search at the next check.

        Returns:
            The outcome; its ``tree`` is also kept as ``self.tree`` for :meth:`replan`.

        Raises:
            DomainError: if the domain misbehaves (the message names the item, method or action).
            TypeError: if ``state`` is not a State or ``todo_list`` is not a list or tuple.
        """
        if not isinstance(state, State):
            raise TypeError(f"plan() needs a State, not {type(state).__name__}: {state!r:.100}")
        if not isinstance(todo_list, list | tuple):
            raise TypeError(f"plan() needs a todo list (list or tuple), not {type(todo_list).__name__}")
        tree = SolutionTree()
        nodes = [tree.new_node(item, tree.root) for item in todo_list]
        tree.root.children = list(nodes)
        self.tree = tree
        search = _Search(self, tree, max_expansions, time_limit, cancel)
        return search.run(state, nodes)

    def replan(
        self,
        state: State,
        failed_node: Node | int,
        *,
        tree: SolutionTree | None = None,
        max_expansions: int | None = None,
        time_limit: float | None = None,
        cancel: threading.Event | None = None,
    ) -> PlanOutcome:
        """Repair a plan after ``failed_node``'s action failed while acting, from the current ``state``.

        The actions before ``failed_node`` are taken as executed and stay in the tree. The repair tries,
        in turn: the remaining todo items as they are (the failed action first); then re-refining the
        failed action's parent from ``state`` followed by what came after the parent; then the
        grandparent; and so on up to the top-level items. The first that plans wins; its new subtrees
        replace the old ones (the old version of a re-refined node is kept in its ``superseded``).

        Args:
            state: The state observed after the failure.
            failed_node: The failed action's node (or its id) in ``tree``.
            tree: The solution tree to repair (default: the one from this planner's last call).

        Returns:
            An outcome whose ``plan`` holds only the new actions, from the failure point on.

        Raises:
            aria.errors.UsageError: if there is no tree, or the node is not a planned action of it.
        """
        from aria.errors import UsageError

        tree = tree or self.tree
        if tree is None:
            raise UsageError("replan() needs the solution tree of an earlier plan(); none was given")
        if isinstance(failed_node, int):
            try:
                failed_node = tree.node(failed_node)
            except KeyError:
                raise UsageError(f"replan(): the solution tree has no node {failed_node}") from None
        actions = tree.action_nodes()
        if failed_node not in actions or failed_node.status not in (PLANNED, FAILED):
            raise UsageError(
                f"replan(): {failed_node!r} is not a planned action of this solution tree "
                "(pass the node of the action that failed)"
            )
        for node in actions:
            if node is failed_node:
                break
            node.status = EXECUTED
        failed_node.status = FAILED
        self.tree = tree
        started = time.perf_counter()
        total = Stats()
        outcome: PlanOutcome | None = None
        repair_point: Node = failed_node
        while repair_point.kind is not None and repair_point.parent is not None:
            fresh, originals = _fresh_agenda(tree, repair_point)
            search = _Search(self, tree, max_expansions, time_limit, cancel)
            outcome = search.run(state, fresh)
            _add_stats(total, outcome.stats)
            if outcome.success:
                for new, old in zip(fresh, originals, strict=True):
                    siblings = old.parent.children  # type: ignore[union-attr]
                    siblings[_index(siblings, old)] = new
                fresh[0].superseded = [*fresh[0].superseded, originals[0]]
                break
            if outcome.status in (EXPANSION_LIMIT, TIME_LIMIT, CANCELLED):
                break
            repair_point = repair_point.parent
        assert outcome is not None
        total.duration_s = time.perf_counter() - started
        total.plan_length = len(outcome.plan)
        outcome.stats = total
        outcome.tree = tree
        return outcome


def _check_limits(max_expansions: int | None, time_limit: float | None) -> None:
    if max_expansions is not None and (not isinstance(max_expansions, int) or max_expansions < 0):
        raise ValueError(f"max_expansions must be a non-negative integer or None, not {max_expansions!r}")
    if time_limit is not None and (not isinstance(time_limit, int | float) or time_limit < 0):
        raise ValueError(f"time_limit must be a non-negative number of seconds or None, not {time_limit!r}")


def _index(nodes: list[Node], node: Node) -> int:
    for position, candidate in enumerate(nodes):
        if candidate is node:
            return position
    raise ValueError(f"{node!r} is not among its parent's children")


def _fresh_agenda(tree: SolutionTree, start: Node) -> tuple[list[Node], list[Node]]:
    """Fresh, unexpanded copies of ``start`` and of everything after it in the tree, in order."""
    originals = [start]
    node = start
    while node.parent is not None:
        siblings = node.parent.children
        originals.extend(siblings[_index(siblings, node) + 1 :])
        node = node.parent
    fresh = []
    for old in originals:
        new = tree.new_node(old.item, old.parent)  # type: ignore[arg-type]
        if old.kind in (VERIFY_GOAL, VERIFY_MULTIGOAL):
            new.kind = old.kind
            new.method = old.method
        fresh.append(new)
    return fresh, originals


def _add_stats(total: Stats, part: Stats) -> None:
    total.expansions += part.expansions
    total.backtracks += part.backtracks
    total.methods_tried += part.methods_tried
    total.actions_tried += part.actions_tried
    total.max_depth = max(total.max_depth, part.max_depth)


def _error_text(error: BaseException) -> str:
    """``Type: message``; a state variable that does not exist is named as such."""
    if isinstance(error, AttributeError) and isinstance(getattr(error, "obj", None), State):
        return f"AttributeError: state {error.obj.__name__!r} has no state variable {error.name!r}"  # type: ignore[union-attr]
    return f"{type(error).__name__}: {error}"


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.200}"


class _Search:
    """One run of the search loop (a separate object so that Planner stays re-entrant)."""

    def __init__(
        self,
        planner: Planner,
        tree: SolutionTree,
        max_expansions: int | None,
        time_limit: float | None,
        cancel: threading.Event | None,
    ) -> None:
        _check_limits(max_expansions, time_limit)
        self.planner = planner
        self.domain = planner.domain
        self.tree = tree
        self.max_expansions = planner.max_expansions if max_expansions is None else max_expansions
        limit = planner.time_limit if time_limit is None else time_limit
        self.time_limit = limit
        self.cancel = cancel
        self.stats = Stats()
        self.explanation: FailureExplanation | None = None
        self.stack: list[_Choice] = []
        self.started = 0.0
        self.deadline: float | None = None

    # ----------------------------------------------------------------------------------------------

    def run(self, state: State, nodes: list[Node]) -> PlanOutcome:
        self.started = time.perf_counter()
        self.deadline = None if self.time_limit is None else time.monotonic() + self.time_limit
        planner = self.planner
        if planner.observer is None and planner.lazy_methods and not planner.drop_idempotent_actions:
            return self._run_fast(state, nodes)
        agenda = None
        for node in reversed(nodes):
            agenda = (node, agenda)
        status, final_state, plan_cons = self._loop(state, agenda)
        stats = self.stats
        stats.duration_s = time.perf_counter() - self.started
        plan: list[Any] = []
        if status == SUCCESS:
            while plan_cons is not None:
                node, plan_cons = plan_cons
                plan.append(node.item)
            plan.reverse()
            stats.plan_length = len(plan)
        explanation = None if status == SUCCESS else self.explanation
        return PlanOutcome(
            status, plan, self.tree, stats, explanation, final_state if status == SUCCESS else None
        )

    def _run_fast(self, state: State, nodes: list[Node]) -> PlanOutcome:
        """The search without observers, eager methods or dropped actions: see :meth:`_fast_search`."""
        agenda = None
        for node in reversed(nodes):
            kind = _VERIFY if node.kind in (VERIFY_GOAL, VERIFY_MULTIGOAL) else node.kind
            agenda = (node.item, kind, (_TOP, node, None, node.depth - 1, None, None, None), agenda)
        # The search changes its state in place while nothing can backtrack to an earlier one, so
        # it starts from a private copy: the caller's state is never modified.
        own = State.copy(state, state.__name__)
        self.log = None
        self.plan: list[Any] = []
        try:
            status, final_state = self._fast_search(own, agenda)
        except _Stop as stop:
            self._explain_stop(stop.status)
            status, final_state = stop.status, None
        finally:
            tree, log, planned, domain = self.tree, self.log, len(self.plan), self.domain
            verify_goals = self.planner.verify_goals
            tree.defer(lambda: _build_nodes(tree, nodes, log, planned, verify_goals, domain))
        stats = self.stats
        stats.duration_s = time.perf_counter() - self.started
        plan: list[Any] = []
        if status == SUCCESS:
            plan = self.plan
            stats.plan_length = len(plan)
        explanation = None if status == SUCCESS else self.explanation
        return PlanOutcome(status, plan, self.tree, stats, explanation, final_state)

    def _loop(self, state: State, agenda: Any) -> tuple[str, State | None, Any]:
        stats = self.stats
        counters = [0, 0, 0, 0]  # expansions, actions tried, methods tried, deepest depth
        try:
            return self._search(state, agenda, counters)
        except _Stop as stop:
            self._explain_stop(stop.status)
            return stop.status, None, None
        finally:
            # The loop keeps its counters in locals (attribute writes cost more than the rest of a
            # step's bookkeeping); they reach the stats on every way out, errors included.
            stats.expansions = counters[0]
            stats.actions_tried += counters[1]
            stats.methods_tried += counters[2]
            stats.max_depth = max(stats.max_depth, counters[3])

    def _search(self, state: State, agenda: Any, counters: list[int]) -> tuple[str, State | None, Any]:
        """The search loop proper. Hot path: an item is classified once (by name, cached), a method is
        tried without allocating a choice point unless alternatives remain to backtrack to, and tree
        nodes are built inline."""
        domain = self.domain
        actions = domain._action_dict
        task_methods = domain._task_method_dict
        unigoal_methods = domain._unigoal_method_dict
        planner = self.planner
        observe = planner.observer
        blacklist = planner.blacklist
        drop_idempotent = planner.drop_idempotent_actions
        backtracking = planner.backtracking
        verify_goals = planner.verify_goals
        fast_refine = planner.lazy_methods and observe is None
        limit = self.max_expansions
        if limit is None:
            limit = -1
        check_clock = self.deadline is not None or self.cancel is not None
        new_id = self.tree.new_id
        kind_of_name: dict[Any, str] = {}
        touched_by: dict[Any, frozenset[str]] = {}  # action name -> variables it copied last time
        verified: tuple[State, Any] | None = None  # the last multigoal verification that passed
        plan = None
        expansions = actions_tried = methods_tried = deepest = 0
        try:
            while True:
                if agenda is None:
                    return SUCCESS, state, plan
                if expansions == limit:
                    raise _Stop(EXPANSION_LIMIT)
                expansions += 1
                if check_clock and not expansions % _CLOCK_EVERY:
                    self._check_clock()
                node, rest = agenda
                if node.depth > deepest:
                    deepest = node.depth
                item = node.item
                kind = node.kind
                if kind is None:
                    if type(item) is tuple and item:
                        kind = kind_of_name.get(item[0])
                        if kind is UNIGOAL and len(item) != 3:
                            kind = None  # _classify names the error
                    elif type(item) is Multigoal:
                        kind = MULTIGOAL
                    if kind is None:
                        kind = self._classify(node)
                        if type(item) is tuple and kind is not MULTIGOAL:
                            kind_of_name[item[0]] = kind
                    node.kind = kind
                if observe is not None:
                    observe("expand", node, state)
                if kind is not VERIFY_MULTIGOAL:
                    verified = None

                if kind is ACTION:
                    actions_tried += 1
                    if blacklist and tuple(item) in blacklist:
                        if observe is not None:
                            observe("not_applicable", node, "blacklisted")
                        self._note_failure(node, "the command is blacklisted")
                    else:
                        name = item[0]
                        copy_now = touched_by.get(name, _NOTHING)
                        child = cow_child(state, copy_now)
                        expected = len(child.__dict__)
                        try:
                            result = actions[name](child, *item[1:])
                        except Exception as error:
                            raise DomainError(
                                f"action {label(node)} raised {_error_text(error)} "
                                f"(while planning {' > '.join(node.path())})"
                            ) from error
                        if len(child.__dict__) != expected:
                            # It read (or created) variables beyond last time's: copy those at once
                            # next time. Learning by action name is only a guess; lazy copying
                            # stays behind it for whatever the action reads besides.
                            touched_by[name] = touched_variables(child)
                        if result is child or isinstance(result, State):
                            seal(child)
                        elif result is None or result is False:
                            result = None
                        else:
                            raise DomainError(
                                f"action {label(node)} returned {_describe(result)}; an action must return "
                                "the state it was given (modified) when it applies, or False/None when not"
                            )
                        if result is not None:
                            if drop_idempotent and (result is state or touched_equal(result, state)):
                                node.status = DROPPED
                                if observe is not None:
                                    observe("idempotent", node, result)
                            else:
                                node.status = PLANNED
                                plan = (node, plan)
                                if observe is not None:
                                    observe("applied", node, result)
                            state = result
                            agenda = rest
                            continue
                        if observe is not None:
                            observe("not_applicable", node, None)
                        self._note_failure(
                            node, "the action's preconditions do not hold (it returned False/None)"
                        )

                elif kind is VERIFY_MULTIGOAL:
                    # Nested refinements of one multigoal end in a run of verifications of it against
                    # the same sealed (so unchanged) state, with no domain code in between: check once.
                    again = verified is not None and verified[0] is state and verified[1] is item
                    missing = None if again else unachieved_goals(state, item)
                    if missing:
                        raise DomainError(
                            f"method {node.method} did not achieve multigoal {item.__name__}: "
                            "still unachieved "
                            f"{missing!r} (while planning {' > '.join(node.parent.path())})"  # type: ignore[union-attr]
                        )
                    node.status = VERIFIED
                    verified = (state, item)
                    agenda = rest
                    continue

                elif kind is VERIFY_GOAL:
                    variable, arg, value = item
                    if not _holds(state, variable, arg, value, node):
                        raise DomainError(
                            f"method {node.method} did not achieve goal {item!r}: after its subtasks, "
                            f"{variable}[{arg!r}] is {_lookup(state, variable, arg)!r} "
                            f"(while planning {' > '.join(node.parent.path())})"  # type: ignore[union-attr]
                        )
                    node.status = VERIFIED
                    agenda = rest
                    continue

                else:  # a task, a unigoal or a multigoal: refine it
                    if kind is TASK:
                        methods = task_methods[item[0]]
                    elif kind is UNIGOAL:
                        variable, arg, value = item
                        if _holds(state, variable, arg, value, node):
                            node.status = ACHIEVED
                            if observe is not None:
                                observe("already_achieved", node, None)
                            agenda = rest
                            continue
                        methods = unigoal_methods[variable]
                    else:
                        methods = domain._multigoal_method_list
                    if not fast_refine:
                        refined = self._refine(_Choice(node, kind, state, rest, plan, methods))
                        if refined is not _NO_METHOD:
                            agenda = refined
                            continue
                    else:
                        # Methods in order, each called only when the one before does not apply.
                        count = len(methods)
                        index = 0
                        subitems = None
                        while index < count:
                            method = methods[index]
                            index += 1
                            methods_tried += 1
                            try:
                                if kind is TASK:
                                    subitems = method(state, *item[1:])
                                elif kind is UNIGOAL:
                                    subitems = method(state, item[1], item[2])
                                else:
                                    subitems = method(state, item)
                            except Exception as error:
                                raise DomainError(
                                    f"method {method.__name__} for {label(node)} raised {_error_text(error)} "
                                    f"(while planning {' > '.join(node.path())})"
                                ) from error
                            if subitems is False or subitems is None:
                                subitems = None
                                continue
                            if type(subitems) is not list and not isinstance(subitems, list):
                                raise DomainError(
                                    f"method {method.__name__} for {label(node)} returned "
                                    f"{_describe(subitems)}; a method must return a list of tasks, goals "
                                    "and actions, or False/None when it does not apply"
                                )
                            break
                        if subitems is not None:
                            node.method = method.__name__
                            node.status = REFINED
                            depth = node.depth + 1
                            children = [Node(new_id(), sub, node, None, depth) for sub in subitems]
                            if verify_goals and kind is not TASK:
                                check_kind = VERIFY_GOAL if kind is UNIGOAL else VERIFY_MULTIGOAL
                                check = Node(new_id(), item, node, check_kind, depth)
                                check.method = node.method
                                children.append(check)
                            node.children = children
                            if backtracking and index < count:
                                choice = _Choice(node, kind, state, rest, plan, methods)
                                choice.index = index
                                choice.applied.append(index - 1)
                                self.stack.append(choice)
                            agenda = rest
                            for child in reversed(children):
                                agenda = (child, agenda)
                            continue
                        exhausted = _Choice(node, kind, state, rest, plan, methods)
                        exhausted.index = count
                        self._note_exhausted(exhausted)

                # The item failed: backtrack to the most recent choice point that has a method left.
                while True:
                    if not self.stack:
                        return FAILURE, None, None
                    choice = self.stack.pop()
                    self.stats.backtracks += 1
                    if check_clock:
                        self._check_clock()
                    state = choice.state
                    plan = choice.plan
                    refined = self._refine(choice)
                    if refined is not _NO_METHOD:
                        agenda = refined
                        break
        finally:
            counters[0] = expansions
            counters[1] = actions_tried
            counters[2] = methods_tried
            counters[3] = deepest

    # ----------------------------------------------------------------------------------------------

    def _fast_search(self, state: State, agenda: Any) -> tuple[str, State | None]:
        """The search loop for the common configuration, with as little work per step as it can.

        * No node per todo item: the agenda is a persistent list of cells ``(item, kind, parent,
          rest)`` (``kind`` None until classified, ``_VERIFY`` for a goal's verification, or the
          choice point a backtrack resumes). What the search did is the plan (a list) and a
          persistent log, newest first, of its refinements (and goals that already held), which
          :func:`_build_nodes` turns into the solution tree when someone reads it. A refinement's
          record ``(kind, item, parent record, depth, method, subitems, previous)`` is its log entry
          and the parent of its subitems' cells. A choice point keeps the log and the plan's length,
          so backtracking forgets what the abandoned branch did. The tree keeps the very list a
          method returned (a method must not change it afterwards).
        * Actions change the state in place while no choice point is left to backtrack to (always,
          in the greedy strategy): nothing can go back to the state as it was, so there is nothing
          to copy or undo (the conditional trailing of Prolog's WAM, with an empty trail). While a
          choice point holds a state, an action runs on a copy-on-write child instead, and the
          choice point's state stays as it was.
        * One lookup per item: its name gives its kind and its action or methods together.
        * One countdown per expansion: the loop looks at the expansion limit and the clock only
          when it runs out.
        * Nested refinements of one multigoal would end in a run of verifications of it with
          nothing in between: the run is one verification cell (the innermost refinement's, which
          an unachieved goal blames); the tree still gets a verification node for each, and the
          statistics count each as an expansion (the expansion limit counts the one check).

        Returns the status and the final state; the log and the plan are left in ``self.log`` and
        ``self.plan`` on every way out.
        """
        domain = self.domain
        planner = self.planner
        blacklist = planner.blacklist
        backtracking = planner.backtracking
        verify_goals = planner.verify_goals
        limit = -1 if self.max_expansions is None else self.max_expansions
        check_clock = self.deadline is not None or self.cancel is not None
        stats = self.stats
        stack: list[_FastChoice] = []
        # name -> (kind, the action or the list of methods), filled as names are met
        by_name: dict[Any, tuple[str, Any]] = {}
        multigoal_entry = (MULTIGOAL, domain._multigoal_method_list)
        touched_by: dict[Any, frozenset[str]] = {}  # action name -> variables it copied last time
        # Locals rather than globals in the loop: a local is the cheapest read there is.
        action_kind, task_kind, multigoal_kind, verify_kind = ACTION, TASK, MULTIGOAL, _VERIFY
        multigoal_type, list_type, tuple_type = Multigoal, list, tuple
        plan = self.plan
        plan_append = plan.append
        log = None
        actions_tried = methods_tried = backtracks = 0
        merged = 0  # verifications run as part of an enclosing one's check (expansions all the same)
        deepest = agenda[2][3] + 1 if agenda is not None else 0
        # Expansions are counted down in windows that end at the limit or at the next look at the
        # clock: `spent` expansions before this window, `left` still to go in it.
        spent = 0
        window = left = _window(limit, spent, check_clock)
        try:
            while agenda is not None:
                if not left:
                    spent += window
                    window = left = _window(limit, spent, check_clock)
                    if spent == limit:
                        raise _Stop(EXPANSION_LIMIT)
                    if check_clock:
                        self._check_clock()
                left -= 1
                item, kind, parent, rest = agenda
                if kind is None:
                    if type(item) is tuple_type:
                        try:
                            entry = by_name.get(item[0])
                        except (IndexError, TypeError):  # () or an unhashable name: _kind_of says so
                            entry = None
                    elif type(item) is multigoal_type:
                        entry = multigoal_entry
                    else:
                        entry = None
                    if entry is None:
                        entry = self._fast_kind(item, parent, by_name, multigoal_entry)
                    kind, target = entry

                if kind is action_kind:
                    actions_tried += 1
                    if blacklist and tuple(item) in blacklist:
                        reason = "the command is blacklisted"
                    elif not stack:
                        # Nothing can backtrack to the state as it is: the action changes it.
                        try:
                            result = target(state, *item[1:])
                        except Exception as error:
                            raise _action_error(item, parent, error) from error
                        if result is state:
                            plan_append(item)
                            agenda = rest
                            continue
                        if result is not None and result is not False:
                            if not isinstance(result, State):
                                raise _action_result_error(item, parent, result)
                            # Another state object: this search's own copy of it from now on.
                            state = State.copy(result, result.__name__)
                            plan_append(item)
                            agenda = rest
                            continue
                        reason = _PRECONDITIONS
                    else:
                        # A choice point holds this state: the action gets a copy-on-write child.
                        name = item[0]
                        child = cow_child(state, touched_by.get(name, _NOTHING))
                        expected = len(child.__dict__)
                        try:
                            result = target(child, *item[1:])
                        except Exception as error:
                            raise _action_error(item, parent, error) from error
                        if len(child.__dict__) != expected:
                            touched_by[name] = touched_variables(child)
                        if result is not None and result is not False:
                            if not isinstance(result, State):
                                raise _action_result_error(item, parent, result)
                            seal(child)
                            state = result
                            plan_append(item)
                            agenda = rest
                            continue
                        reason = _PRECONDITIONS
                    self._note_cell_failure(item, ACTION, parent, reason)

                elif kind is not verify_kind:  # a task, unigoal or multigoal, or a choice point to resume
                    if kind is task_kind or kind is multigoal_kind:
                        methods = target
                        start = 0
                    elif kind is UNIGOAL:
                        if len(item) != 3:
                            self._kind_of(item, partial(_cell_node, item, None, parent))  # raises
                        if _goal_holds(state, item[0], item[1], item[2], parent):
                            log = (_ACHIEVED, item, parent, log)
                            agenda = rest
                            continue
                        methods = target
                        start = 0
                    else:
                        choice = kind
                        kind = choice.kind
                        methods = choice.methods
                        start = choice.index
                    tried = start
                    for method in methods if not start else methods[start:]:
                        tried += 1
                        try:
                            if kind is task_kind:
                                subitems = method(state, *item[1:])
                            elif kind is multigoal_kind:
                                subitems = method(state, item)
                            else:
                                subitems = method(state, item[1], item[2])
                        except Exception as error:
                            node = _cell_node(item, kind, parent)
                            raise DomainError(
                                f"method {method.__name__} for {label(node)} raised {_error_text(error)} "
                                f"(while planning {' > '.join(node.path())})"
                            ) from error
                        if type(subitems) is list_type:
                            break
                        if subitems is False or subitems is None:
                            continue
                        if isinstance(subitems, list):
                            break
                        node = _cell_node(item, kind, parent)
                        raise DomainError(
                            f"method {method.__name__} for {label(node)} returned "
                            f"{_describe(subitems)}; a method must return a list of tasks, goals "
                            "and actions, or False/None when it does not apply"
                        )
                    else:
                        method = None
                    methods_tried += tried - start
                    if method is not None:
                        if backtracking and tried < len(methods):
                            if not start:
                                if not stack:
                                    # From now on actions copy rather than change this state; what
                                    # in-place actions did to it is not reflected in its layout.
                                    state._flat = None
                                choice = _FastChoice(item, kind, parent, rest, log, state, methods, len(plan))
                            choice.index = tried
                            choice.applied.append(tried - 1)
                            stack.append(choice)
                        depth = parent[3] + 1
                        log = record = (kind, item, parent, depth, method, subitems, log)
                        if kind is task_kind or not verify_goals:
                            agenda = rest
                        else:
                            if rest is not None and rest[1] is verify_kind and rest[0] is item:
                                rest = rest[3]  # the enclosing refinement's check: this one does for both
                                merged += 1
                            agenda = (item, verify_kind, record, rest)
                        if depth >= deepest and (subitems or agenda is not rest):
                            deepest = depth + 1
                        if subitems:
                            if len(subitems) == 1:
                                agenda = (subitems[0], None, record, agenda)
                            else:
                                for sub in reversed(subitems):
                                    agenda = (sub, None, record, agenda)
                        continue
                    if not start:
                        choice = _FastChoice(item, kind, parent, rest, log, state, methods, len(plan))
                    choice.index = len(methods)
                    self._note_cell_exhausted(choice)

                else:  # a verification
                    if type(item) is tuple_type:
                        variable, arg, value = item
                        if not _goal_holds(state, variable, arg, value, parent):
                            node = _cell_node(item, VERIFY_GOAL, parent)
                            raise DomainError(
                                f"method {node.method} did not achieve goal {item!r}: after its subtasks, "
                                f"{variable}[{arg!r}] is {_lookup(state, variable, arg)!r} "
                                f"(while planning {' > '.join(node.parent.path())})"  # type: ignore[union-attr]
                            )
                    else:
                        missing = unachieved_goals(state, item)
                        if missing:
                            node = _cell_node(item, VERIFY_MULTIGOAL, parent)
                            raise DomainError(
                                f"method {node.method} did not achieve multigoal {item.__name__}: "
                                "still unachieved "
                                f"{missing!r} (while planning {' > '.join(node.parent.path())})"  # type: ignore[union-attr]
                            )
                    agenda = rest
                    continue

                # The item failed: go back to the most recent choice point, resumed as an agenda cell.
                if not stack:
                    return FAILURE, None
                choice = stack.pop()
                backtracks += 1
                if check_clock:
                    self._check_clock()
                state = choice.state
                log = choice.log
                del plan[choice.plan_length :]
                agenda = (choice.item, choice, choice.parent, choice.rest)
                left += 1  # resuming is not an expansion
            return SUCCESS, state
        finally:
            self.log = log
            stats.expansions = spent + window - left + merged
            stats.actions_tried += actions_tried
            stats.methods_tried += methods_tried
            stats.backtracks += backtracks
            stats.max_depth = max(stats.max_depth, deepest)

    def _fast_kind(
        self,
        item: Any,
        parent: tuple[Any, ...],
        by_name: dict[Any, tuple[str, Any]],
        multigoal_entry: tuple[str, Any],
    ) -> tuple[str, Any]:
        """Classify an item the fast search has no entry for; cache the entry for its name."""
        kind = self._kind_of(item, partial(_cell_node, item, None, parent))
        if kind is MULTIGOAL:
            return multigoal_entry
        name = item[0]
        domain = self.domain
        if kind is ACTION:
            entry = (kind, domain._action_dict[name])
        elif kind is TASK:
            entry = (kind, domain._task_method_dict[name])
        else:
            entry = (kind, domain._unigoal_method_dict[name])
        if type(item) is tuple:
            by_name[name] = entry
        return entry

    def _note_cell_failure(self, item: Any, kind: str, parent: tuple[Any, ...], reason: str) -> None:
        if self.explanation is None or parent[3] + 1 > self.explanation.depth:
            self._note_failure(_cell_node(item, kind, parent), reason)

    def _note_cell_exhausted(self, choice: _FastChoice) -> None:
        depth = choice.parent[3] + 1
        if self.explanation is not None and depth <= self.explanation.depth:
            return
        node = _cell_node(choice.item, choice.kind, choice.parent)
        old = _Choice(node, choice.kind, choice.state, None, None, choice.methods)
        old.index = choice.index
        old.applied = choice.applied
        if choice.parent[0] is _TOP:
            # A top-level item's own node (it stays in the tree): leave its fields to _build_nodes.
            saved = (node.method, node.status, node.children)
            self._note_exhausted(old)
            node.method, node.status, node.children = saved
        else:
            self._note_exhausted(old)

    def _check_clock(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise _Stop(CANCELLED)
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise _Stop(TIME_LIMIT)

    def _classify(self, node: Node) -> str:
        return self._kind_of(node.item, lambda: node)

    def _kind_of(self, item: Any, node_of: Callable[[], Node]) -> str:
        """The kind of a todo item; ``node_of`` gives its node for error messages (built only then)."""
        domain = self.domain
        if isinstance(item, tuple | list):
            if not item:
                raise DomainError(f"an empty todo item {item!r}{_origin(node_of())}: it names nothing to do")
            name = item[0]
            try:
                if name in domain._action_dict:
                    return ACTION
                if name in domain._task_method_dict:
                    return TASK
                if name in domain._unigoal_method_dict:
                    if len(item) != 3:
                        raise DomainError(
                            f"goal {item!r}{_origin(node_of())} must be (state variable, argument, value), "
                            f"but has {len(item)} elements"
                        )
                    return UNIGOAL
            except TypeError:
                raise DomainError(
                    f"todo item {item!r}{_origin(node_of())}: its first element {name!r} is not a name"
                ) from None
            raise DomainError(
                f"todo item {item!r}{_origin(node_of())} isn't an action, task, unigoal or multigoal: "
                f"nothing named {name!r} is declared in domain {domain.__name__!r}. Declare it with "
                f"declare_actions, declare_task_methods, or declare_unigoal_methods({name!r}, ...) for a goal"
            )
        if isinstance(item, Multigoal) or type(item).__name__ == "Multigoal":
            return MULTIGOAL
        raise DomainError(
            f"todo item {item!r:.200}{_origin(node_of())} isn't an action, task, unigoal or multigoal: "
            "expected a Multigoal or a non-empty tuple naming an action, a task or a goal's state variable, "
            f"got {type(item).__name__}"
        )

    def _call_method(self, choice: _Choice, index: int) -> Any:
        method = choice.methods[index]
        node = choice.node
        item = node.item
        self.stats.methods_tried += 1
        try:
            if choice.kind is TASK:
                result = method(choice.state, *item[1:])
            elif choice.kind is UNIGOAL:
                result = method(choice.state, item[1], item[2])
            else:
                result = method(choice.state, item)
        except Exception as error:
            raise DomainError(
                f"method {method.__name__} for {label(node)} raised {_error_text(error)} "
                f"(while planning {' > '.join(node.path())})"
            ) from error
        if result is False or result is None:
            return None
        if not isinstance(result, list):
            raise DomainError(
                f"method {method.__name__} for {label(node)} returned {_describe(result)}; "
                "a method must return "
                "a list of tasks, goals and actions, or False/None when it does not apply"
            )
        return result

    def _refine(self, choice: _Choice) -> Any:
        """Apply the next method of ``choice`` that applies; return the new agenda, or _NO_METHOD."""
        observe = self.planner.observer
        node = choice.node
        methods = choice.methods
        if not self.planner.lazy_methods and choice.results is None:
            choice.results = []
            for index in range(len(methods)):
                result = self._call_method(choice, index)
                if observe is not None:
                    observe(
                        "method_applicable" if result is not None else "method_not_applicable",
                        node,
                        methods[index],
                    )
                if result is not None:
                    choice.results.append((index, result))
            choice.results.reverse()  # popped from the end, in declaration order
        while True:
            if choice.results is not None:
                if not choice.results:
                    break
                index, subitems = choice.results.pop()
                choice.index = index + 1
            else:
                if choice.index >= len(methods):
                    break
                index = choice.index
                choice.index += 1
                subitems = self._call_method(choice, index)
                if observe is not None:
                    observe(
                        "method_applicable" if subitems is not None else "method_not_applicable",
                        node,
                        methods[index],
                    )
                if subitems is None:
                    continue
            choice.applied.append(index)
            method_name = methods[index].__name__
            node.method = method_name
            node.status = REFINED
            tree = self.tree
            children = [tree.new_node(sub, node) for sub in subitems]
            if self.planner.verify_goals and choice.kind is not TASK:
                kind = VERIFY_GOAL if choice.kind is UNIGOAL else VERIFY_MULTIGOAL
                check = tree.new_node(node.item, node, kind)
                check.method = method_name
                children.append(check)
            node.children = children
            more = choice.results if choice.results is not None else choice.index < len(methods)
            if more and self.planner.backtracking:
                self.stack.append(choice)
            agenda = choice.rest
            for child in reversed(children):
                agenda = (child, agenda)
            return agenda
        # Exhausted.
        if observe is not None:
            observe(f"{choice.kind}_exhausted" if choice.kind != UNIGOAL else "goal_exhausted", node, None)
        self._note_exhausted(choice)
        return _NO_METHOD

    def _note_failure(self, node: Node, reason: str) -> None:
        if self.explanation is None or node.depth > self.explanation.depth:
            parent = node.parent
            self.explanation = FailureExplanation(
                item=node.item,
                kind=node.kind or "?",
                depth=node.depth,
                reason=reason,
                path=node.path(),
                via_method=parent.method
                if parent is not None and parent.kind not in (None, "root")
                else None,
            )

    def _note_exhausted(self, choice: _Choice) -> None:
        node = choice.node
        if self.explanation is not None and node.depth <= self.explanation.depth:
            return
        applied = set(choice.applied)
        tried = range(choice.index) if choice.results is None else range(len(choice.methods))
        attempts = [
            (choice.methods[i].__name__, "failed below" if i in applied else "not applicable") for i in tried
        ]
        if not choice.methods:
            reason = "no methods are declared for it"
        elif not applied:
            reason = "no method applies in this state"
        else:
            reason = "every method that applied led to a dead end below it"
        node.method = None
        node.status = OPEN
        node.children = []
        self.explanation = None  # deeper than anything recorded so far (checked above)
        self._note_failure(node, reason)
        assert self.explanation is not None
        self.explanation.attempts = attempts

    def _explain_stop(self, status: str) -> None:
        reason = {
            EXPANSION_LIMIT: f"the node-expansion limit ({self.max_expansions}) was reached",
            TIME_LIMIT: f"the time limit ({self.time_limit} s) was reached",
            CANCELLED: "planning was cancelled",
        }[status]
        deepest = self.explanation
        self.explanation = FailureExplanation(
            item=deepest.item if deepest else None,
            kind=deepest.kind if deepest else "none",
            depth=deepest.depth if deepest else 0,
            reason=reason + (f"; the deepest failure before that: {deepest.reason}" if deepest else ""),
            path=deepest.path if deepest else ["(nothing failed before the stop)"],
            via_method=deepest.via_method if deepest else None,
            attempts=deepest.attempts if deepest else [],
        )


_NOTHING: frozenset[str] = frozenset()
_PRECONDITIONS = "the action's preconditions do not hold (it returned False/None)"

# What _refine returns when no method (or none left) applies; None is a valid, empty agenda.
_NO_METHOD = object()


def _origin(node: Node) -> str:
    parent = node.parent
    if parent is None or parent.kind in (None, "root"):
        return " in the top-level todo list"
    return f" (returned by method {parent.method} for {label(parent)})"


def _holds(state: State, variable: str, arg: Any, value: Any, node: Node) -> bool:
    bindings = state.__dict__.get(variable)
    if bindings is None or not hasattr(bindings, "get"):
        from aria.apps.engine.state import unigoal_holds

        try:
            return unigoal_holds(state, variable, arg, value)
        except DomainError as error:
            raise DomainError(f"{error}{_origin(node)}") from None
    return bindings.get(arg) == value


# Tags of the fast search's records (see _Search._fast_search): the pseudo-record above a top-level
# item (holding its node), a goal that already held.
_TOP = "<top>"
_ACHIEVED = "<achieved>"
# The kind of a verification cell (a multigoal's or a unigoal's, told apart by the item's type).
_VERIFY = "<verify>"


def _window(limit: int, spent: int, check_clock: bool) -> int:
    """Expansions the fast search may make before it must look at the limit or the clock again."""
    window = _CLOCK_EVERY if check_clock else 1 << 62
    return window if limit < 0 else min(window, limit - spent)


def _record_node(record: tuple[Any, ...]) -> Node:
    """A stand-alone node for a refinement record, with stand-alone ancestors up to the real tree.

    For error messages and failure explanations (labels, paths, depths, the method chosen); the
    nodes are not part of the tree. Iterative, as trees can be deeper than Python's recursion.
    """
    chain = []
    while record[0] is not _TOP:
        chain.append(record)
        record = record[2]
    node = record[1].parent  # the top-level item's parent: a real node of the tree
    for kind, item, _parent, depth, method, _subitems, _previous in reversed(chain):
        node = Node(-1, item, node, kind, depth)
        node.method = method.__name__
        node.status = REFINED
    return node  # type: ignore[return-value]


def _cell_node(item: Any, kind: str | None, parent: tuple[Any, ...]) -> Node:
    """A node for an agenda cell of the fast search (a top-level item's own node when it is one)."""
    if parent[0] is _TOP:
        node: Node = parent[1]
        if node.kind is None:
            node.kind = kind  # what the search found it to be (as the observed search records)
        return node
    node = Node(-1, item, _record_node(parent), kind, parent[3] + 1)
    if kind is VERIFY_GOAL or kind is VERIFY_MULTIGOAL:
        node.method = parent[4].__name__
    return node


def _build_nodes(
    tree: SolutionTree, tops: list[Node], log: Any, planned: int, verify_goals: bool, domain: Domain
) -> None:
    """Give ``tops`` (the top-level nodes of one search) the subtrees the search recorded.

    ``log`` holds the search's refinements and achieved goals, newest first; ``planned`` is how
    many actions it applied. Replaying them against a depth-first agenda of nodes meets the nodes in
    the order the search expanded them: an action node is the next planned action, a verification
    node was verified (it came before whatever the search did next), and any other node is the next
    log entry's. The replay stops at the first node the search did not get past (on a failure or a
    limit, where the search stopped).
    """
    entries = []
    while log is not None:
        entries.append(log)
        log = log[-1]
    actions = domain._action_dict
    new_id = tree.new_id
    agenda = list(reversed(tops))
    while agenda:
        node = agenda[-1]
        kind = node.kind
        if kind is VERIFY_GOAL or kind is VERIFY_MULTIGOAL:
            agenda.pop().status = VERIFIED
            continue
        if _names_action(node.item, actions):
            if not planned:
                break
            planned -= 1
            node.kind = ACTION
            node.status = PLANNED
            agenda.pop()
            continue
        if not entries:
            break
        entry = entries.pop()
        agenda.pop()
        if entry[0] is _ACHIEVED:
            node.kind = UNIGOAL
            node.status = ACHIEVED
            continue
        kind, item, _parent, depth, method, subitems, _previous = entry
        node.kind = kind
        node.method = method.__name__
        node.status = REFINED
        children = [Node(new_id(), sub, node, None, depth + 1) for sub in subitems]
        if verify_goals and kind is not TASK:
            check_kind = VERIFY_MULTIGOAL if kind is MULTIGOAL else VERIFY_GOAL
            check = Node(new_id(), item, node, check_kind, depth + 1)
            check.method = node.method
            children.append(check)
        node.children = children
        agenda.extend(reversed(children))


def _names_action(item: Any, actions: dict[str, Any]) -> bool:
    try:
        return isinstance(item, tuple | list) and bool(item) and item[0] in actions
    except TypeError:  # an unhashable name: not an action (the search said so)
        return False


def _goal_holds(state: State, variable: str, arg: Any, value: Any, parent: tuple[Any, ...]) -> bool:
    bindings = getattr(state, variable, None)  # not state.__dict__ (see state._StateSlots)
    if type(bindings) is dict:
        return bindings.get(arg) == value  # type: ignore[no-any-return]
    from aria.apps.engine.state import unigoal_holds

    try:
        return unigoal_holds(state, variable, arg, value)
    except DomainError as error:
        raise DomainError(f"{error}{_origin(_cell_node((variable, arg, value), UNIGOAL, parent))}") from None


def _action_error(item: Any, parent: tuple[Any, ...], error: BaseException) -> DomainError:
    node = _cell_node(item, ACTION, parent)
    return DomainError(
        f"action {label(node)} raised {_error_text(error)} (while planning {' > '.join(node.path())})"
    )


def _action_result_error(item: Any, parent: tuple[Any, ...], result: Any) -> DomainError:
    node = _cell_node(item, ACTION, parent)
    return DomainError(
        f"action {label(node)} returned {_describe(result)}; an action must return "
        "the state it was given (modified) when it applies, or False/None when not"
    )


def _lookup(state: State, variable: str, arg: Any) -> Any:
    bindings = state.__dict__.get(variable)
    return bindings.get(arg) if hasattr(bindings, "get") else None


__all__ = [
    "CANCELLED",
    "EXPANSION_LIMIT",
    "FAILURE",
    "OPEN",
    "SUCCESS",
    "TIME_LIMIT",
    "FailureExplanation",
    "PlanOutcome",
    "Planner",
    "Stats",
]
