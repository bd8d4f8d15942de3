"""Every error Aria raises on purpose, in one tree.

* ``AriaError``: the root; catch it to catch anything Aria raised deliberately.

  * ``ConfigError`` (also a ``ValueError``): the configuration is invalid; the message names the key,
    the bad value and what is allowed.
  * ``SupervisorError``: the supervision tree could not do what was asked.

    * ``StartError``: a child raised, returned, or timed out before it reported ready.
    * ``Escalation``: a supervisor exceeded its restart intensity and gave up.
    * ``ChildProcessExited``: an OS-process child exited without being asked to.

  * ``ServiceError``: talking to a named service failed.

    * ``ServiceUnavailable``: the service is not running and did not come back in time.
    * ``NoSuchService``: no service of that name is part of this system.

  * ``UsageError`` (also a ``RuntimeError``): the API was misused (a name registered twice, an
    operation on a child that does not exist). These are bugs in the caller, not the environment.

    * ``NameAlreadyRegistered``
    * ``UnknownChild``

Environmental failures (the first three branches) can happen in correct programs; ``UsageError``
means the calling code must change. Apps add their own branches by subclassing ``AriaError``.
"""

from __future__ import annotations


class AriaError(Exception):
    """Base class of every error Aria raises deliberately."""


class ConfigError(AriaError, ValueError):
    """Raised by :func:`aria.config.load` when a key is unknown or a value is not allowed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"invalid configuration: {self.problems[0]}"
        else:
            message = "invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class SupervisorError(AriaError):
    """Base class for failures of the supervision tree."""


class StartError(SupervisorError):
    """Raised when a child fails to become ready: it raised, returned early, or ran out of time.

    ``child_id`` names the child (as a path from the root where known) and ``__cause__`` holds the
    original exception when there was one.
    """

    def __init__(self, child_id: str, reason: str) -> None:
        self.child_id = child_id
        self.reason = reason
        super().__init__(f"child {child_id!r} failed to start: {reason}")


class Escalation(SupervisorError):
    """Raised by a supervisor that saw more than ``intensity`` restarts within ``period`` seconds.

    The supervisor has already stopped all its children in reverse start order; its parent decides
    what happens next, as in OTP.
    """

    def __init__(self, supervisor_id: str, intensity: int, period: float, last_child: str, reason: str):
        self.supervisor_id = supervisor_id
        self.last_child = last_child
        self.reason = reason
        super().__init__(
            f"supervisor {supervisor_id!r} reached its restart intensity "
            f"(more than {intensity} restarts in {period:g} s); last failure: child {last_child!r}: {reason}"
        )


class ChildProcessExited(SupervisorError):
    """Raised inside an OS-process child when its program exits without being asked to."""

    def __init__(self, child_id: str, returncode: int, tail: list[str]) -> None:
        self.child_id = child_id
        self.returncode = returncode
        self.tail = tail
        how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
        detail = f"; last output: {' | '.join(tail[-5:])}" if tail else ""
        super().__init__(f"process {child_id!r} {how}{detail}")


class ServiceError(AriaError):
    """Base class for failures talking to a named service."""


class ServiceUnavailable(ServiceError):
    """Raised when a service is not running and did not become available within the timeout."""

    def __init__(self, name: str, waited: float) -> None:
        self.name = name
        self.waited = waited
        super().__init__(f"service {name!r} is not running (waited {waited:g} s for it)")


class NoSuchService(ServiceError):
    """Raised when no service of that name is part of the running system."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        known_text = ", ".join(sorted(known)) or "none"
        super().__init__(f"no service named {name!r} in this system (known: {known_text})")


class UsageError(AriaError, RuntimeError):
    """Base class for misuse of Aria's API: the calling code must change."""


class NameAlreadyRegistered(UsageError):
    """Raised when a name is registered while another live service holds it."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"the name {name!r} is already registered to a running service")


class UnknownChild(UsageError):
    """Raised when a supervisor is asked about a child id it does not have."""

    def __init__(self, supervisor_id: str, child_id: str) -> None:
        super().__init__(f"supervisor {supervisor_id!r} has no child {child_id!r}")
