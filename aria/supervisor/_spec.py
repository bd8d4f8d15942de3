"""Child specifications: what a supervisor needs to know to start, restart and stop a child.

The vocabulary is OTP's ("Supervisor Behaviour" in the Erlang/OTP Design Principles): a child
specification has an ``id``, a ``start`` function, a ``restart`` type, a ``shutdown`` budget, a
``type`` and a ``significant`` flag. Aria adds ``start_timeout`` (OTP has none; an init that hangs
hangs the supervisor) and ``name``, the registered name under which the child's handle is published.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

BRUTAL_KILL: Literal["brutal_kill"] = "brutal_kill"
"""Shutdown value: the child is killed at once, without a grace period."""

INFINITY: Literal["infinity"] = "infinity"
"""Shutdown value: the supervisor waits for the child as long as it takes (default for supervisors)."""

DEFAULT_WORKER_SHUTDOWN = 5.0
DEFAULT_START_TIMEOUT = 60.0

Shutdown = float | Literal["brutal_kill", "infinity"]


class Restart(enum.Enum):
    """When a child that exits is restarted (OTP's restart type)."""

    PERMANENT = "permanent"
    """Always restarted."""
    TRANSIENT = "transient"
    """Restarted only after an abnormal exit (an exception); a normal return ends it."""
    TEMPORARY = "temporary"
    """Never restarted."""


class ChildType(enum.Enum):
    """Whether a child is a worker or a supervisor (affects the default shutdown and introspection)."""

    WORKER = "worker"
    SUPERVISOR = "supervisor"


class Strategy(enum.Enum):
    """What a supervisor restarts when one child dies (OTP's restart strategy)."""

    ONE_FOR_ONE = "one_for_one"
    """Only the child that died."""
    ONE_FOR_ALL = "one_for_all"
    """All children: the others are stopped in reverse start order, then all start again in order."""
    REST_FOR_ONE = "rest_for_one"
    """The child that died and every child started after it."""


class AutoShutdown(enum.Enum):
    """Whether the exit of significant children stops their supervisor (OTP 24's auto_shutdown)."""

    NEVER = "never"
    """Significant children are not allowed."""
    ANY_SIGNIFICANT = "any_significant"
    """The supervisor stops when any significant child exits and is not restarted."""
    ALL_SIGNIFICANT = "all_significant"
    """The supervisor stops when every significant child has exited and none is restarted."""


StartFunction = Callable[..., Awaitable[Any]]


def _coerce_enum(enum_type: type[enum.Enum], value: object, field_name: str, child_id: str) -> Any:
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum_type)
        raise ValueError(f"child {child_id!r}: {field_name}={value!r} is not one of {allowed}") from None


@dataclass(frozen=True)
class ChildSpec:
    """How to start, restart and stop one child.

    Args:
        id: The child's identifier, unique within its supervisor.
        start: An async function called as ``await start(*args, task_status=...)``. It must call
            ``task_status.started(handle)`` once the child is ready to serve (the supervisor starts
            the next child only then), and then keep running for as long as the child lives. Its
            return is a normal exit; an exception is an abnormal exit (a crash).
        args: Positional arguments for ``start``.
        restart: ``permanent``, ``transient`` or ``temporary`` (see :class:`Restart`).
        shutdown: The stop budget: seconds of grace after the stop request before the child is
            killed, ``"brutal_kill"`` to kill at once, or ``"infinity"`` to wait as long as it takes.
            Defaults to 5 s for workers and infinity for supervisors, as in OTP.
        type: ``worker`` or ``supervisor``.
        significant: Whether the child's exit may stop its supervisor (see :class:`AutoShutdown`).
            Only transient and temporary children can be significant.
        start_timeout: Seconds the child has to call ``task_status.started()``; past it the start
            fails with :class:`~aria.errors.StartError`.
        name: If set, the handle passed to ``started()`` is registered under this name while the
            child runs, so :func:`aria.whereis` finds it.
        kind: A label for introspection (``worker``, ``supervisor``, ``process``); defaults to
            ``type``.

    Raises:
        ValueError: at construction, if a field is out of range or a combination is impossible.
        TypeError: at construction, if ``start`` is not callable.
    """

    id: str
    start: StartFunction
    args: tuple[Any, ...] = ()
    restart: Restart = Restart.PERMANENT
    shutdown: Shutdown | None = None
    type: ChildType = ChildType.WORKER
    significant: bool = False
    start_timeout: float = DEFAULT_START_TIMEOUT
    name: str | None = None
    kind: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"a child id must be a non-empty string, not {self.id!r}")
        if not callable(self.start):
            raise TypeError(f"child {self.id!r}: start must be an async function, not {self.start!r}")
        object.__setattr__(self, "restart", _coerce_enum(Restart, self.restart, "restart", self.id))
        object.__setattr__(self, "type", _coerce_enum(ChildType, self.type, "type", self.id))
        object.__setattr__(self, "args", tuple(self.args))
        shutdown = self.shutdown
        if shutdown is None:
            shutdown = INFINITY if self.type is ChildType.SUPERVISOR else DEFAULT_WORKER_SHUTDOWN
        elif isinstance(shutdown, str):
            if shutdown not in (BRUTAL_KILL, INFINITY):
                raise ValueError(
                    f"child {self.id!r}: shutdown={shutdown!r} must be seconds, 'brutal_kill' or 'infinity'"
                )
        elif isinstance(shutdown, bool) or not isinstance(shutdown, int | float) or shutdown < 0:
            raise ValueError(f"child {self.id!r}: shutdown={shutdown!r} must be a number of seconds >= 0")
        else:
            shutdown = float(shutdown)
        object.__setattr__(self, "shutdown", shutdown)
        if not (isinstance(self.start_timeout, int | float) and self.start_timeout > 0):
            raise ValueError(f"child {self.id!r}: start_timeout={self.start_timeout!r} must be > 0 seconds")
        if self.significant and self.restart is Restart.PERMANENT:
            raise ValueError(
                f"child {self.id!r}: a significant child must be transient or temporary, not permanent"
            )
        if not self.kind:
            object.__setattr__(self, "kind", self.type.value)

    @property
    def shutdown_seconds(self) -> float:
        """The grace budget in seconds: 0 for brutal_kill, ``math.inf`` for infinity."""
        if self.shutdown == BRUTAL_KILL:
            return 0.0
        if self.shutdown == INFINITY:
            return math.inf
        assert isinstance(self.shutdown, float)
        return self.shutdown
