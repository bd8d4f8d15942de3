"""The running side of a child: its context, its grace period and how it is killed.

Trio has no way to kill a task from outside; cancellation is the only lever. Aria maps OTP's two
stop signals onto it:

* the *graceful stop* (OTP's ``exit(Child, shutdown)``) cancels the child's cancel scope. Clean-up
  code that needs to await (closing a connection, stopping a server, waiting for an OS process)
  runs inside :func:`shutdown_grace`, a shielded scope that lives at most until the budget ends;
* the *kill* (OTP's ``exit(Child, kill)``) cancels those grace scopes too, when the budget is spent
  or at once for ``brutal_kill``.

Code that shields itself with a bare ``trio.CancelScope(shield=True)`` opts out of being killed,
like an Erlang process stuck in a NIF; use :func:`shutdown_grace` instead.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from aria.supervisor._spec import ChildSpec


class ChildState(enum.Enum):
    """Where a child is in its life, as shown by :meth:`Supervisor.snapshot`."""

    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class ChildContext:
    """What a running child knows about itself; see :func:`current_child`.

    Attributes:
        path: The child's position in the tree, e.g. ``root/aria_data/postgres``.
        spec: The child's :class:`ChildSpec`.
    """

    def __init__(self, path: str, spec: ChildSpec) -> None:
        self.path = path
        self.spec = spec
        self._grace_scopes: set[trio.CancelScope] = set()
        self._stop_deadline: float | None = None
        self._killed = False

    @property
    def stop_requested(self) -> bool:
        """True once the supervisor asked this child to stop."""
        return self._stop_deadline is not None

    @contextmanager
    def shutdown_grace(self) -> Iterator[trio.CancelScope]:
        """A shielded scope for clean-up that lasts at most until the child's shutdown budget ends.

        While the supervisor stops the child, the scope's deadline is the end of the budget; when
        the child ends on its own (a crash, a return) the budget counts from now. A killed child's
        grace scopes are cancelled at once.
        """
        if self._stop_deadline is not None:
            deadline = self._stop_deadline
        else:
            deadline = trio.current_time() + self.spec.shutdown_seconds
        scope = trio.CancelScope(shield=True, deadline=deadline)
        if self._killed:
            scope.cancel()
        self._grace_scopes.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._grace_scopes.discard(scope)

    @contextmanager
    def shield_until_killed(self) -> Iterator[trio.CancelScope]:
        """A shielded scope that only the kill cancels (no deadline): for work that must outlive
        the graceful stop request, such as jobs finishing within a grace period of their own."""
        scope = trio.CancelScope(shield=True)
        if self._killed:
            scope.cancel()
        self._grace_scopes.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._grace_scopes.discard(scope)

    def _begin_stop(self, deadline: float) -> None:
        self._stop_deadline = deadline
        for scope in self._grace_scopes:
            if scope.deadline != math.inf:  # shutdown_grace scopes; shield_until_killed ones have none
                scope.deadline = min(scope.deadline, deadline)

    def _kill(self) -> None:
        self._killed = True
        for scope in list(self._grace_scopes):
            scope.cancel()


_current_child: ContextVar[ChildContext | None] = ContextVar("aria_current_child", default=None)


def current_child() -> ChildContext | None:
    """The context of the supervised child whose task (or sub-task) is running, if any."""
    return _current_child.get()


@contextmanager
def shutdown_grace() -> Iterator[trio.CancelScope]:
    """Shield clean-up code for the rest of the current child's shutdown budget.

    Use it in ``finally`` blocks that must await::

        try:
            await serve()
        finally:
            with shutdown_grace():
                await connection.aclose()

    Outside a supervised child it is a plain shielded scope.
    """
    context = _current_child.get()
    if context is None:
        with trio.CancelScope(shield=True) as scope:
            yield scope
    else:
        with context.shutdown_grace() as scope:
            yield scope


@contextmanager
def shield_until_killed() -> Iterator[trio.CancelScope]:
    """Shield work from the graceful stop of the current child; only its kill cancels it.

    The work must end by itself when told (the child decides how long to wait); outside a
    supervised child it is a plain shielded scope.
    """
    context = _current_child.get()
    if context is None:
        with trio.CancelScope(shield=True) as scope:
            yield scope
    else:
        with context.shield_until_killed() as scope:
            yield scope


@dataclass(frozen=True)
class ExitReason:
    """Why a child's start function ended.

    ``kind`` is ``normal`` (it returned), ``shutdown`` (the supervisor stopped it), ``killed`` (it
    overran its shutdown budget) or ``crash`` (it raised; ``error`` holds the exception).
    """

    kind: str
    error: BaseException | None = None

    @property
    def abnormal(self) -> bool:
        return self.kind == "crash"

    def __str__(self) -> str:
        if self.error is None:
            return self.kind
        return describe_error(self.error)


def describe_error(error: BaseException) -> str:
    """One line naming an exception's type and message (the innermost of a single-member group)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Child:
    """A supervisor's record of one child across its restarts."""

    def __init__(self, spec: ChildSpec, path: str) -> None:
        self.spec = spec
        self.path = path
        self.state = ChildState.STOPPED
        self.handle: object = None
        self.scope: trio.CancelScope | None = None
        self.context: ChildContext | None = None
        self.generation = 0
        self.restarts = 0
        self.started_at: float | None = None
        self.last_error: str | None = None
        self.exited = trio.Event()
        self.exited.set()
        self.stopping = False
        self.kill_requested = False
        self.stop_deadline = math.inf
        self.ever_started = False

    @property
    def alive(self) -> bool:
        return not self.exited.is_set()

    def kill(self) -> None:
        if self.scope is not None:
            self.scope.cancel()
        if self.context is not None:
            self.context._kill()
