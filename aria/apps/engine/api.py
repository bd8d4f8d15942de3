"""The Python API of aria_engine: registered domains, planning off the trio loop, JSON requests.

Other apps and scripts reach it as ``aria.whereis("aria_engine")`` (an :class:`EngineApi`).

Why a worker thread and not a process: domains are live Python objects (closures, methods registered
at run time) and states are arbitrary Python values; a process would need all of them picklable and
importable by name, and would copy the state both ways on every call. A thread shares them as they
are. Planning holds the GIL, but CPython hands it back to the trio loop every few milliseconds
(``sys.getswitchinterval()``), so the loop stays responsive while a plan is computed; a capacity
limiter (``max_concurrent_plans``) bounds how many plans run at once. Cancelling the calling task
sets the search's cancel flag, and the thread stops at its next check (within 32 expansions), so no
thread outlives the call.

Long planning on the ``planning`` queue, with results in aria_data, waits for those apps (see the
README): :class:`PlanRequest` is the JSON job a queue worker will hand to :meth:`EngineApi.run_request`,
and :meth:`EngineApi.run_request` returns the JSON result (plan, tree, stats) it will store.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from aria.apps.engine.characters import CharacterGoalPlanner
from aria.apps.engine.domain import Domain
from aria.apps.engine.errors import DomainError, SerializationError, UnknownDomain
from aria.apps.engine.planner import Planner, PlanOutcome
from aria.apps.engine.serialize import state_from_json, todo_from_json
from aria.apps.engine.state import State
from aria.apps.engine.tree import SolutionTree

_STRATEGIES = ("dfs", "greedy")


@dataclass(frozen=True)
class PlanRequest:
    """One planning request in JSON-ready form (what the planning queue will carry).

    Attributes:
        domain: A registered domain's name.
        state: The initial state, as :func:`aria.apps.engine.serialize.state_to_json` makes it.
        todo: The todo list, as :func:`aria.apps.engine.serialize.todo_to_json` makes it.
        strategy: ``dfs`` (backtracking, default) or ``greedy`` (first applicable method only).
        max_expansions: Node-expansion limit (None: the configured default).
        time_limit: Seconds (None: the configured default).
    """

    domain: str
    state: dict[str, Any]
    todo: list[Any]
    strategy: str = "dfs"
    max_expansions: int | None = None
    time_limit: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> PlanRequest:
        """Validate a JSON request.

        Raises:
            SerializationError: naming the missing or malformed field.
        """
        if not isinstance(data, dict):
            raise SerializationError(f"a plan request must be a JSON object, not {type(data).__name__}")
        unknown = set(data) - {
            "domain",
            "state",
            "todo",
            "strategy",
            "max_expansions",
            "time_limit",
            "options",
        }
        if unknown:
            raise SerializationError(f"plan request: unknown fields {sorted(unknown)}")
        for name in ("domain", "state", "todo"):
            if name not in data:
                raise SerializationError(f"plan request: the field {name!r} is missing")
        if not isinstance(data["domain"], str):
            raise SerializationError("plan request: 'domain' must be a string")
        strategy = data.get("strategy", "dfs")
        if strategy not in _STRATEGIES:
            raise SerializationError(
                f"plan request: strategy {strategy!r} is not one of {', '.join(_STRATEGIES)}"
            )
        options = data.get("options", {})
        if not isinstance(options, dict) or set(options) - {"verify_goals", "drop_idempotent_actions"}:
            raise SerializationError(
                "plan request: 'options' may only hold verify_goals and drop_idempotent_actions"
            )
        return cls(
            domain=data["domain"],
            state=data["state"],
            todo=data["todo"],
            strategy=strategy,
            max_expansions=data.get("max_expansions"),
            time_limit=data.get("time_limit"),
            options=dict(options),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "state": self.state,
            "todo": self.todo,
            "strategy": self.strategy,
            "max_expansions": self.max_expansions,
            "time_limit": self.time_limit,
            "options": self.options,
        }


class EngineApi:
    """The live API of aria_engine.

    Args:
        max_concurrent_plans: How many plans may run in worker threads at once.
        default_max_expansions: The node-expansion limit of a call that gives none (0: unbounded).
        default_time_limit: The time limit in seconds of a call that gives none (0: unbounded).
    """

    implemented = True

    def __init__(
        self,
        *,
        max_concurrent_plans: int = 2,
        default_max_expansions: int = 1_000_000,
        default_time_limit: float = 30.0,
    ) -> None:
        self._domains: dict[str, Domain] = {}
        self._limiter = trio.CapacityLimiter(max_concurrent_plans)
        self._default_max_expansions = default_max_expansions or None
        self._default_time_limit = default_time_limit or None
        self._plans_made = 0
        self._plans_failed = 0
        self._running = 0

    # ----------------------------------------------------------------------------------------------
    # Domains

    def register_domain(self, domain: Domain, name: str | None = None) -> str:
        """Register ``domain`` under ``name`` (default: its own name); returns the name.

        Raises:
            TypeError: if ``domain`` is not a Domain.
            ValueError: if another domain is registered under that name.
        """
        if not isinstance(domain, Domain):
            raise TypeError(f"register_domain needs an aria_engine Domain, not {type(domain).__name__}")
        key = name or domain.__name__
        if not key:
            raise ValueError("a domain registered with the engine needs a non-empty name")
        existing = self._domains.get(key)
        if existing is not None and existing is not domain:
            raise ValueError(f"a different domain is already registered as {key!r}")
        self._domains[key] = domain
        return key

    def register_module(self, module_name: str) -> list[str]:
        """Import a Python module and register every Domain it defines at module level.

        GTPyhop domain modules work unchanged: while the module is imported, ``import gtpyhop`` gives
        :mod:`aria.apps.engine.gtpyhop`.

        Raises:
            DomainError: if the module cannot be imported, or defines no Domain.
        """
        from aria.apps.engine import gtpyhop

        try:
            with gtpyhop.installed_as_gtpyhop():
                module = importlib.import_module(module_name)
        except ImportError as error:
            raise DomainError(f"domain module {module_name!r} cannot be imported: {error}") from error
        found = [value for value in vars(module).values() if isinstance(value, Domain)]
        if not found:
            raise DomainError(
                f"domain module {module_name!r} defines no Domain at module level "
                "(create one with aria.engine.gtpyhop.Domain(name) or aria.apps.engine.domain.Domain(name))"
            )
        return [self.register_domain(domain) for domain in dict.fromkeys(found)]

    def unregister_domain(self, name: str) -> None:
        """Forget a domain.

        Raises:
            UnknownDomain: if none is registered under ``name``.
        """
        self.domain(name)
        del self._domains[name]

    def domain(self, name: str) -> Domain:
        """The domain registered under ``name``.

        Raises:
            UnknownDomain: if there is none.
        """
        try:
            return self._domains[name]
        except KeyError:
            raise UnknownDomain(name, list(self._domains)) from None

    def domains(self) -> list[str]:
        return sorted(self._domains)

    # ----------------------------------------------------------------------------------------------
    # Planning

    def planner(
        self,
        domain: str | Domain,
        *,
        strategy: str = "dfs",
        max_expansions: int | None = None,
        time_limit: float | None = None,
        **options: Any,
    ) -> Planner:
        """A planner for a registered domain (or a Domain object) with the configured default limits."""
        if strategy not in _STRATEGIES:
            raise ValueError(f"strategy {strategy!r} is not one of {', '.join(_STRATEGIES)}")
        the_domain = domain if isinstance(domain, Domain) else self.domain(domain)
        return Planner(
            the_domain,
            backtracking=strategy == "dfs",
            max_expansions=self._default_max_expansions if max_expansions is None else max_expansions,
            time_limit=self._default_time_limit if time_limit is None else time_limit,
            **options,
        )

    async def plan(
        self,
        domain: str | Domain,
        state: State,
        todo: Sequence[Any],
        *,
        strategy: str = "dfs",
        max_expansions: int | None = None,
        time_limit: float | None = None,
        **options: Any,
    ) -> PlanOutcome:
        """Plan in a worker thread; the trio loop keeps running meanwhile.

        Returns:
            The outcome (status, plan, tree, stats, explanation); limits give a non-success status.

        Raises:
            UnknownDomain: for an unregistered domain name.
            DomainError: if the domain misbehaves while planning.
        """
        planner = self.planner(
            domain, strategy=strategy, max_expansions=max_expansions, time_limit=time_limit, **options
        )
        items = list(todo)
        return await self._in_thread(lambda cancel: planner.plan(state, items, cancel=cancel))

    async def replan(
        self, planner: Planner, state: State, failed_node: Any, *, tree: SolutionTree | None = None
    ) -> PlanOutcome:
        """:meth:`Planner.replan` in a worker thread (see there)."""
        return await self._in_thread(
            lambda cancel: planner.replan(state, failed_node, tree=tree, cancel=cancel)
        )

    async def run_request(self, request: PlanRequest | dict[str, Any]) -> dict[str, Any]:
        """Plan a JSON request and return the JSON result: status, plan, tree, stats, explanation.

        This is the unit of work of the planning queue (see the module doc).

        Raises:
            SerializationError: for a malformed request.
            UnknownDomain: for an unregistered domain.
        """
        if not isinstance(request, PlanRequest):
            request = PlanRequest.from_json(request)
        state = state_from_json(request.state)
        todo = todo_from_json(request.todo)
        outcome = await self.plan(
            request.domain,
            state,
            todo,
            strategy=request.strategy,
            max_expansions=request.max_expansions,
            time_limit=request.time_limit,
            **request.options,
        )
        return {"domain": request.domain, **outcome.to_json()}

    async def _in_thread(self, work: Callable[[threading.Event], PlanOutcome]) -> PlanOutcome:
        cancel = threading.Event()

        async def cancel_when_cancelled() -> None:
            try:
                await trio.sleep_forever()
            finally:
                cancel.set()  # the search sees it within _CLOCK_EVERY expansions and returns

        self._running += 1
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(cancel_when_cancelled)
                outcome = await trio.to_thread.run_sync(work, cancel, limiter=self._limiter)
                nursery.cancel_scope.cancel()
        except BaseException:
            self._plans_failed += 1
            raise
        finally:
            self._running -= 1
        if outcome.success:
            self._plans_made += 1
        else:
            self._plans_failed += 1
        return outcome

    # ----------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "app": "aria_engine",
            "state": "running",
            "implemented": True,
            "domains": self.domains(),
            "plans_made": self._plans_made,
            "plans_failed": self._plans_failed,
            "planning_now": self._running,
        }

    async def health(self) -> dict[str, Any]:
        return {"ok": True, "app": "aria_engine", "domains": len(self._domains)}


def character_goal_planner(max_expansions: int = 10_000) -> CharacterGoalPlanner:
    """A planner for generated RPG characters' goals in the engine's demo world.

    It answers ``plannable(character, goal) -> bool`` and ``plan(character, goal)`` (the actions, or
    None) for a character sheet of aria_shape's schema and one of its goals ``{predicate, object}``;
    ``explain`` says why a goal cannot be planned. It plans synchronously in the calling thread (a goal
    takes well under a millisecond), needs no running node, and is what aria_shape's ``plannable``
    reward uses. The world's rules are in :mod:`aria.apps.engine.characters` and the README.
    """
    return CharacterGoalPlanner(max_expansions=max_expansions)


Api = EngineApi

__all__ = ["Api", "CharacterGoalPlanner", "EngineApi", "PlanRequest", "character_goal_planner"]
