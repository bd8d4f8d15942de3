"""aria_auth's HTTP routes: a quart-trio Blueprint the gateway mounts at ``/api/v1/auth``.

``create_blueprint(auth)`` takes the running service (``aria.whereis("aria_auth")`` or the
``AuthService`` itself). Every URL the routes publish (discovery, redirects) is built from the
service's ``issuer`` (configured, or derived from the gateway's URL: see ``issuer.py``).

Each view declares who may call it (``aria.http``), and the gateway enforces that before the view
runs: *public* views authenticate their callers themselves (OAuth clients by their secret, users by
their password, the WebSocket inside its protocol); *principal* views need any authenticated caller
and act on that caller only; the rest name the permission they need. Served without the gateway
(tests, a standalone provider), the views check bearer tokens and permissions themselves.

Routes (relative to the mount point):

| method | path | access | what |
|---|---|---|---|
| GET | ``/.well-known/openid-configuration``, ``…/oauth-authorization-server`` | public | discovery |
| GET | ``/jwks.json`` | public | the public signing keys (current and previous) |
| POST | ``/login`` | public | JSON ``{username, password, otp?}`` -> tokens |
| POST | ``/refresh`` | public | JSON ``{refresh_token}`` -> new tokens |
| POST | ``/logout`` | principal | ends the bearer token and the JSON ``refresh_token``'s family |
| GET, POST | ``/authorize`` | public | OAuth authorization endpoint (code + PKCE); login form or bearer |
| POST | ``/token``, ``/introspect``, ``/revoke`` | public | OAuth token (RFC 6749), RFC 7662, RFC 7009 |
| GET | ``/userinfo``, ``/me`` | principal | the caller's claims / principal |
| POST | ``/mfa/totp/enrol``, ``/mfa/totp/confirm`` | principal | TOTP enrolment for the caller |
| POST | ``/turn`` | principal | TURN REST credentials for the caller |
| WS | ``/webrtc/<room>`` | public | token-authenticated WebRTC signalling relay (``webrtc.room:join``) |
| GET | ``/federation/<provider>/login``, ``/federation/<provider>/callback`` | public | external OIDC login |
| GET | ``/audit`` | ``auth.audit:read`` | the audit log |

Error bodies are ``{"error": ..., "error_description": ...}``; authentication failures are generic.
"""

from __future__ import annotations

import html
import json
import secrets
from typing import Any

import httpx
import trio
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from quart import Blueprint, Response, g, redirect, request, websocket

from aria.apps.auth.errors import (
    AuthError,
    AuthUnavailable,
    InvalidCredentials,
    InvalidToken,
    MfaRequired,
    TooManyAttempts,
)
from aria.apps.auth.oauth import AuthorizationServer, GrantUser, HttpRequest, make_server
from aria.apps.auth.policy import Principal, Resource
from aria.apps.auth.service import API_TOKEN_PREFIX, AuthService
from aria.apps.auth.tokens import ID_TOKEN_ALGORITHMS
from aria.http import authenticated, public, requires

SIGNAL_QUEUE = 64
MAX_SIGNAL_BYTES = 64 * 1024


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body), status=status, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": error, "error_description": description}, status, headers)


def _auth_error(exc: AuthError) -> Response:
    if isinstance(exc, TooManyAttempts):
        return _error(429, "too_many_attempts", str(exc), {"Retry-After": str(int(exc.retry_after) + 1)})
    if isinstance(exc, MfaRequired):
        return _json(
            {"error": "mfa_required", "error_description": str(exc), "enrolment": exc.enrolment}, 401
        )
    if isinstance(exc, InvalidToken):
        return _error(
            401,
            "invalid_token",
            "the token is not valid",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if isinstance(exc, AuthUnavailable):
        return _error(503, "temporarily_unavailable", "authentication is unavailable; try again")
    return _error(401, "invalid_credentials", str(exc) if isinstance(exc, InvalidCredentials) else "failed")


def _request_id() -> str:
    """The gateway's request id (it also answers with it), else the client's, else a new one."""
    assigned = g.get("request_id")
    if isinstance(assigned, str) and assigned:
        return assigned
    given = request.headers.get("X-Request-ID", "")
    return given[:200] if given else secrets.token_hex(8)


def _gateway_principal() -> Principal | None:
    """The principal the gateway authenticated for this request (bearer, API token or the
    dashboard's session cookie), or None when the blueprint is served without the gateway."""
    principal = g.get("principal")
    return principal if isinstance(principal, Principal) else None


def discovery_document(issuer: str) -> dict[str, Any]:
    """OpenID Provider / RFC 8414 metadata for ``issuer``."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks.json",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "scopes_supported": ["openid", "profile"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(ID_TOKEN_ALGORITHMS),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "amr",
            "name",
            "preferred_username",
        ],
    }


_LOGIN_FORM = """<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in to Aria</title></head>
<body><form method="post" action="{action}">
<h1>Sign in</h1>{message}
<label>User <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<label>One-time code <input name="otp" autocomplete="one-time-code"></label>
{hidden}<button type="submit">Sign in</button>
</form></body></html>
"""

_FORM_FIELDS = ("username", "password", "otp")


class _Rooms:
    """Signalling rooms: who is connected, and a bounded outbox per connection."""

    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, tuple[Principal, trio.MemorySendChannel[str]]]] = {}

    def members(self, room: str) -> dict[str, tuple[Principal, trio.MemorySendChannel[str]]]:
        return self.rooms.setdefault(room, {})

    def broadcast(self, room: str, message: dict[str, Any], *, to: str | None = None, skip: str = "") -> None:
        text = json.dumps(message)
        for peer, (_, outbox) in list(self.members(room).items()):
            if peer == skip or (to is not None and peer != to):
                continue
            try:
                outbox.send_nowait(text)
            except trio.WouldBlock:  # a peer that does not read its messages is dropped, not waited for
                outbox.close()
            except trio.ClosedResourceError:
                pass

    def leave(self, room: str, peer: str) -> None:
        members = self.members(room)
        members.pop(peer, None)
        if not members:
            self.rooms.pop(room, None)


def create_blueprint(auth: Any, *, name: str = "aria_auth") -> Blueprint:
    """The routes of aria_auth over ``auth`` (an ``AuthService`` or a reference to it)."""
    blueprint = Blueprint(name, __name__)
    servers: dict[int, AuthorizationServer] = {}
    rooms = _Rooms()

    async def service() -> AuthService:
        if isinstance(auth, AuthService):
            return auth
        found: AuthService = await auth.get()
        return found

    async def oauth() -> tuple[AuthService, AuthorizationServer]:
        svc = await service()
        server = servers.get(id(svc))
        if server is None:
            servers.clear()  # the service restarted: drop the server bound to the old one
            server = servers[id(svc)] = make_server(svc)
        return svc, server

    async def oauth_request() -> HttpRequest:
        form = await request.form if request.method == "POST" else None
        return HttpRequest(
            request.method,
            request.url,
            request.headers,  # type: ignore[arg-type]
            list(request.args.items(multi=True)),
            list(form.items(multi=True)) if form is not None else [],
        )

    def reply(result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
        status, body, headers = result
        text = json.dumps(body) if isinstance(body, dict | list) else str(body or "")
        response = Response(text, status=status)
        for key, value in headers:
            response.headers[key] = value
        return response

    async def bearer(svc: AuthService) -> Principal:
        """The caller: as the gateway authenticated it, else from the request's bearer token."""
        principal = _gateway_principal()
        if principal is not None:
            return principal
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise InvalidToken("no bearer token")
        return await _verify_any(svc, token.strip(), request.remote_addr or "", _request_id())

    @blueprint.get("/.well-known/openid-configuration")
    @blueprint.get("/.well-known/oauth-authorization-server")
    @public
    async def discovery() -> Response:
        svc = await service()
        return _json(discovery_document(svc.issuer))

    @blueprint.get("/jwks.json")
    @public
    async def jwks() -> Response:
        svc = await service()
        response = _json(svc.jwks())
        response.headers["Cache-Control"] = "public, max-age=60"
        return response

    @blueprint.post("/login")
    @public
    async def login() -> Response:
        svc = await service()
        body = await request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("username"), str):
            return _error(400, "invalid_request", "send JSON {username, password, otp?}")
        try:
            tokens = await svc.login(
                body["username"],
                body.get("password") if isinstance(body.get("password"), str) else "",
                otp=body.get("otp") if isinstance(body.get("otp"), str) else None,
                ip=request.remote_addr or "",
                request_id=_request_id(),
            )
        except AuthError as exc:
            return _auth_error(exc)
        return _json(tokens.to_json())

    @blueprint.post("/refresh")
    @public
    async def refresh() -> Response:
        svc = await service()
        body = await request.get_json(silent=True)
        token = body.get("refresh_token") if isinstance(body, dict) else None
        try:
            tokens = await svc.refresh(
                token, client_id="", ip=request.remote_addr or "", request_id=_request_id()
            )
        except AuthError as exc:
            return _auth_error(exc)
        return _json(tokens.to_json())

    @blueprint.post("/logout")
    @authenticated
    async def logout() -> Response:
        svc = await service()
        try:
            await bearer(svc)
        except AuthError as exc:
            return _auth_error(exc)
        body = await request.get_json(silent=True)
        if isinstance(body, dict) and isinstance(body.get("refresh_token"), str):
            await svc.revoke_token(body["refresh_token"], request_id=_request_id(), reason="logout")
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            await svc.revoke_token(header[7:].strip(), request_id=_request_id(), reason="logout")
        return _json({"ok": True})

    @blueprint.route("/authorize", methods=["GET", "POST"])
    @public
    async def authorize() -> Response:
        svc, server = await oauth()
        try:
            oauth_req = await oauth_request()
        except InsecureTransportError:
            return _error(400, "invalid_request", "the authorization endpoint needs https")
        try:
            grant = await trio.to_thread.run_sync(server.get_consent_grant, oauth_req)
        except OAuth2Error as error:
            return reply(server.handle_error_response(oauth_req, error))
        user: GrantUser | None = None
        message = ""
        form = oauth_req.form
        try:
            if request.headers.get("Authorization", "").lower().startswith("bearer "):
                principal = await bearer(svc)
                row = await svc.store.principal_by_id(principal.id)
                if row is None or row["disabled"]:
                    raise InvalidToken("principal gone or disabled")
                auth_time = float(principal.claims.get("auth_time", svc.clock()))
                user = GrantUser(row, list(principal.roles), list(principal.amr), auth_time)
            elif request.method == "POST" and "username" in form:
                row, roles, amr = await svc.authenticate(
                    form["username"],
                    form.get("password", ""),
                    otp=form.get("otp") or None,
                    ip=request.remote_addr or "",
                    request_id=_request_id(),
                )
                user = GrantUser(row, roles, amr, svc.clock())
        except AuthError as exc:
            message = f"<p role=alert>{html.escape(str(exc))}</p>"
            if not request.accept_mimetypes.accept_html:
                return _auth_error(exc)
        if user is None:
            hidden = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                for k, v in oauth_req.payload.data.items()
                if k not in _FORM_FIELDS
            )
            # The form posts to the bare path: the OAuth parameters travel once, as hidden fields.
            page = _LOGIN_FORM.format(message=message, hidden=hidden, action=html.escape(request.path))
            return Response(page, status=401 if message else 200, content_type="text/html; charset=utf-8")
        user.nonce = oauth_req.payload.data.get("nonce", "")
        result = await trio.to_thread.run_sync(
            lambda: server.create_authorization_response(oauth_req, grant_user=user, grant=grant)
        )
        return reply(result)

    @blueprint.post("/token")
    @public
    async def token() -> Response:
        _, server = await oauth()
        try:
            oauth_req = await oauth_request()
            return reply(await trio.to_thread.run_sync(server.create_token_response, oauth_req))
        except InsecureTransportError:
            return _error(400, "invalid_request", "the token endpoint needs https")
        except InvalidToken as exc:
            return _error(400, "invalid_client", exc.reason)
        except AuthUnavailable as exc:
            return _auth_error(exc)

    async def endpoint(name: str) -> Response:
        _, server = await oauth()
        try:
            oauth_req = await oauth_request()
        except InsecureTransportError:
            return _error(400, "invalid_request", f"the {name} endpoint needs https")
        return reply(await trio.to_thread.run_sync(server.create_endpoint_response, name, oauth_req))

    @blueprint.post("/introspect")
    @public
    async def introspect() -> Response:
        return await endpoint("introspection")

    @blueprint.post("/revoke")
    @public
    async def revoke() -> Response:
        return await endpoint("revocation")

    @blueprint.get("/userinfo")
    @authenticated
    async def userinfo() -> Response:
        svc = await service()
        try:
            principal = await bearer(svc)
        except AuthError as exc:
            return _auth_error(exc)
        return _json({"sub": principal.id, "name": principal.name, "preferred_username": principal.name})

    @blueprint.get("/me")
    @authenticated
    async def me() -> Response:
        svc = await service()
        try:
            principal = await bearer(svc)
        except AuthError as exc:
            return _auth_error(exc)
        return _json(
            {
                "id": principal.id,
                "name": principal.name,
                "kind": principal.kind,
                "tenant": principal.tenant,
                "roles": list(principal.roles),
                "amr": list(principal.amr),
            }
        )

    @blueprint.post("/mfa/totp/enrol")
    @authenticated
    async def totp_enrol() -> Response:
        svc = await service()
        try:
            principal = await bearer(svc)
            return _json(await svc.enrol_totp(principal.id))
        except AuthError as exc:
            return _auth_error(exc)
        except ValueError as exc:
            return _error(400, "invalid_request", str(exc))

    @blueprint.post("/mfa/totp/confirm")
    @authenticated
    async def totp_confirm() -> Response:
        svc = await service()
        body = await request.get_json(silent=True)
        code = body.get("code") if isinstance(body, dict) else None
        try:
            principal = await bearer(svc)
            return _json({"recovery_codes": await svc.confirm_totp(principal.id, str(code or ""))})
        except AuthError as exc:
            return _auth_error(exc)

    @blueprint.post("/turn")
    @authenticated
    async def turn() -> Response:
        svc = await service()
        try:
            principal = await bearer(svc)
        except AuthError as exc:
            return _auth_error(exc)
        return _json(svc.turn_credentials(principal))

    @blueprint.get("/audit")
    @requires("auth.audit:read")
    async def audit() -> Response:
        svc = await service()
        if _gateway_principal() is None:
            # Served without the gateway: check the declared permission here (the gateway has
            # checked it, and audited the decision, before the view runs).
            try:
                principal = await bearer(svc)
            except AuthError as exc:
                return _auth_error(exc)
            context = {"ip": request.remote_addr or "", "request_id": _request_id()}
            decision = await svc.authorize(principal, "read", Resource("auth.audit"), context)
            if not decision:
                return _error(403, "forbidden", decision.reason)
        args = request.args
        try:
            limit = int(args.get("limit", "100"))
            rows = await svc.audit(
                principal=args.get("principal"),
                kind=args.get("kind"),
                result=args.get("result"),
                request_id=args.get("request_id"),
                limit=limit,
            )
        except ValueError as exc:
            return _error(400, "invalid_request", str(exc))
        return _json({"records": rows})

    @blueprint.get("/federation/<provider>/login")
    @public
    async def federation_login(provider: str) -> Response:
        svc = await service()
        try:
            async with httpx.AsyncClient(timeout=svc.settings.federation_timeout) as http:
                url = await svc.federation_start(
                    provider, f"{svc.issuer}/federation/{provider}/callback", http
                )
        except KeyError:
            return _error(404, "not_found", f"no federation provider named {provider!r}")
        except AuthError as exc:
            return _auth_error(exc)
        return redirect(url, 302)  # type: ignore[return-value]

    @blueprint.get("/federation/<provider>/callback")
    @public
    async def federation_callback(provider: str) -> Response:
        svc = await service()
        args = request.args
        if "error" in args:
            return _error(401, "access_denied", f"the provider refused: {args.get('error')}")
        try:
            async with httpx.AsyncClient(timeout=svc.settings.federation_timeout) as http:
                tokens = await svc.federation_finish(
                    provider,
                    code=args.get("code", ""),
                    state=args.get("state", ""),
                    redirect_uri=f"{svc.issuer}/federation/{provider}/callback",
                    http=http,
                    ip=request.remote_addr or "",
                    request_id=_request_id(),
                )
        except KeyError:
            return _error(404, "not_found", f"no federation provider named {provider!r}")
        except AuthError as exc:
            return _auth_error(exc)
        return _json(tokens.to_json())

    @blueprint.websocket("/webrtc/<room>")
    @public
    async def signalling(room: str) -> None:
        await _signalling(await service(), rooms, room)

    return blueprint


async def _verify_any(svc: AuthService, token: str, ip: str, request_id: str) -> Principal:
    if token.startswith(API_TOKEN_PREFIX):
        return await svc.verify_api_token(token, ip=ip, request_id=request_id)
    return await svc.verify_token(token, ip=ip, request_id=request_id)


async def _signalling(svc: AuthService, rooms: _Rooms, room: str) -> None:
    """Relay signalling messages between the authenticated members of ``room``.

    The client authenticates with an ``Authorization: Bearer`` header, or (browsers cannot set
    headers on WebSockets) with a first message ``{"type": "auth", "token": ...}`` within
    ``signalling_auth_timeout`` seconds; it must be allowed ``webrtc.room:join``. Then
    ``{"type": "signal", "to": peer?, "data": ...}`` goes to one peer or all others, tagged with
    the sender. Every message re-checks the token (expiry, revocation): a dead token closes the
    connection with 4401.
    """
    ip = websocket.remote_addr or ""
    request_id = secrets.token_hex(8)
    token = ""
    header = websocket.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
    await websocket.accept()
    if not token:
        with trio.move_on_after(svc.settings.signalling_auth_timeout):
            first = await websocket.receive()
            try:
                message = json.loads(first)
                if isinstance(message, dict) and message.get("type") == "auth":
                    token = str(message.get("token", ""))
            except ValueError:
                pass
    try:
        principal = await _verify_any(svc, token, ip, request_id)
    except AuthError:
        await websocket.send(json.dumps({"type": "error", "error": "unauthenticated"}))
        await websocket.close(4401)
        return
    decision = await svc.authorize(
        principal, "join", Resource("webrtc.room", room), {"ip": ip, "request_id": request_id}
    )
    if not decision:
        await websocket.send(json.dumps({"type": "error", "error": "forbidden", "reason": decision.reason}))
        await websocket.close(4403)
        return
    peer = secrets.token_hex(6)
    outbox, inbox = trio.open_memory_channel[str](SIGNAL_QUEUE)
    others = [{"peer": p, "name": m[0].name} for p, m in rooms.members(room).items()]
    rooms.members(room)[peer] = (principal, outbox)
    ice = (
        {"urls": svc.settings.turn_uris, **svc.turn_credentials(principal)}
        if svc.settings.turn_uris
        else None
    )
    await websocket.send(
        json.dumps(
            {"type": "welcome", "peer": peer, "name": principal.name, "peers": others, "ice_server": ice}
        )
    )
    rooms.broadcast(room, {"type": "peer-joined", "peer": peer, "name": principal.name}, skip=peer)

    async def pump() -> None:
        async with inbox:
            async for text in inbox:
                await websocket.send(text)
        await websocket.close(4408)  # the outbox was closed: this peer fell behind

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump)
            while True:
                raw = await websocket.receive()
                if not _token_alive(svc, principal, token):
                    await websocket.send(json.dumps({"type": "error", "error": "token expired or revoked"}))
                    await websocket.close(4401)
                    nursery.cancel_scope.cancel()
                    break
                if not isinstance(raw, str) or len(raw) > MAX_SIGNAL_BYTES:
                    continue
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(message, dict) or message.get("type") != "signal":
                    continue
                target = message.get("to")
                rooms.broadcast(
                    room,
                    {"type": "signal", "from": peer, "name": principal.name, "data": message.get("data")},
                    to=str(target) if target else None,
                    skip=peer,
                )
    finally:
        rooms.leave(room, peer)
        outbox.close()
        rooms.broadcast(room, {"type": "peer-left", "peer": peer})


def _token_alive(svc: AuthService, principal: Principal, token: str) -> bool:
    if token.startswith(API_TOKEN_PREFIX):
        return True  # API tokens are re-checked by verify_api_token's short cache on the next join
    try:
        svc.verify_claims(token)
    except InvalidToken:
        return False
    return True
