"""The Python API of aria_auth, for other apps (the gateway above all) and scripts.

``aria.whereis("aria_auth")`` (or ``ctx.api("aria_auth")``) is the :class:`AuthService`::

    auth = ctx.api("aria_auth")
    principal = await auth.verify_token(bearer)            # cached JWKS, no OpenBao round trip
    principal = await auth.verify_api_token("aria_pat_...")
    decision = await auth.authorize(principal, "read", Resource("storage.chunks", id, owner=...),
                                    {"ip": client_ip, "request_id": rid})
    if not decision: ...                                   # decision.reason says why
    records = await auth.audit(principal="alice", kind="authz", limit=50)
    tokens = await auth.issue_service_token("aria_queue")  # an app's own access token

The routes are ``create_blueprint(auth)`` (``aria.apps.auth.http``), mounted by the gateway.
"""

from aria.apps.auth.errors import (
    AuthError,
    AuthUnavailable,
    InvalidCredentials,
    InvalidToken,
    MfaRequired,
    RefreshTokenReused,
    TooManyAttempts,
    UnknownClient,
    UnknownGroup,
    UnknownPrincipal,
    UnknownRole,
)
from aria.apps.auth.http import create_blueprint, discovery_document
from aria.apps.auth.policy import Decision, Principal, Resource, Role
from aria.apps.auth.service import AuthService, TokenSet
from aria.apps.auth.turn import check_turn_credentials

__all__ = [
    "AuthError",
    "AuthService",
    "AuthUnavailable",
    "Decision",
    "InvalidCredentials",
    "InvalidToken",
    "MfaRequired",
    "Principal",
    "RefreshTokenReused",
    "Resource",
    "Role",
    "TokenSet",
    "TooManyAttempts",
    "UnknownClient",
    "UnknownGroup",
    "UnknownPrincipal",
    "UnknownRole",
    "check_turn_credentials",
    "create_blueprint",
    "discovery_document",
]
