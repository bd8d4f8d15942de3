"""Token buckets per (principal, route), and a circuit breaker per app."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple


@dataclass
class Bucket:
    tokens: float
    updated: float


class Verdict(NamedTuple):
    """A named tuple: the gateway makes one per request, and tuples are the cheapest to make."""

    allowed: bool
    limit: int
    remaining: int
    reset: float  # seconds until the bucket is full again
    retry_after: float  # seconds until one request is allowed (0 when allowed)


class RateLimiter:
    """``rate`` requests per second with bursts of ``burst``, per key; the least recently used keys
    are forgotten beyond ``max_keys``."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[tuple[str, str], Bucket] = OrderedDict()

    def take(self, key: tuple[str, str], now: float) -> Verdict:
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = Bucket(float(self.burst), now)
            if len(buckets) > self.max_keys:
                buckets.popitem(last=False)
        else:
            buckets.move_to_end(key)
        tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        bucket.tokens, bucket.updated = tokens, now
        return Verdict(
            allowed,
            self.burst,
            int(tokens),
            (self.burst - tokens) / self.rate,
            0.0 if allowed else (1.0 - tokens) / self.rate,
        )


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures of an app; while open, requests are answered
    503 at once. After ``cooldown`` seconds one request is let through (half-open): its success
    closes the circuit, its failure opens it again."""

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._failures: dict[str, int] = {}
        self._opened: dict[str, float] = {}
        self._probing: set[str] = set()

    def check(self, app: str, now: float) -> float:
        """0 to go ahead, else the seconds to wait (for Retry-After)."""
        opened = self._opened.get(app)
        if opened is None:
            return 0.0
        if now - opened >= self.cooldown and app not in self._probing:
            self._probing.add(app)
            return 0.0
        return max(1.0, math.ceil(self.cooldown - (now - opened)))

    def record(self, app: str, ok: bool, now: float) -> None:
        self._probing.discard(app)
        if ok:
            self._failures.pop(app, None)
            self._opened.pop(app, None)
            return
        self._failures[app] = self._failures.get(app, 0) + 1
        if self._failures[app] >= self.threshold:
            self._opened[app] = now

    def state(self, app: str) -> str:
        return "open" if app in self._opened else "closed"
