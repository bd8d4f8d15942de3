"""A drop-in replacement for the ``gtpyhop`` module (GTPyhop 2.x's public API) on aria_engine's planner.

Bring a GTPyhop domain unchanged: ``import aria.engine.gtpyhop as gtpyhop``, or bind this module as
``sys.modules["gtpyhop"]`` before the domain's ``import gtpyhop`` (:func:`installed_as_gtpyhop` does
that for a block). Planning runs on :class:`aria.apps.engine.planner.Planner`: an explicit stack (no
recursion limit), lazy methods, copy-on-write states, enforced limits.

Module attributes scripts may assign, and which take effect (in GTPyhop 2.x assigning them on the
package does nothing, because the planner reads copies in ``gtpyhop.main``):

* ``verbose`` (0-3), as set by :func:`set_verbose_level`;
* ``current_domain``, as set by :func:`set_current_domain` and by creating a :class:`Domain`.

Strategies (:func:`set_recursive_planning`): ``True``/``"recursive_dfs"`` and
``"iterative_dfs_backtracking"`` both search depth-first with full backtracking on the explicit
stack; ``False``/``"iterative_greedy"`` (the default, as in GTPyhop) commits to the first method that
applies. :func:`get_recursive_planning` reports True for ``recursive_dfs`` only, as GTPyhop does.

Where GTPyhop 2.x is inconsistent, this module does the documented, correct thing by default and has
a switch for GTPyhop's behaviour:

* GTPyhop 2.x leaves out of the plan an action whose result equals its input state, so
  ``backtracking_htn`` (which expects ``[('putv', 0), ('getv', 0), ('getv', 0)]``) fails under
  recursive planning. Here every applied action is in the plan;
  ``set_drop_idempotent_actions(True)`` (or ``PlannerSession(drop_idempotent_actions=True)``)
  drops them like GTPyhop 2.x.
* GTPyhop 2.x's ``iterative_dfs_backtracking`` calls every method of an item as soon as the item is
  refined, and the recursive strategy calls them one at a time. Here methods are always called
  lazily, one at a time, when the search reaches them; ``set_lazy_methods(False)`` (or
  ``PlannerSession(lazy_methods=False)``) calls them eagerly, as GTPyhop's iterative DFS does.

Not provided: GTPyhop's session persistence (``SessionSerializer``, ``restore_session``...), its
``ResourceManager`` and memory tracking, and its structured-logging classes.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aria.apps.engine import domain as _domain_module
from aria.apps.engine import planner as _planner_module
from aria.apps.engine.errors import DomainError
from aria.apps.engine.state import Multigoal, State, unachieved_goals, unigoal_holds

__version__ = "2.0.2"  # the GTPyhop API level this module provides
__author__ = "aria_engine (API after GTPyhop by Dana Nau and Eric Jacopin)"

#: How much to print: 0 nothing, 1 the call and its answer, 2 each step, 3 each method and action.
verbose = 1
#: The domain that find_plan, run_lazy_lookahead and the declare_* functions use.
current_domain: Domain | None = None

_domains: list[Domain] = []
_strategy: str | None = None
_verify_goals = True
_drop_idempotent_actions = False
_lazy_methods = True

_STRATEGIES = {
    "recursive_dfs": "recursive_dfs",
    "iterative_greedy": "iterative_greedy",
    "iterative_irrevocable_commitment": "iterative_greedy",
    "iterative_dfs_backtracking": "iterative_dfs_backtracking",
}


################################################################################
# Domains


def _m_verify_g(
    state: State, method: str, state_var: str, arg: Any, desired_val: Any, depth: int
) -> list[Any]:
    """Listed under ``_verify_g`` as in GTPyhop; the planner performs goal verification itself."""
    if not unigoal_holds(state, state_var, arg, desired_val):
        raise DomainError(
            f"depth {depth}: method {method} didn't achieve goal {state_var}[{arg}] = {desired_val}"
        )
    return []


def _m_verify_mg(state: State, method: str, multigoal: Multigoal, depth: int) -> list[Any]:
    """Listed under ``_verify_mg`` as in GTPyhop; the planner performs goal verification itself."""
    if unachieved_goals(state, multigoal):
        raise DomainError(f"depth {depth}: method {method} didn't achieve {multigoal}")
    return []


class Domain(_domain_module.Domain):
    """``Domain(name)`` creates a domain, makes it the current one and remembers it by name."""

    def __init__(self, domain_name: str) -> None:
        global current_domain
        super().__init__(domain_name)
        self._task_method_dict["_verify_g"] = [_m_verify_g]
        self._task_method_dict["_verify_mg"] = [_m_verify_mg]
        _domains.append(self)
        current_domain = self

    def copy(self, new_name: str | None = None) -> Domain:
        other = super().copy(new_name)
        return other  # type: ignore[return-value]


def print_domain_names() -> None:
    if _domains:
        print("-- Domain names:", ", ".join(d.__name__ for d in _domains))
    else:
        print("-- There are no domains --")


def find_domain_by_name(domain_name: str) -> Domain | None:
    """The domain created with that name (the first one), or None."""
    for domain in _domains:
        if domain.__name__ == domain_name:
            return domain
    return None


def is_domain_created(domain_name: str) -> bool:
    return find_domain_by_name(domain_name) is not None


def set_current_domain(domain: _domain_module.Domain) -> None:
    """Make ``domain`` the one that planning and declarations use."""
    global current_domain
    if not isinstance(domain, _domain_module.Domain):
        raise TypeError("The provided argument is not a Domain instance.")
    current_domain = domain  # type: ignore[assignment]


def get_current_domain() -> Domain | None:
    return current_domain


def _domain(what: str) -> _domain_module.Domain:
    if current_domain is None:
        raise DomainError(f"cannot {what} until a domain has been created (gtpyhop.Domain(name))")
    return current_domain


def print_domain(domain: _domain_module.Domain | None = None) -> None:
    """Print a domain's actions, commands and methods (default: the current domain)."""
    _domain_module.print_domain(domain or _domain("print a domain"))


def print_actions(domain: _domain_module.Domain | None = None) -> None:
    domain = domain or _domain("print actions")
    if domain._action_dict:
        print("-- Actions:", ", ".join(domain._action_dict))
    else:
        print("-- There are no actions --")


def print_operators() -> None:
    print_actions()


def print_commands(domain: _domain_module.Domain | None = None) -> None:
    domain = domain or _domain("print commands")
    if domain._command_dict:
        print("-- Commands:", ", ".join(domain._command_dict))
    else:
        print("-- There are no commands --")


def print_methods(domain: _domain_module.Domain | None = None) -> None:
    _domain_module.print_methods(domain or _domain("print methods"))


def print_state(state: Any, heading: str | None = None) -> None:
    state.display(heading)


print_multigoal = print_state


def get_type(obj: Any) -> str:
    return type(obj).__name__


def declare_actions(*actions: Any) -> dict[str, Any]:
    """Declare actions in the current domain."""
    return _domain("declare actions").declare_actions(*actions)


def declare_operators(*actions: Any) -> dict[str, Any]:
    """Pyhop's name for :func:`declare_actions`."""
    return declare_actions(*actions)


def declare_commands(*commands: Any) -> dict[str, Any]:
    """Declare commands (``c_<action>``) in the current domain."""
    return _domain("declare commands").declare_commands(*commands)


def declare_task_methods(task_name: str, *methods: Any) -> dict[str, list[Any]]:
    """Declare methods for a task in the current domain."""
    return _domain("declare methods").declare_task_methods(task_name, *methods)


def declare_methods(task: str, *methods: Any) -> dict[str, list[Any]]:
    """Pyhop's name for :func:`declare_task_methods`."""
    return declare_task_methods(task, *methods)


def declare_unigoal_methods(state_var_name: str, *methods: Any) -> dict[str, list[Any]]:
    """Declare methods for goals on a state variable in the current domain."""
    return _domain("declare methods").declare_unigoal_methods(state_var_name, *methods)


def declare_multigoal_methods(*methods: Any) -> list[Any]:
    """Declare multigoal methods in the current domain."""
    return _domain("declare methods").declare_multigoal_methods(*methods)


def m_split_multigoal(state: State, multigoal: Multigoal) -> list[Any]:
    """GTPyhop's multigoal method: achieve each unachieved goal in turn, then the multigoal again."""
    goals = [
        (name, arg, value)
        for name, bindings in unachieved_goals(state, multigoal).items()
        for arg, value in bindings.items()
    ]
    return [*goals, multigoal] if goals else []


################################################################################
# Configuration


def set_verbose_level(level: int) -> None:
    """Set :data:`verbose` (0-3)."""
    global verbose
    if not isinstance(level, int) or not 0 <= level <= 3:
        raise ValueError("Verbose level must be between 0 and 3.")
    verbose = level
    print(f"Verbose level set to {verbose}.")


def get_verbose_level() -> int:
    return verbose


def set_verify_goals(value: bool) -> bool:
    """Turn goal verification on or off; returns the previous setting."""
    global _verify_goals
    previous = _verify_goals
    _verify_goals = bool(value)
    return previous


def get_verify_goals() -> bool:
    return _verify_goals


def set_drop_idempotent_actions(value: bool) -> bool:
    """Leave out actions that change nothing, as GTPyhop 2.x does (default False); returns the old setting."""
    global _drop_idempotent_actions
    previous = _drop_idempotent_actions
    _drop_idempotent_actions = bool(value)
    return previous


def get_drop_idempotent_actions() -> bool:
    return _drop_idempotent_actions


def set_lazy_methods(value: bool) -> bool:
    """Call methods one at a time (True, default) or all at once per item as GTPyhop's iterative DFS does."""
    global _lazy_methods
    previous = _lazy_methods
    _lazy_methods = bool(value)
    return previous


def get_lazy_methods() -> bool:
    return _lazy_methods


def set_recursive_planning(strategy: bool | str, verbose_output: bool = False) -> None:
    """Choose: True/"recursive_dfs", False/"iterative_greedy", or "iterative_dfs_backtracking"."""
    global _strategy
    if isinstance(strategy, bool):
        _strategy = "recursive_dfs" if strategy else "iterative_greedy"
    elif isinstance(strategy, str):
        if strategy not in _STRATEGIES:
            raise ValueError(
                f"Unknown strategy '{strategy}'. Valid strategies: 'recursive_dfs', 'iterative_greedy', "
                "'iterative_irrevocable_commitment', 'iterative_dfs_backtracking'"
            )
        _strategy = _STRATEGIES[strategy]
    else:
        raise TypeError(f"strategy must be bool or str, got {type(strategy).__name__}")
    if verbose_output:
        print(f"Using {_strategy} seek_plan.")


def get_recursive_planning() -> bool:
    """True if the strategy is recursive DFS (False for both iterative ones), as in GTPyhop."""
    if _strategy is None:
        raise DomainError(
            "No planning strategy has been set. "
            "Use set_recursive_planning(True|False|<strategy_name>) to set it."
        )
    return _strategy == "recursive_dfs"


def reset_planning_strategy() -> None:
    global _strategy
    _strategy = None


################################################################################
# Planning


def _verbose_observer(level: int) -> Any:
    def observe(event: str, node: Any, detail: Any) -> None:
        if event == "expand":
            if level >= 2:
                print(f"depth {node.depth} {node.kind} {_planner_module.label(node)}")
        elif level >= 3:
            if event.startswith("method_"):
                print(
                    f"depth {node.depth} trying {detail.__name__}: "
                    f"{event.removeprefix('method_').replace('_', ' ')}"
                )
            else:
                print(f"depth {node.depth} {_planner_module.label(node)}: {event.replace('_', ' ')}")

    return observe


def _planner(
    domain: _domain_module.Domain,
    strategy: str,
    *,
    level: int,
    verify_goals: bool | None = None,
    drop_idempotent_actions: bool | None = None,
    lazy_methods: bool | None = None,
    max_expansions: int | None = None,
    time_limit: float | None = None,
    trace: PlanTrace | None = None,
) -> _planner_module.Planner:
    observers = []
    if level >= 2:
        observers.append(_verbose_observer(level))
    if trace is not None:
        observers.append(trace._observe)
    observer = None
    if len(observers) == 1:
        observer = observers[0]
    elif observers:

        def observer(event: str, node: Any, detail: Any) -> None:
            for each in observers:
                each(event, node, detail)

    return _planner_module.Planner(
        domain,
        backtracking=strategy != "iterative_greedy",
        lazy_methods=_lazy_methods if lazy_methods is None else lazy_methods,
        drop_idempotent_actions=_drop_idempotent_actions
        if drop_idempotent_actions is None
        else drop_idempotent_actions,
        verify_goals=_verify_goals if verify_goals is None else verify_goals,
        max_expansions=max_expansions,
        time_limit=time_limit,
        observer=observer,
    )


def _item_to_string(item: Any) -> str:
    if isinstance(item, list):
        return str([str(x) for x in item])
    if isinstance(item, tuple):
        return str(tuple(str(x) for x in item))
    return str(item)


def find_plan(state: State, todo_list: list[Any]) -> list[Any] | bool:
    """A plan (list of actions) for ``todo_list`` from ``state`` in the current domain, or False.

    Raises:
        DomainError: if no strategy or domain is set, or the domain misbehaves (naming the item).
    """
    if _strategy is None:
        raise DomainError(
            "No planning strategy has been set. "
            "Use set_recursive_planning(True|False|<strategy_name>) to set it."
        )
    domain = _domain("plan")
    level = verbose
    if level >= 1:
        todo_string = "[" + ", ".join(_item_to_string(x) for x in todo_list) + "]"
        print(f"FP> find_plan, verbose={level}:")
        print(f"    state = {state.__name__}\n    todo_list = {todo_string}")
    outcome = _planner(domain, _strategy, level=level).plan(state, list(todo_list))
    result: list[Any] | bool = outcome.plan if outcome.success else False
    if level >= 1:
        print(f"FP> result = {result}\n")
    return result


def pyhop(state: State, todo_list: list[Any]) -> list[Any] | bool:
    """Pyhop's name for :func:`find_plan`."""
    return find_plan(state, todo_list)


def run_lazy_lookahead(state: State, todo_list: list[Any], max_tries: int = 10) -> State:
    """Plan, then act by running each action's command (``c_<name>``, else the action); replan on failure.

    Returns the state reached when a plan comes back empty (success), or after ``max_tries`` rounds.

    Raises:
        DomainError: if planning fails (``run_lazy_lookahead: find_plan has failed``).
    """
    domain = _domain("act")
    if verbose >= 1:
        print(f"RLL> run_lazy_lookahead, verbose = {verbose}, max_tries = {max_tries}")
        print(f"RLL> initial state: {state.__name__}")
        print("RLL> To do:", todo_list)
    for tries in range(1, max_tries + 1):
        if verbose >= 1:
            suffix = {1: "st", 2: "nd", 3: "rd"}.get(tries, "th")
            print(f"RLL> {tries}{suffix} call to find_plan:\n")
        plan = find_plan(state, todo_list)
        if plan is False:
            if verbose >= 1:
                print("RLL> find_plan has failed")
            raise DomainError("run_lazy_lookahead: find_plan has failed")
        if plan == []:
            if verbose >= 1:
                print(f"RLL> Empty plan => success after {tries} calls to find_plan.")
            if verbose >= 2:
                state.display(heading="> final state")
            return state
        for action in plan:  # type: ignore[union-attr]
            command_name = "c_" + action[0]
            command = domain._command_dict.get(command_name)
            if command is None:
                if verbose >= 1:
                    print(f"RLL> {command_name} not defined, using {action[0]} instead\n")
                command = domain._action_dict.get(action[0])
            if verbose >= 1:
                print("RLL> Command:", [command_name, *action[1:]])
            new_state = command(state.copy(), *action[1:]) if command is not None else None
            if not isinstance(new_state, State):
                if verbose >= 1:
                    print(f"RLL> WARNING: command {command_name} failed; will call find_plan.")
                break
            if verbose >= 2:
                new_state.display()
            state = new_state
        if verbose >= 1:
            print("RLL> Plan ended; will call find_plan again.")
    if verbose >= 1:
        print("RLL> Too many tries, giving up.")
    return state


def validate_plan_from_goal(
    initial_state: State, plan: list[Any], key_string: str = "", goal_dict: Any = None
) -> bool:
    """Whether ``plan`` executes from ``initial_state`` and (if given) reaches ``goal_dict[key_string]``."""
    domain = _domain("validate a plan")
    state = initial_state.copy()
    if verbose >= 1:
        print(f"Validating plan: {plan}")
    counter = 0
    for action in plan:
        function = domain._action_dict.get(action[0])
        if function is None:
            if verbose >= 1:
                print(f"Action {action} not found in domain. Plan is invalid.")
            return False
        state = function(state.copy(), *action[1:])
        counter += 1
        if not isinstance(state, State):
            if verbose >= 1:
                print(f"Action {action} (#{counter}) failed. Plan is invalid.")
            return False
    if not key_string or not goal_dict:
        if verbose >= 1:
            print(f">>> {counter}-action Plan is valid.")
        return True
    bindings = getattr(state, key_string, {}) if key_string in state.state_vars() else {}
    for arg, value in goal_dict.get(key_string, {}).items():
        if bindings.get(arg) != value:
            if verbose >= 1:
                print(f"Goal {key_string}[{arg}] = {value} not achieved. Plan is invalid.")
            return False
    if verbose >= 1:
        print(f">>> {counter}-action Plan is valid and achieves the goal.")
    return True


################################################################################
# Sessions


class PlanningTimeoutError(Exception):
    """GTPyhop's timeout error (sessions report limits in ``PlanResult.error`` instead of raising)."""


@dataclass
class TraceEvent:
    """One step of a traced search: depth, item, GTPyhop status name, detail, optional state snapshot."""

    depth: int
    item: Any
    status: str
    detail: str | None = None
    state: State | None = None


_TERMINAL = frozenset(
    {"not_applicable", "malformed_return", "task_exhausted", "goal_exhausted", "multigoal_exhausted"}
)


class PlanTrace:
    """The steps of one traced ``PlannerSession.find_plan(..., trace=True)`` call, in search order."""

    def __init__(self, with_states: bool = False) -> None:
        self.events: list[TraceEvent] = []
        self._with_states = with_states

    def _observe(self, event: str, node: Any, detail: Any) -> None:
        if event == "expand":
            return
        if event.startswith("method_"):
            text = detail.__name__ if callable(detail) else None
        else:
            text = detail if isinstance(detail, str) else None
        snapshot = detail.copy(detail.__name__) if self._with_states and isinstance(detail, State) else None
        self.events.append(TraceEvent(node.depth, node.item, event, text, snapshot))

    @property
    def dead_end(self) -> TraceEvent | None:
        """The first terminal event (an action that failed, or an item whose methods ran out)."""
        return next((e for e in self.events if e.status in _TERMINAL), None)

    @property
    def applied_before_dead_end(self) -> int:
        count = 0
        for event in self.events:
            if event.status in _TERMINAL:
                break
            if event.status in ("applied", "idempotent"):
                count += 1
        return count

    @property
    def malformed_returns(self) -> list[TraceEvent]:
        return [e for e in self.events if "malformed" in e.status]

    def __len__(self) -> int:
        return len(self.events)

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"PlanTrace({len(self.events)} events, dead_end={self.dead_end!r})"


@dataclass
class PlanResult:
    """What ``PlannerSession.find_plan`` returns. ``bool(result)`` is ``result.success``.

    Beyond GTPyhop's fields: ``status`` (the planner's outcome status), ``tree`` (the solution tree)
    and ``explanation`` (why planning failed, or None).
    """

    success: bool
    plan: list[Any] | None = None
    error: str | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    session_id: str | None = None
    trace: PlanTrace | None = None
    status: str = ""
    tree: Any = None
    explanation: Any = None

    def __post_init__(self) -> None:
        if self.plan is None:
            self.plan = []
        if not self.stats:
            self.stats = {"duration_ms": 0, "expansions": 0}

    def __bool__(self) -> bool:
        return self.success


@dataclass
class ExecutionResult:
    """What ``PlannerSession.run_lazy_lookahead`` returns. ``bool(result)`` is ``result.success``."""

    success: bool
    final_state: State | None = None
    executed_actions: list[Any] = field(default_factory=list)
    error: str | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    session_id: str | None = None
    tries_used: int = 0

    def __bool__(self) -> bool:
        return self.success


class PlannerSession:
    """An isolated planning context: its own domain, verbosity, strategy and switches.

    Args:
        session_id: A name for the session (default: a random one).
        domain: The domain it plans with (default: the current domain at planning time).
        verbose: Verbosity while it plans (0-3).
        recursive: Legacy: True means strategy ``recursive_dfs``.
        strategy: ``recursive_dfs``, ``iterative_greedy`` (default), ``iterative_irrevocable_commitment``
            or ``iterative_dfs_backtracking``.
        verify_goals, drop_idempotent_actions, lazy_methods: Override the module settings (None: use them).
        structured_logging, auto_cleanup, memory_tracking, memory_sampling_interval: Accepted for
            compatibility; this implementation keeps no logs and does not track memory.
    """

    def __init__(
        self,
        session_id: str | None = None,
        *,
        domain: _domain_module.Domain | None = None,
        verbose: int = 0,
        recursive: bool = False,
        strategy: str | None = None,
        structured_logging: bool = True,
        auto_cleanup: bool = True,
        memory_tracking: bool = False,
        memory_sampling_interval: float | None = None,
        verify_goals: bool | None = None,
        drop_idempotent_actions: bool | None = None,
        lazy_methods: bool | None = None,
    ) -> None:
        if strategy is not None and strategy not in _STRATEGIES:
            raise ValueError(f"Unknown strategy '{strategy}'. Valid strategies: {', '.join(_STRATEGIES)}")
        if not isinstance(verbose, int) or not 0 <= verbose <= 3:
            raise ValueError("Verbose level must be between 0 and 3.")
        self.session_id = session_id or f"session_{uuid.uuid4().hex[:8]}"
        self.domain = domain
        self.verbose = verbose
        self.verify_goals = verify_goals
        self.drop_idempotent_actions = drop_idempotent_actions
        self.lazy_methods = lazy_methods
        self.structured_logging = structured_logging
        self.auto_cleanup = auto_cleanup
        self.memory_tracking = memory_tracking
        self._strategy = (
            _STRATEGIES[strategy] if strategy else ("recursive_dfs" if recursive else "iterative_greedy")
        )
        self._lock = threading.RLock()
        self._last_trace: PlanTrace | None = None
        self._stats = {"plans_generated": 0, "total_planning_time_ms": 0, "errors": 0, "timeouts": 0}
        _sessions[self.session_id] = self

    def __enter__(self) -> PlannerSession:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.auto_cleanup:
            self.cleanup()

    @property
    def recursive(self) -> bool:
        return self._strategy == "recursive_dfs"

    @property
    def strategy(self) -> str:
        return self._strategy

    def cleanup(self) -> None:
        _sessions.pop(self.session_id, None)

    def get_stats(self) -> dict[str, Any]:
        return dict(self._stats)

    @contextlib.contextmanager
    def isolated_execution(self, trace: bool = False, trace_state: bool = False) -> Iterator[PlannerSession]:
        """Within the block, the module's domain, verbosity, strategy and verification are this session's."""
        global current_domain, verbose, _strategy, _verify_goals
        saved = (current_domain, verbose, _strategy, _verify_goals)
        try:
            if self.domain is not None:
                current_domain = self.domain  # type: ignore[assignment]
            verbose = self.verbose
            _strategy = self._strategy
            if self.verify_goals is not None:
                _verify_goals = bool(self.verify_goals)
            yield self
        finally:
            current_domain, verbose, _strategy, _verify_goals = saved

    def find_plan(
        self,
        state: State,
        todo_list: list[Any],
        *,
        timeout_ms: int | None = None,
        max_expansions: int | None = None,
        trace: bool = False,
        trace_state: bool = False,
    ) -> PlanResult:
        """Plan in this session. Both limits are enforced: hitting one gives ``success=False``, an error."""
        with self._lock:
            started = time.perf_counter()
            result = PlanResult(success=False, session_id=self.session_id)
            tracer = PlanTrace(with_states=trace_state) if (trace or trace_state) else None
            try:
                domain = self.domain or _domain("plan")
                planner = _planner(
                    domain,
                    self._strategy,
                    level=self.verbose,
                    verify_goals=self.verify_goals,
                    drop_idempotent_actions=self.drop_idempotent_actions,
                    lazy_methods=self.lazy_methods,
                    max_expansions=max_expansions,
                    time_limit=timeout_ms / 1000 if timeout_ms and timeout_ms > 0 else None,
                    trace=tracer,
                )
                with self.isolated_execution():
                    outcome = planner.plan(state, list(todo_list))
                result.status = outcome.status
                result.tree = outcome.tree
                result.explanation = outcome.explanation
                if outcome.success:
                    result.success = True
                    result.plan = outcome.plan
                    self._stats["plans_generated"] += 1
                else:
                    self._stats["errors"] += 1
                    if outcome.status == _planner_module.TIME_LIMIT:
                        self._stats["timeouts"] += 1
                        result.error = f"Planning timeout: no plan within {timeout_ms} ms"
                    elif outcome.status == _planner_module.EXPANSION_LIMIT:
                        result.error = f"Expansion limit: no plan within {max_expansions} expansions"
                    else:
                        result.error = "No plan found" + (
                            f": {outcome.explanation.message}" if outcome.explanation else ""
                        )
                stats = outcome.stats
                result.stats = {
                    "duration_ms": int((time.perf_counter() - started) * 1000),
                    "expansions": stats.expansions,
                    "backtracks": stats.backtracks,
                    "methods_tried": stats.methods_tried,
                    "actions_tried": stats.actions_tried,
                    "max_depth": stats.max_depth,
                    "strategy": self._strategy,
                }
            except Exception as error:
                result.error = f"Planning error: {error}"
                self._stats["errors"] += 1
                result.stats = {"duration_ms": int((time.perf_counter() - started) * 1000), "expansions": 0}
            result.trace = tracer
            self._last_trace = tracer
            self._stats["total_planning_time_ms"] += result.stats["duration_ms"]
            return result

    def run_lazy_lookahead(
        self, state: State, todo_list: list[Any], *, max_tries: int = 10, timeout_ms: int | None = None
    ) -> ExecutionResult:
        """GTPyhop's plan-and-act loop in this session (``timeout_ms`` bounds each planning call)."""
        with self._lock:
            started = time.perf_counter()
            result = ExecutionResult(success=False, session_id=self.session_id, final_state=state.copy())
            current = result.final_state
            domain = self.domain or current_domain
            try:
                for tries in range(1, max_tries + 1):
                    result.tries_used = tries
                    planned = self.find_plan(current, todo_list, timeout_ms=timeout_ms)
                    if not planned.success:
                        raise DomainError(  # noqa: TRY301 - reported in result.error like every other failure
                            f"run_lazy_lookahead: find_plan has failed ({planned.error})"
                        )
                    if planned.plan == []:
                        result.success = True
                        break
                    for action in planned.plan or []:
                        command = domain._command_dict.get("c_" + action[0]) or domain._action_dict.get(
                            action[0]
                        )
                        new_state = command(current.copy(), *action[1:])
                        if not isinstance(new_state, State):
                            break
                        current = new_state
                        result.executed_actions.append(action)
                else:
                    result.success = True  # GTPyhop reports success once the tries are used up
            except Exception as error:
                result.error = f"Execution error: {error}"
                self._stats["errors"] += 1
            result.final_state = current
            result.stats = {"duration_ms": int((time.perf_counter() - started) * 1000)}
            return result


_sessions: dict[str, PlannerSession] = {}


def create_session(session_id: str | None = None, **kwargs: Any) -> PlannerSession:
    return PlannerSession(session_id, **kwargs)


def get_session(session_id: str | None = None) -> PlannerSession:
    if session_id is None:
        return PlannerSession()
    if session_id not in _sessions:
        _sessions[session_id] = PlannerSession(session_id)
    return _sessions[session_id]


def destroy_session(session_id: str) -> bool:
    return _sessions.pop(session_id, None) is not None


def list_sessions() -> list[str]:
    return list(_sessions)


################################################################################
# Using this module where code says `import gtpyhop`


@contextlib.contextmanager
def installed_as_gtpyhop() -> Iterator[Any]:
    """Within the block, ``import gtpyhop`` gives this module (GTPyhop domains import unchanged).

    What was bound before (the real package, or nothing) is restored afterwards; modules imported
    inside keep their reference to this module.
    """
    module = sys.modules[__name__]
    names = ("gtpyhop", "gtpyhop.test_harness")
    saved = {name: sys.modules.get(name) for name in names}
    from aria.apps.engine.gtpyhop import test_harness

    sys.modules["gtpyhop"] = module
    sys.modules["gtpyhop.test_harness"] = test_harness
    try:
        yield module
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


set_recursive_planning(False)  # GTPyhop's default: iterative greedy


__all__ = [
    "Domain",
    "ExecutionResult",
    "Multigoal",
    "PlanResult",
    "PlanTrace",
    "PlannerSession",
    "PlanningTimeoutError",
    "State",
    "TraceEvent",
    "create_session",
    "current_domain",
    "declare_actions",
    "declare_commands",
    "declare_methods",
    "declare_multigoal_methods",
    "declare_operators",
    "declare_task_methods",
    "declare_unigoal_methods",
    "destroy_session",
    "find_domain_by_name",
    "find_plan",
    "get_current_domain",
    "get_drop_idempotent_actions",
    "get_lazy_methods",
    "get_recursive_planning",
    "get_session",
    "get_type",
    "get_verbose_level",
    "get_verify_goals",
    "installed_as_gtpyhop",
    "is_domain_created",
    "list_sessions",
    "m_split_multigoal",
    "print_actions",
    "print_commands",
    "print_domain",
    "print_domain_names",
    "print_methods",
    "print_multigoal",
    "print_operators",
    "print_state",
    "pyhop",
    "reset_planning_strategy",
    "run_lazy_lookahead",
    "set_current_domain",
    "set_drop_idempotent_actions",
    "set_lazy_methods",
    "set_recursive_planning",
    "set_verbose_level",
    "set_verify_goals",
    "validate_plan_from_goal",
    "verbose",
]
