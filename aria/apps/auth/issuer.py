"""The issuer: the public URL of aria_auth's routes, the ``iss`` of every token it signs.

OAuth and OpenID Connect need one exact URL: clients fetch ``<issuer>/.well-known/...``, compare the
document's ``issuer`` with it, and check each ID token's ``iss`` against it. The gateway mounts the
routes at ``/api/v1/auth``, so the issuer is the gateway's public URL plus that path, found in this
order:

1. ``[auth] issuer`` when set (a fleet behind one name sets it, the same on every node);
2. ``[coordinate] public_url`` + ``/api/v1/auth`` (a gateway behind a proxy);
3. the URL the gateway announced when it started listening (``AuthService.gateway_listening``;
   with ``port = 0`` the port is picked then), + ``/api/v1/auth``. The gateway tells aria_auth
   rather than aria_auth looking up an app that boots after it;
4. before the gateway listens, or on a node without one: ``https://<host>:<port>/api/v1/auth``
   from ``[coordinate]`` (``http`` when ``tls = false``; port 8443 when it is 0).

The issuer is never taken from a request's ``Host`` header: the client controls that header, and
a discovery document or redirect built from it would send the next client wherever the last one
said. Tokens carry one ``iss`` per node; the verifier accepts every name this node has issued under
(at most the prediction of step 4 and the gateway's URL in step 3), all signed with its own keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MOUNT = "/api/v1/auth"
DEFAULT_GATEWAY_PORT = 8443


def _authority(host: str, port: int) -> str:
    host = host or "localhost"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"{host}:{port or DEFAULT_GATEWAY_PORT}"


def issuer_source(configured: str, coordinate: Any | None, gateway: Callable[[], Any]) -> Callable[[], str]:
    """A function that answers the issuer now (see the module's docstring for the order).

    Args:
        configured: ``[auth] issuer`` (empty: derive it).
        coordinate: The ``[coordinate]`` config section (``public_url``, ``host``, ``port``,
            ``tls``), or None when there is none.
        gateway: Returns the gateway's service (with a ``url``) once it announced itself, else
            None.
    """
    if configured:
        fixed = configured.rstrip("/")
        return lambda: fixed
    public_url = str(getattr(coordinate, "public_url", "") or "")
    if public_url:
        fixed = public_url.rstrip("/") + MOUNT
        return lambda: fixed
    scheme = "https" if getattr(coordinate, "tls", True) else "http"
    predicted = (
        f"{scheme}://{_authority(str(getattr(coordinate, 'host', '')), int(getattr(coordinate, 'port', 0)))}"
        f"{MOUNT}"
    )

    def current() -> str:
        url = getattr(gateway(), "url", None)
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            return url.rstrip("/") + MOUNT
        return predicted

    return current
