"""Password hashing (argon2id) and the in-memory throttle of failed attempts per client address.

Hashing is CPU- and memory-heavy by design, so it runs in a worker thread (argon2-cffi releases the
GIL). Unknown user names are checked against a dummy hash with the same parameters, so the time a
failed login takes does not reveal whether the account exists.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import argon2
import trio
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MAX_PASSWORD_LENGTH = 1024


@dataclass(frozen=True)
class Argon2Parameters:
    """argon2id cost: ``time_cost`` passes over ``memory_kib`` KiB with ``parallelism`` lanes."""

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 4

    def describe(self) -> str:
        return f"argon2id t={self.time_cost} m={self.memory_kib} KiB p={self.parallelism}"


class Passwords:
    """argon2id hashing and verification with fixed parameters; hashes made with weaker ones are
    flagged for re-hashing at the next successful login."""

    def __init__(self, parameters: Argon2Parameters, min_length: int = 12) -> None:
        self.parameters = parameters
        self.min_length = min_length
        self._hasher = argon2.PasswordHasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_kib,
            parallelism=parameters.parallelism,
            hash_len=32,
            salt_len=16,
            type=argon2.Type.ID,
        )
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def check_new(self, password: object, user: str) -> str:
        """Validate a password being set.

        Raises:
            ValueError: if it is not a string, too short, too long, or equal to the user name.
        """
        if not isinstance(password, str):
            raise TypeError(f"the password of {user!r} must be a string")
        if len(password) < self.min_length:
            raise ValueError(f"the password of {user!r} must have at least {self.min_length} characters")
        if len(password) > MAX_PASSWORD_LENGTH:
            raise ValueError(f"the password of {user!r} must have at most {MAX_PASSWORD_LENGTH} characters")
        if password.casefold() == user.casefold():
            raise ValueError(f"the password of {user!r} must not be the user name")
        return password

    async def hash(self, password: str) -> str:
        return await trio.to_thread.run_sync(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored_hash``; with no hash (unknown user, no password
        set) it spends the same time on a dummy hash and answers False."""
        if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
            password = ""
        target = stored_hash or self._dummy

        def check() -> bool:
            try:
                return bool(self._hasher.verify(target, password))
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        matched = await trio.to_thread.run_sync(check)
        return matched and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)


def digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret (refresh and API tokens, codes): safe to store and look up.

    Low-entropy secrets (passwords) go through :class:`Passwords` instead."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison of two secrets."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


@dataclass
class _Window:
    failures: list[float]
    locked_until: float = 0.0


class Throttle:
    """Failed attempts per key (a client address, or an unknown user name) in a sliding window.

    ``max_failures`` failures within ``window`` seconds lock the key for ``lockout`` seconds.
    Kept in memory on each node: it slows down guessing from one address; the per-account lockout,
    stored in the database, is what a fleet shares.
    """

    def __init__(self, max_failures: int, window: float, lockout: float, max_keys: int = 100_000) -> None:
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.max_keys = max_keys
        self._keys: dict[str, _Window] = {}

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again; 0 when it is not locked."""
        state = self._keys.get(key)
        if state is None:
            return 0.0
        return max(0.0, state.locked_until - now)

    def failed(self, key: str, now: float) -> float:
        """Record a failure; returns the lockout now in force for ``key`` (0 if none)."""
        state = self._keys.get(key)
        if state is None:
            if len(self._keys) >= self.max_keys:
                self._forget_stale(now)
            state = self._keys[key] = _Window([])
        state.failures = [t for t in state.failures if now - t < self.window]
        state.failures.append(now)
        if len(state.failures) >= self.max_failures:
            state.locked_until = now + self.lockout
            state.failures.clear()
        return self.retry_after(key, now)

    def succeeded(self, key: str) -> None:
        self._keys.pop(key, None)

    def _forget_stale(self, now: float) -> None:
        stale = [
            k
            for k, s in self._keys.items()
            if s.locked_until <= now and all(now - t >= self.window for t in s.failures)
        ]
        for key in stale:
            del self._keys[key]
        if len(self._keys) >= self.max_keys:  # still full: drop the oldest half rather than grow
            for key in list(self._keys)[: self.max_keys // 2]:
                del self._keys[key]
