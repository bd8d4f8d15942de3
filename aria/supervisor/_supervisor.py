"""OTP supervisors on trio: static (:class:`Supervisor`) and dynamic (:class:`DynamicSupervisor`).

A supervisor is one trio task (its :meth:`~Supervisor.run`) that owns a nursery holding one task
per child. Like an OTP supervisor process, it handles one message at a time from its inbox: a
child's exit, or a request (start, terminate, restart, delete a child; stop). Every change to the
children happens in that task, so no locks are needed and the order of events is the order of
handling.

Children run in cancel scopes that are shielded once they are ready, so a cancellation from outside
the supervisor does not hit them all at once: the supervisor catches it and stops its children one
by one, in reverse start order, each within its shutdown budget, as OTP does.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import structlog
import trio

from aria.errors import Escalation, StartError, UnknownChild, UsageError
from aria.supervisor._child import (
    ChildContext,
    ChildState,
    ExitReason,
    _Child,
    _current_child,
    describe_error,
)
from aria.supervisor._events import EventBus, SupervisorEvent
from aria.supervisor._registry import Registry
from aria.supervisor._spec import (
    BRUTAL_KILL,
    AutoShutdown,
    ChildSpec,
    ChildType,
    Restart,
    Strategy,
)

log = structlog.get_logger("aria.supervisor")

# How long to wait for a killed child before complaining in the log (it is still waited for).
_KILL_COMPLAINT_INTERVAL = 5.0


@dataclass(frozen=True)
class _Environment:
    """What a supervisor hands down to the supervisors below it."""

    events: EventBus
    registry: Registry


_current_environment: ContextVar[_Environment | None] = ContextVar("aria_supervisor_env", default=None)


@dataclass(frozen=True)
class ChildInfo:
    """One row of :meth:`Supervisor.which_children`."""

    id: str
    state: ChildState
    type: ChildType
    handle: object
    restarts: int


@dataclass(frozen=True)
class ChildCounts:
    """The answer of :meth:`Supervisor.count_children`, with OTP's four counts."""

    specs: int
    active: int
    supervisors: int
    workers: int


@dataclass
class _Exit:
    child: _Child
    generation: int
    reason: ExitReason


@dataclass
class _Call:
    operation: str
    argument: Any
    done: trio.Event
    result: Any = None
    error: BaseException | None = None


class _Stop:
    pass


class _StartTimeout(Exception):
    pass


class ChildKilled(Exception):
    """The exit reason of a child killed with :meth:`Supervisor.kill_child`."""


class _ReadyStatus:
    """Wraps trio's ``task_status`` to record readiness and make the child's scope a shield."""

    def __init__(self, supervisor: _SupervisorBase, child: _Child, task_status: Any) -> None:
        self._supervisor = supervisor
        self._child = child
        self._task_status = task_status
        self.ready = False

    def started(self, value: object = None) -> None:
        if self.ready:
            raise RuntimeError(f"child {self._child.path!r} called task_status.started() twice")
        child = self._child
        if child.spec.name is not None:
            self._supervisor._registry.register(child.spec.name, value)
        assert child.scope is not None
        child.scope.deadline = math.inf
        child.scope.shield = True
        child.handle = value
        child.state = ChildState.RUNNING
        child.started_at = trio.current_time()
        self.ready = True
        self._task_status.started(value)


class _SupervisorBase:
    """Machinery shared by the static and the dynamic supervisor."""

    _strategy: Strategy = Strategy.ONE_FOR_ONE

    def __init__(
        self,
        *,
        id: str,
        intensity: int,
        period: float,
        auto_shutdown: AutoShutdown | str,
        events: EventBus | None,
        registry: Registry | None,
    ) -> None:
        if not isinstance(intensity, int) or isinstance(intensity, bool) or intensity < 0:
            raise ValueError(f"supervisor {id!r}: intensity={intensity!r} must be an integer >= 0")
        if not (isinstance(period, int | float) and period > 0):
            raise ValueError(f"supervisor {id!r}: period={period!r} must be > 0 seconds")
        try:
            self.auto_shutdown = AutoShutdown(auto_shutdown)
        except ValueError:
            allowed = ", ".join(m.value for m in AutoShutdown)
            raise ValueError(
                f"supervisor {id!r}: auto_shutdown={auto_shutdown!r} is not one of {allowed}"
            ) from None
        self.id = id
        self.intensity = intensity
        self.period = float(period)
        self._given_events = events
        self._given_registry = registry
        self._events: EventBus = events or EventBus()
        self._registry: Registry = registry or Registry()
        self._path = id
        self._children: list[_Child] = []
        self._restart_times: deque[float] = deque()
        self._total_restarts = 0
        self._state = ChildState.STOPPED
        self._nursery: trio.Nursery | None = None
        self._inbox_send, self._inbox = trio.open_memory_channel[Any](math.inf)
        self._stopped = trio.Event()
        self._auto_shutdown_due = False
        self._started_at: float | None = None
        self.shutdown_timeout = math.inf
        self._killed = False
        self._termination_scope: trio.CancelScope | None = None

    # ---- public API ----------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """This supervisor's position in the tree (its id when it is the root)."""
        return self._path

    @property
    def events(self) -> EventBus:
        return self._events

    @property
    def registry(self) -> Registry:
        return self._registry

    @property
    def state(self) -> ChildState:
        return self._state

    def child_spec(
        self,
        id: str | None = None,
        *,
        restart: Restart | str = Restart.PERMANENT,
        significant: bool = False,
        start_timeout: float = 60.0,
    ) -> ChildSpec:
        """A spec that runs this supervisor as a child of another (type supervisor, shutdown infinity)."""
        return ChildSpec(
            id=id or self.id,
            start=self.run,
            restart=restart,
            type=ChildType.SUPERVISOR,
            significant=significant,
            start_timeout=start_timeout,
        )

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Start the children, report ready, supervise them until stopped, then stop them in order.

        Returns normally after :meth:`stop` or an auto_shutdown. If a child cannot be started, the
        children already started are stopped in reverse order and :class:`~aria.errors.StartError`
        is raised (before ready is reported). If restarts exceed the intensity, every child is
        stopped in reverse order and :class:`~aria.errors.Escalation` is raised. If the task running
        this method is cancelled, the children are stopped in reverse order, each within its
        budget, before the cancellation propagates.
        """
        if self._state not in (ChildState.STOPPED, ChildState.FAILED):
            raise UsageError(f"supervisor {self.id!r} is already running")
        self._prepare_run()
        failure: BaseException | None = None
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                await self._init_children()
                self._state = ChildState.RUNNING
                self._started_at = trio.current_time()
                task_status.started(self)
                await self._loop()
            except (StartError, Escalation) as exc:
                failure = exc
            finally:
                self._state = ChildState.STOPPING
                with self._termination_shield():
                    await self._terminate_all()
                self._state = ChildState.FAILED if failure is not None else ChildState.STOPPED
                self._nursery = None
                self._stopped.set()
        if failure is not None:
            raise failure

    async def stop(self) -> None:
        """Stop every child in reverse start order and make :meth:`run` return; waits until done."""
        if self._state in (ChildState.STOPPED, ChildState.FAILED):
            return
        self.stop_nowait()
        await self._stopped.wait()

    def stop_nowait(self) -> None:
        """Ask for :meth:`stop` without waiting for it to finish."""
        if self._state not in (ChildState.STOPPED, ChildState.FAILED):
            self._inbox_send.send_nowait(_Stop())

    def kill(self) -> None:
        """Stop at once: every child is killed without waiting for its shutdown budget.

        For a root supervisor (one that is not a child of another); a supervisor that is a child is
        killed by its parent. Returns immediately; :meth:`run` returns once the children are gone.
        """
        self._killed = True
        if self._termination_scope is not None:
            self._termination_scope.cancel()
        else:
            self.stop_nowait()

    async def terminate_child(self, child_id: str) -> None:
        """Stop a child within its shutdown budget; it stays stopped (its spec is kept)."""
        await self._call("terminate", child_id)

    async def kill_child(self, child_id: str) -> None:
        """Kill a running child as if it had crashed (OTP's ``exit(Pid, kill)``).

        The exit is abnormal, so the supervisor then restarts by its strategy and counts the restart
        towards its intensity. Returns once the child is gone (not once it is back).
        """
        await self._call("kill", child_id)

    async def restart_child(self, child_id: str) -> object:
        """Start a stopped child again; returns its handle. A running child is restarted."""
        return await self._call("restart", child_id)

    async def delete_child(self, child_id: str) -> None:
        """Forget the spec of a stopped child."""
        await self._call("delete", child_id)

    def which_children(self) -> list[ChildInfo]:
        return [
            ChildInfo(id=c.spec.id, state=c.state, type=c.spec.type, handle=c.handle, restarts=c.restarts)
            for c in self._children
        ]

    def count_children(self) -> ChildCounts:
        return ChildCounts(
            specs=len(self._children),
            active=sum(1 for c in self._children if c.state is ChildState.RUNNING),
            supervisors=sum(1 for c in self._children if c.spec.type is ChildType.SUPERVISOR),
            workers=sum(1 for c in self._children if c.spec.type is ChildType.WORKER),
        )

    def find(self, path: str) -> tuple[_SupervisorBase, str]:
        """The supervisor that directly holds the child at ``path`` (relative or absolute), and its id."""
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] == self.id and len(parts) > 1:
            parts = parts[1:]
        supervisor: _SupervisorBase = self
        for depth, part in enumerate(parts):
            child = supervisor._child_by_id(part)
            if depth == len(parts) - 1:
                return supervisor, child.spec.id
            if not isinstance(child.handle, _SupervisorBase):
                raise UnknownChild(supervisor.path, "/".join(parts[depth + 1 :]))
            supervisor = child.handle
        raise UnknownChild(self.path, path)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable picture of this supervisor and, recursively, its children."""
        now = trio.current_time()
        return {
            "id": self.id,
            "path": self._path,
            "kind": "supervisor",
            "type": "supervisor",
            "strategy": self._strategy.value,
            "intensity": self.intensity,
            "period": self.period,
            "state": self._state.value,
            "restarts": self._total_restarts,
            "uptime": round(now - self._started_at, 3) if self._started_at is not None else None,
            "children": [self._child_snapshot(child, now) for child in self._children],
        }

    # ---- the supervisor task ------------------------------------------------------------------

    def _prepare_run(self) -> None:
        """Reset per-run state and inherit the event bus and registry of the parent supervisor."""
        environment = _current_environment.get()
        context = _current_child.get()
        if environment is not None:
            self._events = self._given_events or environment.events
            self._registry = self._given_registry or environment.registry
        self._path = context.path if context is not None else self.id
        self._restart_times.clear()
        self._inbox_send, self._inbox = trio.open_memory_channel[Any](math.inf)
        self._stopped = trio.Event()
        self._auto_shutdown_due = False
        self._state = ChildState.STARTING
        self._children = self._initial_children()

    def _initial_children(self) -> list[_Child]:
        return []

    async def _init_children(self) -> None:
        for child in self._children:
            try:
                await self._start(child)
            except StartError:
                child.state = ChildState.FAILED
                raise

    async def _loop(self) -> None:
        async for message in self._inbox:
            if isinstance(message, _Stop):
                return
            if isinstance(message, _Exit):
                child = message.child
                if message.generation != child.generation or child.stopping:
                    continue  # an exit the stopping code is already handling
                await self._handle_exit(child, message.reason)
                if self._auto_shutdown_due:
                    log.info("auto_shutdown", supervisor=self._path, mode=self.auto_shutdown.value)
                    return
            elif isinstance(message, _Call):
                try:
                    message.result = await self._handle_call(message.operation, message.argument)
                except Exception as exc:  # the caller gets the error; the supervisor carries on
                    message.error = exc
                finally:
                    message.done.set()

    async def _call(self, operation: str, argument: Any) -> Any:
        if self._state is not ChildState.RUNNING:
            raise UsageError(f"supervisor {self.id!r} is {self._state.value}, not running")
        call = _Call(operation, argument, trio.Event())
        self._inbox_send.send_nowait(call)
        await call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result

    async def _handle_call(self, operation: str, argument: Any) -> Any:
        if operation == "terminate":
            await self._stop_child(self._child_by_id(argument), "shutdown (terminated on request)")
            return None
        if operation == "kill":
            child = self._child_by_id(argument)
            if not child.alive:
                raise UsageError(f"child {child.path!r} is not running")
            child.kill_requested = True
            child.kill()
            await child.exited.wait()
            return None
        if operation == "restart":
            child = self._child_by_id(argument)
            if child.alive:
                await self._stop_child(child)
            await self._start(child, restarting=True)
            return child.handle
        if operation == "delete":
            child = self._child_by_id(argument)
            if child.alive:
                raise UsageError(f"child {child.path!r} is running; terminate it before deleting it")
            self._children.remove(child)
            return None
        if operation == "start_child":
            return await self._add_and_start(argument)
        raise AssertionError(operation)

    async def _add_and_start(self, spec: ChildSpec) -> object:
        if any(c.spec.id == spec.id for c in self._children):
            raise UsageError(f"supervisor {self._path!r} already has a child {spec.id!r}")
        self._check_spec(spec)
        child = _Child(spec, f"{self._path}/{spec.id}")
        self._children.append(child)
        try:
            await self._start(child)
        except StartError:
            self._children.remove(child)
            raise
        return child.handle

    def _check_spec(self, spec: ChildSpec) -> None:
        if spec.significant and self.auto_shutdown is AutoShutdown.NEVER:
            raise ValueError(
                f"supervisor {self.id!r}: child {spec.id!r} is significant, "
                "which needs auto_shutdown any_significant or all_significant"
            )

    def _child_by_id(self, child_id: str) -> _Child:
        for child in self._children:
            if child.spec.id == child_id:
                return child
        raise UnknownChild(self._path, child_id)

    # ---- starting -----------------------------------------------------------------------------

    async def _start(self, child: _Child, *, restarting: bool = False) -> None:
        """Start ``child`` and wait until it is ready; raise StartError if it is not."""
        assert self._nursery is not None
        child.generation += 1
        child.exited = trio.Event()
        child.stopping = False
        child.kill_requested = False
        child.stop_deadline = math.inf
        child.state = ChildState.RESTARTING if restarting else ChildState.STARTING
        try:
            await self._nursery.start(self._run_child, child, child.generation)
        except StartError as exc:
            # A nested supervisor failed to start one of its children: that message is the precise one.
            self._record_start_failure(child, exc.reason if exc.child_id == child.path else str(exc))
            raise
        except _StartTimeout:
            reason = f"not ready within its start_timeout of {child.spec.start_timeout:g} s"
            self._record_start_failure(child, reason)
            raise StartError(child.path, reason) from None
        except Exception as exc:
            reason = describe_error(exc)
            self._record_start_failure(child, reason)
            raise StartError(child.path, reason) from exc
        if restarting:
            child.restarts += 1
        child.ever_started = True
        self._emit("restarted" if restarting else "started", child)
        log.debug("child started", supervisor=self._path, child_id=child.spec.id, restarts=child.restarts)

    def _record_start_failure(self, child: _Child, reason: str) -> None:
        child.state = ChildState.FAILED
        child.last_error = reason
        self._emit("start_failed", child, reason)
        log.error("child failed to start", supervisor=self._path, child_id=child.spec.id, reason=reason)

    async def _run_child(self, child: _Child, generation: int, *, task_status: Any) -> None:
        """The task that runs one incarnation of a child and reports how it ended."""
        spec = child.spec
        context = ChildContext(child.path, spec)
        child.context = context
        _current_child.set(context)
        _current_environment.set(_Environment(self._events, self._registry))
        structlog.contextvars.bind_contextvars(child=spec.id)
        scope = trio.CancelScope(deadline=trio.current_time() + spec.start_timeout)
        child.scope = scope
        status = _ReadyStatus(self, child, task_status)
        reason: ExitReason
        try:
            with scope:
                await spec.start(*spec.args, task_status=status)
        except BaseException as exc:
            _, error = _split_cancelled(exc)
            if error is None:
                raise  # cancelled from outside: the supervisor's own shutdown deals with it
            if not status.ready:
                raise error from None
            reason = ExitReason("crash", error)
        else:
            if not status.ready:
                if scope.cancelled_caught:
                    raise _StartTimeout()
                raise RuntimeError("its start function returned without calling task_status.started()")
            if child.kill_requested:
                reason = ExitReason("crash", ChildKilled(f"child {child.path!r} was killed on request"))
            elif child.stopping:
                reason = ExitReason("killed" if context._killed else "shutdown")
            else:
                reason = ExitReason("normal")
        finally:
            if status.ready and spec.name is not None:
                self._registry.unregister(spec.name, child.handle)
            child.exited.set()
        self._inbox_send.send_nowait(_Exit(child, generation, reason))

    # ---- exits and restarts -------------------------------------------------------------------

    async def _handle_exit(self, child: _Child, reason: ExitReason) -> None:
        child.handle = None
        child.started_at = None
        if reason.abnormal:
            child.last_error = str(reason)
            log.error(
                "child exited",
                supervisor=self._path,
                child_id=child.spec.id,
                reason=str(reason),
                exc_info=reason.error,
            )
        else:
            log.info("child exited", supervisor=self._path, child_id=child.spec.id, reason=str(reason))
        self._emit("exited", child, str(reason))
        restart = child.spec.restart is Restart.PERMANENT or (
            child.spec.restart is Restart.TRANSIENT and reason.abnormal
        )
        if not restart:
            child.state = ChildState.FAILED if reason.abnormal else ChildState.STOPPED
            self._on_not_restarted(child)
            return
        child.state = ChildState.RESTARTING
        self._count_restart(child, str(reason))
        await self._restart_by_strategy(child)

    def _on_not_restarted(self, child: _Child) -> None:
        if child.spec.significant:
            significant = [c for c in self._children if c.spec.significant]
            if self.auto_shutdown is AutoShutdown.ANY_SIGNIFICANT or (
                self.auto_shutdown is AutoShutdown.ALL_SIGNIFICANT and not any(c.alive for c in significant)
            ):
                self._auto_shutdown_due = True

    def _count_restart(self, child: _Child, reason: str) -> None:
        """Record a restart; raise Escalation when more than ``intensity`` fall within ``period``."""
        now = trio.current_time()
        self._restart_times.append(now)
        while self._restart_times and self._restart_times[0] <= now - self.period:
            self._restart_times.popleft()
        self._total_restarts += 1
        if len(self._restart_times) > self.intensity:
            escalation = Escalation(self._path, self.intensity, self.period, child.spec.id, reason)
            self._events.emit(SupervisorEvent("escalated", self._path, str(escalation), self._total_restarts))
            log.error("supervisor escalates", supervisor=self._path, reason=str(escalation))
            raise escalation

    async def _restart_by_strategy(self, failed: _Child) -> None:
        if self._strategy is Strategy.ONE_FOR_ONE:
            group = [failed]
        elif self._strategy is Strategy.ONE_FOR_ALL:
            group = list(self._children)
        else:
            group = self._children[self._children.index(failed) :]
        # Which siblings take part: those running now. Stopped ones stay stopped, and temporary
        # siblings are stopped but not restarted, as in OTP.
        siblings = [c for c in group if c is not failed and c.alive]
        for sibling in reversed(siblings):
            await self._stop_child(
                sibling, f"shutdown ({self._strategy.value} after {failed.spec.id!r} exited)"
            )
            sibling.state = ChildState.RESTARTING
        for child in group:
            if child is failed or (child in siblings and child.spec.restart is not Restart.TEMPORARY):
                await self._restart_until_started(child)
            elif child in siblings:
                child.state = ChildState.STOPPED

    async def _restart_until_started(self, child: _Child) -> None:
        while True:
            try:
                await self._start(child, restarting=True)
                return
            except StartError as exc:
                self._count_restart(child, exc.reason)

    # ---- stopping -----------------------------------------------------------------------------

    async def _stop_child(self, child: _Child, reason: str = "shutdown") -> None:
        """Stop one child: graceful stop, then kill when its budget is spent."""
        if not child.alive:
            return
        now = trio.current_time()
        if not child.stopping:
            child.stopping = True
            child.state = ChildState.STOPPING
            budget = child.spec.shutdown_seconds
            child.stop_deadline = now + budget
            assert child.context is not None and child.scope is not None
            child.context._begin_stop(child.stop_deadline)
            if child.spec.shutdown == BRUTAL_KILL:
                child.kill()
            else:
                child.scope.cancel()
        with trio.move_on_at(child.stop_deadline):
            await child.exited.wait()
        # Overran: still alive, or its grace scopes ran out at the very deadline.
        if child.alive or (child.stop_deadline < math.inf and trio.current_time() >= child.stop_deadline):
            if child.spec.shutdown != BRUTAL_KILL:
                log.warning(
                    "child overran its shutdown budget; killing it",
                    supervisor=self._path,
                    child_id=child.spec.id,
                    budget=child.spec.shutdown,
                )
                self._emit("killed", child, f"did not stop within {child.spec.shutdown} s")
                reason = f"killed (after its {child.spec.shutdown} s budget)"
            child.kill()
            while child.alive:
                with trio.move_on_after(_KILL_COMPLAINT_INTERVAL):
                    await child.exited.wait()
                if child.alive:
                    log.error(
                        "killed child has not exited; it shields itself from cancellation",
                        supervisor=self._path,
                        child_id=child.spec.id,
                    )
        child.state = ChildState.STOPPED
        child.handle = None
        child.started_at = None
        self._emit("exited", child, reason)
        log.info("child stopped", supervisor=self._path, child_id=child.spec.id, reason=reason)

    async def _terminate_all(self) -> None:
        try:
            for child in reversed(self._children):
                await self._stop_child(child)
        except trio.Cancelled:
            # Our own budget ran out (our parent is killing us): kill what is left, then wait.
            for child in self._children:
                child.kill()
            with trio.CancelScope(shield=True):
                for child in self._children:
                    await child.exited.wait()
                    child.state = ChildState.STOPPED
            raise

    @contextmanager
    def _termination_shield(self) -> Iterator[trio.CancelScope]:
        """Shield the ordered stop from the cancellation that may have triggered it, within bounds:
        a child supervisor's parent bounds it (its grace scope); a root bounds it by
        ``shutdown_timeout`` and :meth:`kill`."""
        context = _current_child.get()
        if context is not None and context.path == self._path:
            with context.shutdown_grace() as scope:
                yield scope
            return
        scope = trio.CancelScope(shield=True, deadline=trio.current_time() + self.shutdown_timeout)
        if self._killed:
            scope.cancel()
        self._termination_scope = scope
        try:
            with scope:
                yield scope
        finally:
            self._termination_scope = None
        if scope.cancelled_caught:
            log.warning(
                "supervisor stop overran its bound; remaining children were killed", supervisor=self._path
            )

    # ---- introspection ------------------------------------------------------------------------

    def _emit(self, kind: Any, child: _Child, reason: str = "") -> None:
        self._events.emit(SupervisorEvent(kind, child.path, reason, child.restarts))

    def _child_snapshot(self, child: _Child, now: float) -> dict[str, Any]:
        handle = child.handle
        entry: dict[str, Any] = {
            "id": child.spec.id,
            "path": child.path,
            "kind": child.spec.kind,
            "type": child.spec.type.value,
            "restart": child.spec.restart.value,
            "state": child.state.value,
            "pid": getattr(handle, "pid", None) if child.alive else None,
            "restarts": child.restarts,
            "uptime": round(now - child.started_at, 3) if child.started_at is not None else None,
            "last_error": child.last_error,
        }
        report = getattr(handle, "status", None)
        if callable(report) and child.alive:
            # A service's own summary (an app API's status(): health facts, "not implemented yet").
            try:
                entry["status"] = report()
            except Exception as exc:
                entry["status"] = {"error": describe_error(exc)}
        if isinstance(handle, _SupervisorBase) and child.alive:
            nested = handle.snapshot()
            entry["strategy"] = nested["strategy"]
            entry["children"] = nested["children"]
        return entry


def _split_cancelled(exc: BaseException) -> tuple[BaseException | None, BaseException | None]:
    """Separate trio.Cancelled from real errors (also inside exception groups)."""
    if isinstance(exc, trio.Cancelled):
        return exc, None
    if isinstance(exc, BaseExceptionGroup):
        cancelled, rest = exc.split(trio.Cancelled)
        return cancelled, rest
    return None, exc


class Supervisor(_SupervisorBase):
    """A static supervisor: a fixed list of children started in order (OTP's ``supervisor``).

    Args:
        children: The child specs, in start order.
        strategy: ``one_for_one``, ``one_for_all`` or ``rest_for_one`` (see :class:`Strategy`).
        intensity: Restarts allowed within ``period`` seconds; one more escalates (default 1).
        period: The window for ``intensity``, in seconds (default 5).
        auto_shutdown: Whether significant children's exits stop this supervisor (default never).
        id: The supervisor's id when it is the root; as a child, its path comes from its parent.
        events, registry: Where events go and names are registered; by default inherited from the
            parent supervisor, or new ones for a root.
        shutdown_timeout: For a root supervisor, the bound on stopping all children; when it passes
            the remaining children are killed. (A child supervisor is bounded by its own spec.)

    Raises:
        ValueError: at construction, for duplicate child ids, a significant child with
            ``auto_shutdown=never``, or out-of-range numbers.
    """

    def __init__(
        self,
        children: Iterable[ChildSpec],
        *,
        strategy: Strategy | str = Strategy.ONE_FOR_ONE,
        intensity: int = 1,
        period: float = 5.0,
        auto_shutdown: AutoShutdown | str = AutoShutdown.NEVER,
        id: str = "supervisor",
        events: EventBus | None = None,
        registry: Registry | None = None,
        shutdown_timeout: float = math.inf,
    ) -> None:
        super().__init__(
            id=id,
            intensity=intensity,
            period=period,
            auto_shutdown=auto_shutdown,
            events=events,
            registry=registry,
        )
        self.shutdown_timeout = shutdown_timeout
        try:
            self._strategy = Strategy(strategy)
        except ValueError:
            allowed = ", ".join(s.value for s in Strategy)
            raise ValueError(f"supervisor {id!r}: strategy={strategy!r} is not one of {allowed}") from None
        self._specs = list(children)
        seen: set[str] = set()
        for spec in self._specs:
            if not isinstance(spec, ChildSpec):
                raise TypeError(f"supervisor {id!r}: children must be ChildSpec objects, not {spec!r}")
            if spec.id in seen:
                raise ValueError(f"supervisor {id!r}: two children have the id {spec.id!r}")
            seen.add(spec.id)
            self._check_spec(spec)

    @property
    def strategy(self) -> Strategy:
        return self._strategy

    def _initial_children(self) -> list[_Child]:
        return [_Child(spec, f"{self._path}/{spec.id}") for spec in self._specs]

    async def _init_children(self) -> None:
        try:
            await super()._init_children()
        except StartError:
            log.error("supervisor failed to start its children", supervisor=self._path)
            raise

    async def start_child(self, spec: ChildSpec) -> object:
        """Add a child at the end of the start order and start it (it is lost if this supervisor restarts)."""
        return await self._call("start_child", spec)


class DynamicSupervisor(_SupervisorBase):
    """A supervisor whose children are added at run time (OTP's ``simple_one_for_one``, Elixir's
    ``DynamicSupervisor``). The strategy is always one_for_one.

    Args:
        template: A spec to instantiate with :meth:`start_child`; extra arguments are appended to
            its ``args`` and ids are generated (``<template id>-<n>``). Without a template,
            :meth:`start_child` takes a whole :class:`ChildSpec`.
        max_children: Refuse :meth:`start_child` beyond this many children.
        intensity, period, auto_shutdown, id, events, registry: as for :class:`Supervisor`.
    """

    def __init__(
        self,
        *,
        template: ChildSpec | None = None,
        max_children: int | float = math.inf,
        intensity: int = 1,
        period: float = 5.0,
        auto_shutdown: AutoShutdown | str = AutoShutdown.NEVER,
        id: str = "dynamic_supervisor",
        events: EventBus | None = None,
        registry: Registry | None = None,
    ) -> None:
        super().__init__(
            id=id,
            intensity=intensity,
            period=period,
            auto_shutdown=auto_shutdown,
            events=events,
            registry=registry,
        )
        if template is not None:
            self._check_spec(template)
        self.template = template
        self.max_children = max_children
        self._next_number = 0

    async def start_child(self, spec_or_arg: ChildSpec | Any = None, *args: Any) -> object:
        """Start a new child and return its handle once it is ready.

        With a template, pass the extra start arguments; otherwise pass a :class:`ChildSpec`.

        Raises:
            StartError: if the child does not become ready.
            UsageError: when ``max_children`` is reached or the id is taken.
        """
        if isinstance(spec_or_arg, ChildSpec):
            if args:
                raise TypeError("start_child(spec) takes no extra arguments")
            spec = spec_or_arg
        else:
            if self.template is None:
                raise UsageError(f"dynamic supervisor {self.id!r} has no template; pass a ChildSpec")
            extra = args if spec_or_arg is None else (spec_or_arg, *args)
            self._next_number += 1
            spec = ChildSpec(
                id=f"{self.template.id}-{self._next_number}",
                start=self.template.start,
                args=(*self.template.args, *extra),
                restart=self.template.restart,
                shutdown=self.template.shutdown,
                type=self.template.type,
                significant=self.template.significant,
                start_timeout=self.template.start_timeout,
                name=None,
                kind=self.template.kind,
            )
        if len(self._children) >= self.max_children:
            raise UsageError(f"dynamic supervisor {self.id!r} already has max_children={self.max_children}")
        return await self._call("start_child", spec)

    async def _handle_call(self, operation: str, argument: Any) -> Any:
        result = await super()._handle_call(operation, argument)
        if operation == "terminate":
            # A dynamic supervisor forgets terminated children, as OTP's simple_one_for_one does.
            self._children.remove(self._child_by_id(argument))
        return result

    def _on_not_restarted(self, child: _Child) -> None:
        super()._on_not_restarted(child)
        self._children.remove(child)
