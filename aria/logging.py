"""Structured logging for the whole process, configured once at boot.

Every line is one event with key/value context. On a terminal the console renderer draws it for
people; anywhere else each line is a JSON object for machines. ``child`` and ``app`` are bound as
context variables when a supervised child starts, so every line a child's tasks log carries them.
Messages from the standard library's ``logging`` (hypercorn, asyncpg, ...) pass through the same
processors and renderer.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from collections import deque
from typing import Any, TextIO

import orjson
import structlog

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("auto", "console", "json")

_handler: logging.Handler | None = None


class LogTail:
    """The most recent log events, kept in memory for the dashboard's live log view.

    It is a structlog processor: it records a JSON-safe copy of each event with a sequence number
    and passes the event on unchanged. Appending is thread-safe (worker threads log too); readers
    ask for what came after the last sequence number they saw.
    """

    def __init__(self, size: int = 2000) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=size)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        entry = event.copy()
        entry.pop("exc_info", None)
        entry.pop("stack_info", None)
        for key, value in entry.items():
            if type(value) not in _PLAIN_TYPES:
                entry[key] = _plain(value)  # replacing a value while iterating is allowed
        with self._lock:
            entry["seq"] = next(self._counter)
            self._events.append(entry)
        return event

    def since(self, seq: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        with self._lock:
            newer = [entry for entry in self._events if entry["seq"] > seq]
        return newer[-limit:]


_PLAIN_TYPES = frozenset({type(None), bool, int, float, str})


def _plain(value: Any) -> Any:
    # An exact type test: this runs for every value of every log line.
    if type(value) in _PLAIN_TYPES or isinstance(value, bool | int | float | str):
        return value
    return str(value)


TAIL = LogTail()
"""Every event logged in this process (after configure()), for aria_monitor's log view."""


# structlog's own registry of the context variables bind_contextvars() made (private; absent in some
# future release, the public merge_contextvars takes over).
_BOUND_VARIABLES: dict[str, Any] | None = getattr(structlog.contextvars, "_CONTEXT_VARS", None)
_PREFIX_LENGTH = len(getattr(structlog.contextvars, "STRUCTLOG_KEY_PREFIX", "structlog_"))


def _merge_bound_context(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog.contextvars.merge_contextvars, reading only the variables structlog made.

    The public one walks every context variable of the task (trio's, Quart's, ...): a third of
    the cost of the gateway's per-request log line.
    """
    assert _BOUND_VARIABLES is not None
    for name, variable in tuple(_BOUND_VARIABLES.items()):
        value = variable.get(Ellipsis)
        if value is not Ellipsis:
            event.setdefault(name[_PREFIX_LENGTH:], value)
    return event


class _UTCTimestamp:
    """``timestamp`` as ISO 8601 in UTC with microseconds (``2026-11-26T13:49:40.123456Z``), the
    whole seconds formatted once per second rather than once per line."""

    def __init__(self) -> None:
        self._cached: tuple[int, str] = (-1, "")  # one attribute: worker threads log too

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        second = int(now)
        cached_second, prefix = self._cached
        if second != cached_second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._cached = (second, prefix)
        event["timestamp"] = f"{prefix}.{int((now - second) * 1_000_000):06d}Z"
        return event


def _processors(json_output: bool) -> list[Any]:
    processors: list[Any] = [
        _merge_bound_context if _BOUND_VARIABLES is not None else structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _UTCTimestamp(),
        TAIL,
        structlog.processors.StackInfoRenderer(),
    ]
    if json_output:
        # Never render local variables: they are slow to render and may hold secrets.
        processors.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
    return processors


def configure(level: str = "info", format: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog and the standard library's logging for this process.

    Args:
        level: The lowest level written (``debug``, ``info``, ``warning``, ``error``).
        format: ``console`` (for people), ``json`` (one object per line), or ``auto``: console when
            ``stream`` is a terminal, JSON otherwise.
        stream: Where lines go; standard error by default.

    Raises:
        ValueError: for an unknown level or format.
    """
    global _handler
    if level not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    if format not in FORMATS:
        raise ValueError(f"log format {format!r} is not one of {', '.join(FORMATS)}")
    stream = stream if stream is not None else sys.stderr
    json_output = format == "json" or (format == "auto" and not _isatty(stream))
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if json_output
        else structlog.dev.ConsoleRenderer(
            colors=_isatty(stream), exception_formatter=structlog.dev.plain_traceback
        )
    )
    shared = _processors(json_output)
    numeric_level = getattr(logging, level.upper())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(stream)
    _handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root.addHandler(_handler)
    # Libraries are chatty at INFO; their warnings still come through.
    root.setLevel(max(numeric_level, logging.WARNING))


def _dumps(event: Any, **_: Any) -> str:
    # orjson: several times faster than the standard library on the per-request log line.
    return orjson.dumps(event, default=str).decode()


def reset() -> None:
    """Undo :func:`configure` (tests use it to start from a clean slate)."""
    global _handler
    structlog.reset_defaults()
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler = None


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
