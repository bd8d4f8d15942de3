"""aria.logging: one JSON object per line with context, UTC timestamps, and the dashboard's tail."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime

import pytest
import structlog

import aria.logging


@pytest.fixture
def lines() -> io.StringIO:
    stream = io.StringIO()
    aria.logging.configure("info", "json", stream=stream)
    return stream


def logged(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_carries_bound_context_until_unbound(lines: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(request_id="r-1", app="aria_test")
    try:
        structlog.get_logger("aria.test").info("first", n=1)
        structlog.contextvars.unbind_contextvars("request_id")
        structlog.get_logger("aria.test").info("second", app="given wins")
    finally:
        structlog.contextvars.clear_contextvars()
    first, second = logged(lines)
    assert first["event"] == "first" and first["n"] == 1 and first["level"] == "info"
    assert first["request_id"] == "r-1" and first["app"] == "aria_test"
    assert "request_id" not in second
    assert second["app"] == "given wins"  # an explicit value is not overwritten by the context


def test_timestamps_are_utc_iso_8601_with_microseconds(lines: io.StringIO) -> None:
    before = datetime.now(UTC)
    structlog.get_logger("aria.test").info("stamped")
    after = datetime.now(UTC)
    (line,) = logged(lines)
    stamp = str(line["timestamp"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert before.replace(microsecond=0) <= when <= after


def test_the_tail_keeps_json_safe_copies_in_order(lines: io.StringIO) -> None:
    last = aria.logging.TAIL.since(0)[-1]["seq"] if aria.logging.TAIL.since(0) else 0

    class Thing:
        def __str__(self) -> str:
            return "a thing"

    log = structlog.get_logger("aria.test")
    log.info("with an object", thing=Thing(), ok=True, count=3)
    try:
        int("boom")
    except ValueError:
        log.exception("failed")
    first, second = aria.logging.TAIL.since(last)
    assert first["thing"] == "a thing" and first["ok"] is True and first["count"] == 3
    assert second["event"] == "failed" and "exc_info" not in second
    assert second["seq"] == first["seq"] + 1
    assert "invalid literal for int()" in lines.getvalue()  # the line itself still renders the exception
