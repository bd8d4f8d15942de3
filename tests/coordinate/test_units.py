"""The gateway's parts on their own: token buckets, the circuit breaker, and the dispatch that puts
a deadline on every view and retries idempotent requests that meet a restarting app."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from quart import Blueprint, jsonify
from werkzeug.exceptions import RequestEntityTooLarge

from aria.apps.coordinate.gateway import BUFFER_HIGH_WATER, GatewayApp, GatewayBody
from aria.apps.coordinate.ratelimit import CircuitBreaker, RateLimiter
from aria.errors import ServiceUnavailable


class TestRateLimiter:
    def test_a_burst_then_the_rate(self) -> None:
        limiter = RateLimiter(rate=2.0, burst=3)
        key = ("alice", "/api/v1/x")
        verdicts = [limiter.take(key, now=100.0) for _ in range(4)]
        assert [v.allowed for v in verdicts] == [True, True, True, False]
        assert [v.remaining for v in verdicts[:3]] == [2, 1, 0]
        assert verdicts[3].retry_after == pytest.approx(0.5)  # one token at 2/s
        assert verdicts[3].reset == pytest.approx(1.5)  # three tokens at 2/s
        assert limiter.take(key, now=100.49).allowed is False
        assert limiter.take(key, now=100.5).allowed is True
        assert limiter.take(("bob", "/api/v1/x"), now=100.5).remaining == 2  # buckets are per principal
        assert limiter.take(("alice", "/api/v1/y"), now=100.5).remaining == 2  # and per route

    def test_a_bucket_never_holds_more_than_the_burst(self) -> None:
        limiter = RateLimiter(rate=10.0, burst=2)
        limiter.take(("a", "r"), now=0.0)
        assert limiter.take(("a", "r"), now=3600.0).remaining == 1

    def test_the_least_recently_used_keys_are_forgotten(self) -> None:
        limiter = RateLimiter(rate=1.0, burst=1, max_keys=2)
        for name in ("a", "b", "c"):
            assert limiter.take((name, "r"), now=0.0).allowed
        assert not limiter.take(("c", "r"), now=0.0).allowed  # still remembered: empty
        assert limiter.take(("a", "r"), now=0.0).allowed  # forgotten: a fresh bucket


class TestCircuitBreaker:
    def test_opens_after_consecutive_failures_then_probes_once(self) -> None:
        breaker = CircuitBreaker(threshold=3, cooldown=5.0)
        for _ in range(2):
            breaker.record("aria_queue", ok=False, now=0.0)
        breaker.record("aria_queue", ok=True, now=0.0)  # a success resets the count
        for _ in range(3):
            assert breaker.check("aria_queue", now=1.0) == 0.0
            breaker.record("aria_queue", ok=False, now=1.0)
        assert breaker.state("aria_queue") == "open"
        assert breaker.check("aria_queue", now=2.0) == 4.0  # Retry-After: the rest of the cooldown
        assert breaker.check("aria_storage", now=2.0) == 0.0  # per app
        assert breaker.check("aria_queue", now=6.0) == 0.0  # half-open: one probe goes through
        assert breaker.check("aria_queue", now=6.0) > 0  # and only one
        breaker.record("aria_queue", ok=False, now=6.0)  # the probe failed: open again
        assert breaker.check("aria_queue", now=7.0) == 4.0
        assert breaker.check("aria_queue", now=11.0) == 0.0
        breaker.record("aria_queue", ok=True, now=11.0)  # the probe succeeded: closed
        assert breaker.state("aria_queue") == "closed"
        assert breaker.check("aria_queue", now=11.0) == 0.0


def gateway_app(*, timeout: float, retries: int, calls: list[str], failures: int) -> GatewayApp:
    app = GatewayApp(__name__)
    app.request_timeout = timeout
    app.retries = retries
    routes = Blueprint("test", __name__)

    @routes.route("/flaky", methods=["GET", "POST"])
    async def flaky() -> object:
        calls.append("flaky")
        if len(calls) <= failures:
            raise ServiceUnavailable("aria_queue", 0.0)
        return jsonify({"ok": True})

    @routes.get("/slow")
    async def slow() -> object:
        await trio.sleep(3600)
        return jsonify({"ok": True})

    app.register_blueprint(routes)
    return app


class TestDispatch:
    async def test_idempotent_requests_are_retried_while_the_app_restarts(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        calls: list[str] = []
        client = gateway_app(timeout=30, retries=2, calls=calls, failures=2).test_client()
        response = await client.get("/flaky")
        assert response.status_code == 200 and len(calls) == 3

    async def test_retries_run_out_with_503_and_writes_are_not_retried(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        calls: list[str] = []
        client = gateway_app(timeout=30, retries=2, calls=calls, failures=10).test_client()
        response = await client.get("/flaky")
        assert response.status_code == 503 and response.headers["Retry-After"] == "2"
        assert len(calls) == 3
        calls.clear()
        response = await client.post("/flaky")
        assert response.status_code == 503 and len(calls) == 1  # a write may have happened

    async def test_a_view_past_the_deadline_answers_504(self, autojump_clock: trio.abc.Clock) -> None:
        client = gateway_app(timeout=2.5, retries=2, calls=[], failures=0).test_client()
        began = trio.current_time()
        response = await client.get("/slow")
        assert response.status_code == 504
        assert (await response.get_json())["error"] == "timeout"
        assert trio.current_time() - began == pytest.approx(2.5)


async def send(body: GatewayBody, data: bytes, piece: int) -> None:
    """What the gateway's receiver does with the pieces hypercorn hands it."""
    for offset in range(0, len(data), piece):
        body.append(data[offset : offset + piece])
        await body.wait_for_room()
    body.set_complete()


class TestRequestBody:
    async def test_a_streamed_body_is_limited_by_every_byte_received(self) -> None:
        body = GatewayBody(None, None)
        body.set_limit(10)
        body.append(b"123456")
        assert await body.__anext__() == b"123456"  # the view took it: nothing is buffered now
        body.append(b"789012")
        with pytest.raises(RequestEntityTooLarge):
            await body.__anext__()

    async def test_a_streaming_view_holds_back_the_receiver(self, autojump_clock: trio.abc.Clock) -> None:
        body = GatewayBody(None, 16 * 1024 * 1024)
        body.set_limit(None)
        data = bytes(range(256)) * (20 * 1024)  # 5 MiB
        piece = 64 * 1024
        buffered: list[int] = []
        received = bytearray()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send, body, data, piece)
            async for chunk in body:
                buffered.append(len(chunk))
                received += chunk
                await trio.sleep(0.01)  # a slow consumer (virtual time)
        assert received == data
        assert max(buffered) <= BUFFER_HIGH_WATER + piece

    async def test_a_view_that_awaits_the_whole_body_gets_it(self) -> None:
        body = GatewayBody(None, 16 * 1024 * 1024)
        data = b"x" * (3 * BUFFER_HIGH_WATER)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send, body, data, 64 * 1024)
            await trio.testing.wait_all_tasks_blocked()
            # Until the gateway knows the view, the receiver pauses at the high-water mark.
            assert BUFFER_HIGH_WATER <= len(body._data) <= BUFFER_HIGH_WATER + 64 * 1024
            body.set_limit(16 * 1024 * 1024)
            assert await body == data

    async def test_a_body_beyond_the_limit_set_late_is_refused(self) -> None:
        body = GatewayBody(None, None)
        body.append(b"x" * 100)
        body.set_limit(50)
        with pytest.raises(RequestEntityTooLarge):
            await body
