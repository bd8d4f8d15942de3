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

Long planning runs on aria_queue's ``planning`` queue: :meth:`EngineApi.submit` stores a
:class:`PlanRequest` in aria_data (``aria_engine_requests``) and inserts the job that plans it in the
same transaction (the job's id is the request's id); the worker (:mod:`aria.apps.engine.jobs`) plans
it with :meth:`EngineApi.run_request` on whichever node claims it and stores the result (plan, tree,
stats, explanation). :meth:`EngineApi.request_status` and :meth:`EngineApi.wait_for_request` read
it back. A plan in progress is tied to the engine's lifetime: if aria_engine stops or restarts, the
attempt fails with :class:`EngineStopped` and the queue retries it.
"""

from __future__ import annotations

import importlib
import json
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import trio
from prometheus_client import Counter, Histogram

from aria.apps.engine import store
from aria.apps.engine.characters import CharacterGoalPlanner
from aria.apps.engine.domain import Domain
from aria.apps.engine.errors import (
    DomainError,
    EngineStopped,
    LimitTooHigh,
    PlanningQueueUnavailable,
    RequestFinished,
    RequestNotFound,
    SerializationError,
    UnknownDomain,
)
from aria.apps.engine.http import create_blueprint
from aria.apps.engine.jobs import PLAN_WORKER, PLANNING_QUEUE
from aria.apps.engine.planner import Planner, PlanOutcome
from aria.apps.engine.serialize import state_from_json, todo_from_json
from aria.apps.engine.state import State
from aria.apps.engine.tree import SolutionTree
from aria.apps.queue.api import Discard, JobNotFound, QueueUsageError

_STRATEGIES = ("dfs", "greedy")

PLANS = Counter("aria_engine_plans", "Plans computed, by outcome status.", ["status"])
PLAN_SECONDS = Histogram(
    "aria_engine_plan_duration_seconds",
    "Wall-clock time of one search.",
    buckets=(0.0001, 0.001, 0.01, 0.1, 0.5, 1, 5, 30, 120),
)


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
        if not all(isinstance(value, bool) for value in options.values()):
            raise SerializationError("plan request: 'options' values must be true or false")
        if not isinstance(data["state"], dict):
            raise SerializationError("plan request: 'state' must be a JSON object ({name, vars})")
        if not isinstance(data["todo"], list):
            raise SerializationError("plan request: 'todo' must be a JSON array")
        expansions = data.get("max_expansions")
        if expansions is not None and (
            not isinstance(expansions, int) or isinstance(expansions, bool) or expansions < 1
        ):
            raise SerializationError(
                f"plan request: 'max_expansions' must be a positive integer or null, not {expansions!r}"
            )
        seconds = data.get("time_limit")
        if seconds is not None and (
            not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 < seconds < 1e9
        ):
            raise SerializationError(
                f"plan request: 'time_limit' must be a positive number of seconds or null, not {seconds!r}"
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
        sync_max_expansions: The most expansions :meth:`plan_now` allows (and its default).
        sync_time_limit: The most seconds :meth:`plan_now` allows (and its default).
        database: aria_data's API, for queued requests (None: this node takes none).
        queue: aria_queue's API, for queued requests (None: this node takes none).
        node: This node's name (recorded as ``planned_by``).
        job_max_attempts: Attempts a queued request's job gets before it is given up.
    """

    implemented = True

    def __init__(
        self,
        *,
        max_concurrent_plans: int = 2,
        default_max_expansions: int = 1_000_000,
        default_time_limit: float = 30.0,
        sync_max_expansions: int = 100_000,
        sync_time_limit: float = 10.0,
        database: Any = None,
        queue: Any = None,
        node: str = "",
        job_max_attempts: int = 5,
    ) -> None:
        self._domains: dict[str, Domain] = {}
        self._limiter = trio.CapacityLimiter(max_concurrent_plans)
        self._default_max_expansions = default_max_expansions or None
        self._default_time_limit = default_time_limit or None
        self.sync_max_expansions = sync_max_expansions
        self.sync_time_limit = sync_time_limit
        self._db = database
        self._queue = queue
        self.node = node
        self.job_max_attempts = job_max_attempts
        self._plans_made = 0
        self._plans_failed = 0
        self._running = 0
        self._jobs_running = 0
        self._closed = False
        self._lifetime_scopes: set[trio.CancelScope] = set()

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

    async def describe_domains(self) -> list[dict[str, Any]]:
        """Each registered domain's name, actions, tasks with their methods and goal variables."""
        return [{**self._domains[name].describe(), "name": name} for name in self.domains()]

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

    async def plan_now(self, request: PlanRequest | dict[str, Any]) -> dict[str, Any]:
        """Plan a JSON request now, within the synchronous limits (what ``POST /plan`` does).

        A request without limits gets ``sync_max_expansions`` and ``sync_time_limit``.

        Raises:
            SerializationError: for a malformed request.
            LimitTooHigh: if it asks for more than the synchronous limits (submit it instead).
            UnknownDomain: for an unregistered domain.
            DomainError: if the domain misbehaves.
            EngineStopped: if aria_engine stops meanwhile.
        """
        if not isinstance(request, PlanRequest):
            request = PlanRequest.from_json(request)
        expansions = request.max_expansions or self.sync_max_expansions
        seconds = request.time_limit or self.sync_time_limit
        if expansions > self.sync_max_expansions or seconds > self.sync_time_limit:
            raise LimitTooHigh(
                f"synchronous planning allows at most {self.sync_max_expansions} expansions and "
                f"{self.sync_time_limit:g} s; this request asks for {expansions} and {seconds:g} s "
                "(submit it to the planning queue instead)"
            )
        bounded = PlanRequest(
            request.domain,
            request.state,
            request.todo,
            request.strategy,
            expansions,
            seconds,
            dict(request.options),
        )
        self.domain(request.domain)  # an unknown domain fails before any work
        return await self._while_running(lambda: self.run_request(bounded), "planning a request")

    # ----------------------------------------------------------------------------------------------
    # Queued requests (aria_queue's planning queue, results in aria_data)

    def _storage(self) -> tuple[Any, Any]:
        if self._db is None or self._queue is None:
            raise PlanningQueueUnavailable(
                "this node runs aria_engine without aria_data and aria_queue, so it takes no queued "
                "planning requests; plan synchronously (plan, plan_now) or boot those apps"
            )
        return self._db, self._queue

    async def submit(
        self, request: PlanRequest | dict[str, Any], *, priority: int = 0, submitted_by: str | None = None
    ) -> str:
        """Store a planning request and queue its job (one transaction); returns the request's id.

        The job runs on the ``planning`` queue of whichever node claims it; read the outcome with
        :meth:`request_status` or :meth:`wait_for_request`.

        Raises:
            SerializationError: for a malformed request (nothing is stored).
            UnknownDomain: if no domain of that name is registered on this node.
            PlanningQueueUnavailable: if this node has no aria_data and aria_queue.
        """
        db, queue = self._storage()
        if not isinstance(request, PlanRequest):
            request = PlanRequest.from_json(request)
        self.domain(request.domain)
        state_from_json(request.state)  # malformed states and todo lists are refused now, not in the job
        todo_from_json(request.todo)
        body = json.dumps(request.to_json(), allow_nan=False)
        request_id = str(uuid.uuid4())

        async def insert(tx: Any) -> None:
            await tx.execute(store.INSERT, uuid.UUID(request_id), request.domain, body, submitted_by)
            await queue.insert(
                PLAN_WORKER,
                {"request_id": request_id},
                queue=PLANNING_QUEUE,
                priority=priority,
                max_attempts=self.job_max_attempts,
                job_id=request_id,
                tx=tx,
            )

        await db.transact(insert)
        return request_id

    async def request_status(self, request_id: str) -> dict[str, Any]:
        """A stored request: its state, attempts, times, result (when done) and its job's state and errors.

        ``state`` is ``queued``, ``running``, ``done`` (``outcome`` success, failure, expansion_limit,
        time_limit or cancelled, and ``result`` with plan, tree, stats, explanation), ``error`` (the
        domain misbehaved, or the job gave up: ``error`` says why) or ``cancelled``.

        Raises:
            RequestNotFound: if there is no such request (or ``request_id`` is not a request id).
        """
        db, queue = self._storage()
        key = _request_uuid(request_id)
        record = await db.fetchrow(store.GET, key)
        if record is None:
            raise RequestNotFound(request_id)
        data = store.request_from_record(record, with_result=True)
        job = await _job_or_none(queue, data["id"])
        data["job"] = (
            None
            if job is None
            else {
                "state": job.state,
                "attempt": job.attempt,
                "max_attempts": job.max_attempts,
                "errors": [{k: e.get(k) for k in ("attempt", "at", "error")} for e in job.errors],
            }
        )
        given_up = job is not None and job.state in ("discarded", "cancelled")
        if data["state"] in ("queued", "running") and given_up:
            # The queue gave the job up (out of attempts, or cancelled through the queue): say so, durably.
            last = job.errors[-1].get("error") if job.errors else None
            state = "error" if job.state == "discarded" else "cancelled"
            error = f"the planning job was {job.state}" + (f": {last}" if last else "")
            await db.execute(store.FINISH, key, state, None, None, error)
            record = await db.fetchrow(store.GET, key)
            data.update(store.request_from_record(record, with_result=True))
        return data

    async def wait_for_request(self, request_id: str, timeout: float) -> dict[str, Any]:
        """:meth:`request_status` once the request is finished, or after ``timeout`` seconds, whichever
        comes first (the job may run on another node, so this polls the database, every 0.05 s at
        first and every second at most)."""
        deadline = trio.current_time() + max(0.0, timeout)
        interval = 0.05
        while True:
            status = await self.request_status(request_id)
            left = deadline - trio.current_time()
            if status["state"] in store.FINAL_STATES or left <= 0:
                return status
            await trio.sleep(min(interval, left))
            interval = min(1.0, interval * 2)

    async def cancel_request(self, request_id: str) -> dict[str, Any]:
        """Cancel a queued or running request (a running plan stops at its next check).

        Raises:
            RequestNotFound: if there is no such request.
            RequestFinished: if it is finished already.
        """
        db, queue = self._storage()
        key = _request_uuid(request_id)
        if await db.fetchrow(store.CANCEL, key) is None:
            status = await self.request_status(request_id)  # raises RequestNotFound
            raise RequestFinished(
                f"planning request {request_id} is {status['state']}; it cannot be cancelled"
            )
        job = await _job_or_none(queue, str(key))
        if job is not None and job.state not in ("completed", "discarded", "cancelled"):
            try:
                await queue.cancel_job(str(key))
            except QueueUsageError:
                pass  # it finished meanwhile; the request stays cancelled
        return await self.request_status(request_id)

    async def requests(self, *, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Stored requests, newest first, without their results.

        Raises:
            ValueError: for an unknown state or a limit outside 1..1000.
        """
        db, _ = self._storage()
        if state is not None and state not in store.STATES:
            raise ValueError(f"request state {state!r} is not one of {', '.join(store.STATES)}")
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValueError(f"limit must be an integer from 1 to 1000, not {limit!r}")
        records = await db.fetch(store.LIST, state, limit)
        return [store.request_from_record(r, with_result=False) for r in records]

    async def prune_requests(self, older_than_s: float) -> int:
        """Delete finished requests that finished more than ``older_than_s`` seconds ago; returns how many."""
        db, _ = self._storage()
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        outcome = await db.execute(store.PRUNE, cutoff)
        return int(outcome.split()[-1]) if outcome and outcome.split()[-1].isdigit() else 0

    async def perform_job(self, job: Any) -> Any:
        """Plan the request of one ``aria_engine.plan`` job and store its result (the queue worker's body).

        Returns None when done (or when the request was finished already: a retried job changes
        nothing), or aria_queue's ``Discard`` when the request cannot be planned (malformed, the
        domain misbehaved); raises to have the queue retry (an unknown domain, aria_engine stopping,
        the database failing).
        """
        db, _ = self._storage()
        request_id = job.args.get("request_id") if isinstance(job.args, dict) else None
        try:
            key = _request_uuid(str(request_id))
        except RequestNotFound:
            return Discard(f"job {job.id} names no planning request ({request_id!r})")
        record = await db.fetchrow(store.START_ATTEMPT, key, self.node or None)
        if record is None:
            if await db.fetchrow(store.GET_REQUEST, key) is None:
                return Discard(f"planning request {request_id} is not stored (pruned?)")
            return None  # finished or cancelled already
        self._jobs_running += 1
        try:
            body = json.loads(record["request"])
            try:
                result = await self._while_running(
                    lambda: self.run_request(body), f"planning request {request_id}"
                )
            except (DomainError, SerializationError) as error:
                await db.execute(store.FINISH, key, "error", None, None, str(error))
                return Discard(f"planning request {request_id}: {error}")
            await db.execute(
                store.FINISH, key, "done", result["status"], json.dumps(result, allow_nan=False), None
            )
            return None
        finally:
            self._jobs_running -= 1

    # ----------------------------------------------------------------------------------------------
    # Lifetime

    async def _while_running(self, work: Callable[[], Awaitable[Any]], what: str) -> Any:
        """Run ``work`` tied to this service's lifetime: :meth:`close` stops it with EngineStopped."""
        if self._closed:
            raise EngineStopped(f"aria_engine is stopping; {what} was not started")
        scope = trio.CancelScope()
        self._lifetime_scopes.add(scope)
        result = None
        try:
            with scope:
                result = await work()
        finally:
            self._lifetime_scopes.discard(scope)
        if scope.cancelled_caught:
            raise EngineStopped(f"aria_engine stopped (or restarted) while {what}")
        return result

    def close(self) -> None:
        """Stop every plan in progress that belongs to this service (they raise EngineStopped)."""
        self._closed = True
        for scope in list(self._lifetime_scopes):
            scope.cancel()

    async def _in_thread(self, work: Callable[[threading.Event], PlanOutcome]) -> PlanOutcome:
        cancel = threading.Event()

        async def cancel_when_cancelled() -> None:
            try:
                await trio.sleep_forever()
            finally:
                cancel.set()  # the search sees it within _CLOCK_EVERY expansions and returns

        def guarded(cancel: threading.Event) -> tuple[PlanOutcome | None, Exception | None]:
            # The thread's error is carried out by hand: raised inside the nursery, trio would wrap it
            # in an ExceptionGroup, and callers want the DomainError itself.
            try:
                return work(cancel), None
            except Exception as error:
                return None, error

        self._running += 1
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(cancel_when_cancelled)
                outcome, error = await trio.to_thread.run_sync(guarded, cancel, limiter=self._limiter)
                nursery.cancel_scope.cancel()
        except BaseException:
            self._plans_failed += 1
            raise
        finally:
            self._running -= 1
        if error is not None:
            self._plans_failed += 1
            raise error
        assert outcome is not None
        if outcome.success:
            self._plans_made += 1
        else:
            self._plans_failed += 1
        PLANS.labels(outcome.status).inc()
        PLAN_SECONDS.observe(outcome.stats.duration_s)
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
            "queued_requests": self._db is not None and self._queue is not None,
            "jobs_running": self._jobs_running,
        }

    async def health(self) -> dict[str, Any]:
        return {"ok": True, "app": "aria_engine", "domains": len(self._domains)}


def _request_uuid(request_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(request_id))
    except ValueError:
        raise RequestNotFound(str(request_id), " (not a request id)") from None


async def _job_or_none(queue: Any, job_id: str) -> Any:
    try:
        return await queue.get_job(job_id)
    except JobNotFound:
        return None  # pruned by the queue after it finished


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

__all__ = [
    "PLANNING_QUEUE",
    "PLAN_WORKER",
    "Api",
    "CharacterGoalPlanner",
    "EngineApi",
    "EngineStopped",
    "LimitTooHigh",
    "PlanRequest",
    "PlanningQueueUnavailable",
    "RequestFinished",
    "RequestNotFound",
    "character_goal_planner",
    "create_blueprint",
]
