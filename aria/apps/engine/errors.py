"""The errors aria_engine raises on purpose.

* ``EngineError`` (an :class:`aria.errors.AriaError`): the root of the engine's branch.

  * ``DomainError`` (also a ``ValueError``): a domain is malformed or misbehaved while planning: a todo
    item names nothing declared, a method returned something that is not a list, False or None, an
    action raised or returned garbage, a goal method did not achieve its goal. The message names the
    item, the method or action, and what it did.
  * ``UnknownDomain`` (also a ``KeyError``): no domain of that name is registered.
  * ``SerializationError`` (also a ``ValueError``): a state, todo list or plan cannot be turned into
    JSON, or JSON cannot be turned back into one.
  * ``LimitTooHigh`` (also a ``ValueError``): a synchronous request asks for more expansions or time
    than synchronous planning allows (submit it to the planning queue instead).
  * ``RequestNotFound`` (also a ``KeyError``): no stored planning request has that id.
  * ``RequestFinished``: a finished planning request cannot be cancelled.
  * ``PlanningQueueUnavailable``: this node runs aria_engine without aria_data and aria_queue, so it
    cannot take queued requests.
  * ``EngineStopped``: aria_engine stopped (or restarted) while planning; a queued request's job fails
    this attempt and the queue retries it.

Misuse of the API itself (a node that is not part of the tree passed to ``replan``, a negative limit)
raises :class:`aria.errors.UsageError`, ``ValueError`` or ``TypeError``.
"""

from __future__ import annotations

from aria.errors import AriaError


class EngineError(AriaError):
    """Base class of the errors aria_engine raises deliberately."""


class DomainError(EngineError, ValueError):
    """A domain's knowledge is malformed or raised while planning; the message names the culprit."""


class UnknownDomain(EngineError, KeyError):
    """No domain of that name is registered with the engine."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(
            f"no planning domain named {name!r} (registered: {', '.join(sorted(known)) or 'none'})"
        )

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])


class SerializationError(EngineError, ValueError):
    """A value cannot be converted to or from the engine's JSON form; the message says which and why."""


class LimitTooHigh(EngineError, ValueError):
    """A synchronous planning request asks for more than synchronous planning allows."""


class RequestNotFound(EngineError, KeyError):
    """No stored planning request has that id."""

    def __init__(self, request_id: str, detail: str = "") -> None:
        self.request_id = request_id
        super().__init__(f"no planning request {request_id!r}{detail}")

    def __str__(self) -> str:
        return str(self.args[0])


class RequestFinished(EngineError):
    """The planning request is finished; it cannot be cancelled any more."""


class PlanningQueueUnavailable(EngineError):
    """Queued planning needs aria_data and aria_queue, which this node does not run."""


class EngineStopped(EngineError):
    """aria_engine stopped while planning (a queued request is retried by the queue)."""
