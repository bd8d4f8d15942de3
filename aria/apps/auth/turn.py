"""TURN credentials in the TURN REST API scheme (as coturn's ``use-auth-secret`` checks them).

The user name is ``<expiry unix time>:<user>`` and the password is
``base64(HMAC-SHA1(shared secret, user name))``; the TURN server recomputes it with the same shared
secret and refuses it after the expiry. The shared secret lives in aria_security.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any


def turn_password(shared_secret: bytes, username: str) -> str:
    return base64.b64encode(hmac.new(shared_secret, username.encode(), hashlib.sha1).digest()).decode()


def turn_credentials(
    shared_secret: bytes, user: str, *, ttl: int, now: float, uris: list[str]
) -> dict[str, Any]:
    """Credentials for ``user`` valid ``ttl`` seconds from ``now``.

    Raises:
        ValueError: if ``user`` contains ':' (it separates the expiry) or ``ttl`` is not positive.
    """
    if not user or ":" in user:
        raise ValueError(f"a TURN user {user!r} must be non-empty and contain no ':'")
    if ttl <= 0:
        raise ValueError(f"a TURN credential's ttl must be positive, not {ttl!r}")
    expiry = int(now) + int(ttl)
    username = f"{expiry}:{user}"
    return {
        "username": username,
        "credential": turn_password(shared_secret, username),
        "ttl": int(ttl),
        "expires_at": expiry,
        "uris": list(uris),
    }


def check_turn_credentials(shared_secret: bytes, username: str, credential: str, now: float) -> bool:
    """What a TURN server does: recompute the password and check the expiry (constant-time)."""
    expiry, _, user = username.partition(":")
    if not expiry.isdigit() or not user or int(expiry) < now:
        return False
    return hmac.compare_digest(turn_password(shared_secret, username).encode(), credential.encode())
