"""Conventions shared by every app's ``http.py`` and the gateway that mounts them.

An app's routes are a Quart blueprint built by ``create_blueprint(service)`` in its ``api.py``;
the gateway (aria_coordinate) mounts it at ``/api/v1/<app>``. The gateway authenticates every
request under ``/api/`` and authorises it before the view runs, using what the view declares:

* ``@requires("storage.assets:read")``: the permission (``resource:action``) the caller needs;
  without a declaration it is ``<app>:read`` for GET/HEAD and ``<app>:write`` otherwise;
* ``@public``: no authentication at all (OAuth token endpoint, discovery, JWKS, login);
* ``@authenticated``: any authenticated principal, no permission (a user's own profile, MFA
  enrolment, logout);
* ``@limits(max_body_bytes=..., timeout=...)``: this view's body limit and deadline instead of
  the gateway's (large uploads that stream the body).

What the gateway leaves in ``quart.g`` for the view (requests and WebSockets alike):

* ``g.principal``: aria_auth's ``Principal`` of the caller (None on public views called anonymously);
* ``g.principal_name``: its name ("" when anonymous);
* ``g.request_id``: the request id (from ``X-Request-ID`` or made), also bound into every log line.

Views answer errors with :func:`error_response` (``{"error": ..., "error_description": ...}``),
the shape the OpenAPI document promises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from quart import Response, jsonify

View = TypeVar("View", bound=Callable[..., Any])

PUBLIC_ATTRIBUTE = "aria_public"
PERMISSION_ATTRIBUTE = "aria_permission"
AUTHENTICATED_ONLY = "authenticated"
BODY_LIMIT_ATTRIBUTE = "aria_max_body_bytes"
TIMEOUT_ATTRIBUTE = "aria_timeout"


def public(view: View) -> View:
    """Mark a view as reachable without authentication."""
    setattr(view, PUBLIC_ATTRIBUTE, True)
    return view


def authenticated(view: View) -> View:
    """Mark a view as open to any authenticated principal, whatever its permissions."""
    setattr(view, PERMISSION_ATTRIBUTE, AUTHENTICATED_ONLY)
    return view


def requires(permission: str) -> Callable[[View], View]:
    """Declare the ``resource:action`` permission a view needs (checked by the gateway)."""
    resource, _, action = permission.rpartition(":")
    if not resource or not action:
        raise ValueError(f"a permission is 'resource:action', not {permission!r}")

    def mark(view: View) -> View:
        setattr(view, PERMISSION_ATTRIBUTE, permission)
        return view

    return mark


_UNSET: Any = object()


def limits(*, max_body_bytes: int | None = _UNSET, timeout: float | None = _UNSET) -> Callable[[View], View]:
    """Override the gateway's body limit (``coordinate.max_body_bytes``) or deadline
    (``coordinate.request_timeout``) for one view; ``None`` lifts it. For uploads that stream the
    body (``async for chunk in request.body``): the gateway then counts every byte received
    against the limit and holds back reading while the view has not taken what is buffered."""
    if max_body_bytes is not _UNSET and max_body_bytes is not None and max_body_bytes < 0:
        raise ValueError(f"max_body_bytes must be >= 0 or None, not {max_body_bytes!r}")
    if timeout is not _UNSET and timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be > 0 or None, not {timeout!r}")

    def mark(view: View) -> View:
        if max_body_bytes is not _UNSET:
            setattr(view, BODY_LIMIT_ATTRIBUTE, max_body_bytes)
        if timeout is not _UNSET:
            setattr(view, TIMEOUT_ATTRIBUTE, timeout)
        return view

    return mark


def body_limit_of(view: Any, default: int | None) -> int | None:
    return getattr(view, BODY_LIMIT_ATTRIBUTE, default)  # type: ignore[no-any-return]


def timeout_of(view: Any, default: float | None) -> float | None:
    return getattr(view, TIMEOUT_ATTRIBUTE, default)  # type: ignore[no-any-return]


def is_public(view: Any) -> bool:
    return bool(getattr(view, PUBLIC_ATTRIBUTE, False))


def permission_of(view: Any, app: str, method: str) -> str:
    """The permission a view needs: declared (``authenticated`` for any principal), or
    ``<app>:read``/``<app>:write`` by method."""
    declared = getattr(view, PERMISSION_ATTRIBUTE, None)
    if declared:
        return str(declared)
    return f"{app}:{'read' if method in ('GET', 'HEAD', 'OPTIONS') else 'write'}"


def error_response(status: int, error: str, description: str = "", **headers: str) -> Response:
    """A JSON error in the shape every route documents."""
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    return response
