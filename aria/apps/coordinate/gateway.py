"""The gateway's Quart application: every app's routes behind one front door.

For each request, in order: a request id (taken from ``X-Request-ID`` or made), CORS, the circuit
of the app that owns the route (an app that is restarting or failing answers 503 with
Retry-After at once), authentication (bearer JWT, API token, or the dashboard's session cookie;
any ``/api/`` path without credentials is 401 before routing, so unknown paths leak nothing),
authorisation of the view's permission through aria_auth, and a token bucket per principal and
route (429 with Retry-After). Each view runs within ``coordinate.request_timeout``; idempotent
requests that meet an app restarting are tried again. One log line per request.
"""

from __future__ import annotations

import html
import math
import secrets
import time
from typing import Any

import structlog
import trio
from prometheus_client import Counter, Histogram
from quart import Blueprint, Response, g, jsonify, redirect, render_template, request, websocket
from quart import g as _g
from quart import request as _request
from quart.typing import ResponseReturnValue
from quart_trio import QuartTrio
from quart_trio.asgi import TrioASGIHTTPConnection
from quart_trio.wrappers.request import TrioBody, TrioRequest
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from aria.apps.coordinate.openapi import openapi_document
from aria.apps.coordinate.ratelimit import CircuitBreaker, RateLimiter
from aria.errors import ServiceUnavailable
from aria.http import (
    AUTHENTICATED_ONLY,
    body_limit_of,
    error_response,
    is_public,
    permission_of,
    public,
    requires,
    timeout_of,
)

log = structlog.get_logger("aria_coordinate")

REQUESTS = Counter(
    "aria_http_requests", "HTTP requests by route, method and status.", ["route", "method", "status"]
)
LATENCY = Histogram("aria_http_request_duration_seconds", "HTTP request latency.", ["route", "method"])

ACCESS_COOKIE = "aria_access"
REFRESH_COOKIE = "aria_refresh"
IDEMPOTENT = ("GET", "HEAD", "OPTIONS")
BUFFER_HIGH_WATER = 1024 * 1024  # bytes of request body buffered before reading the socket pauses


class GatewayBody(TrioBody):
    """Quart's request body with what large uploads need.

    * The limit counts every byte received, and the gateway sets it per view once it knows the
      view (``aria.http.limits``). Quart checks only the bytes still buffered, which a view that
      streams the body keeps small: a streamed upload would have no bound at all.
    * Back-pressure: while a view streams the body (``async for chunk in request.body``), the
      receiver waits when more than ``BUFFER_HIGH_WATER`` bytes are buffered, so hypercorn stops
      reading the socket instead of Quart buffering the whole upload. A view that awaits the
      whole body gets it buffered, bounded by its limit.
    """

    def __init__(self, expected_content_length: int | None, max_content_length: int | None) -> None:
        super().__init__(expected_content_length, None)
        self.limit = max_content_length
        self.received = 0
        self.settled = False  # True once the gateway has set the view's limit
        self.streaming = False  # True once the view iterates over the body
        self._changed = trio.Event()

    def set_limit(self, limit: int | None) -> None:
        self.limit, self.settled = limit, True
        self._refuse_beyond_limit()
        self._changed.set()

    def append(self, data: bytes) -> None:
        if not data or self._must_raise is not None:
            return
        self.received += len(data)
        if not self._refuse_beyond_limit():
            super().append(data)

    def _refuse_beyond_limit(self) -> bool:
        if self._must_raise is None and self.limit is not None and self.received > self.limit:
            self._must_raise = RequestEntityTooLarge(f"bodies are limited to {self.limit} bytes here")
            self._data.clear()
            self.set_complete()
        return self._must_raise is not None

    async def __anext__(self) -> bytes:
        self.streaming = True
        self._changed.set()
        data = await super().__anext__()
        self._changed.set()
        return data

    async def wait_for_room(self) -> None:
        """Return when the receiver may read more: little is buffered, or the view takes the
        whole body at once (its limit bounds the buffer)."""
        while (
            len(self._data) > BUFFER_HIGH_WATER
            and not self._complete.is_set()
            and (self.streaming or not self.settled)
        ):
            self._changed = trio.Event()
            await self._changed.wait()


class GatewayRequest(TrioRequest):
    body_class = GatewayBody


class GatewayHTTPConnection(TrioASGIHTTPConnection):
    """Receives the body with back-pressure (see :class:`GatewayBody`)."""

    async def handle_messages(  # type: ignore[override]
        self, nursery: trio.Nursery, request: Any, receive: Any
    ) -> None:
        body = request.body
        while True:
            message = await receive()
            if message["type"] == "http.request":
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body.set_complete()
                elif isinstance(body, GatewayBody):
                    await body.wait_for_room()
            elif message["type"] == "http.disconnect":
                break
        nursery.cancel_scope.cancel()


class GatewayApp(QuartTrio):
    """QuartTrio with a deadline on every view and retries of idempotent requests that meet a
    restarting app."""

    request_class = GatewayRequest
    asgi_http_class = GatewayHTTPConnection
    request_timeout = 30.0
    retries = 2

    def ensure_async(self, func: Any) -> Any:
        # Quart asks this of every hook and view on every request; the answer never changes.
        # Bounded: a class-based view's bound methods are new objects on each request.
        known: dict[Any, Any] = self.__dict__.setdefault("_async_callables", {})
        wrapped = known.get(func)
        if wrapped is None:
            wrapped = super().ensure_async(func)
            if len(known) < 4096:
                known[func] = wrapped
        return wrapped

    async def dispatch_request(self, request_context: Any = None) -> ResponseReturnValue:
        current = _request._get_current_object()
        attempts = self.retries + 1 if current.method in IDEMPOTENT else 1
        view = self.view_functions.get(current.endpoint) if current.endpoint else None
        timeout = timeout_of(view, self.request_timeout)
        for attempt in range(attempts):
            try:
                # A bare CancelScope: trio.fail_after's context-manager wrapper costs more per request.
                deadline = math.inf if timeout is None else trio.current_time() + timeout
                with trio.CancelScope(deadline=deadline):
                    return await super().dispatch_request(request_context)
                g.failed_app = True
                return error_response(504, "timeout", f"the request took longer than {timeout:g} s")
            except ServiceUnavailable as exc:
                if attempt + 1 == attempts:
                    g.failed_app = True
                    return error_response(503, "unavailable", str(exc), Retry_After="2")
                await trio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")


class Gateway:
    """Builds the Quart app and holds what its hooks share."""

    def __init__(
        self,
        *,
        system: Any,
        settings: Any,
        auth: Any,
        routes: dict[str, Any],
        monitor_routes: tuple[Blueprint, Blueprint] | None,
        public_url: str,
    ) -> None:
        self.system = system
        self.settings = settings
        self.auth = auth
        self.public_url = public_url
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
        self.breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_cooldown)
        self.setup_token: str | None = None
        # Resolved once: the hooks below run on every request.
        from aria.apps.auth.api import AuthError, Resource

        self._auth_error = AuthError
        self._resource_class = Resource
        self._request_log = log.bind()  # a bound logger skips the proxy's per-call set-up
        # Metric series by (route, method, status): bounded by the routes, methods and statuses.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.app = GatewayApp(__name__, static_folder=None)  # the dashboard blueprint serves /static
        self.app.request_timeout = settings.request_timeout
        self.app.retries = settings.retries
        self.app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
        self._blueprint_app: dict[str, str] = {}
        for section, blueprint in routes.items():
            self.app.register_blueprint(blueprint, url_prefix=f"/api/v1/{section}")
            self._blueprint_app[blueprint.name] = f"aria_{section}"
        if monitor_routes is not None:
            ops, dashboard = monitor_routes
            self.app.register_blueprint(ops)
            self.app.register_blueprint(dashboard)
            self._blueprint_app[ops.name] = "aria_monitor"
            self._blueprint_app[dashboard.name] = "aria_monitor"
        self.app.register_blueprint(self._own_routes())
        self.app.before_request(self._before)
        self.app.after_request(self._after)
        self.app.before_websocket(self._before_websocket)
        self.app.register_error_handler(HTTPException, self._http_error)
        self.openapi = openapi_document(self.app, public_url)

    # ---- hooks --------------------------------------------------------------------------------

    async def _before(self) -> ResponseReturnValue | None:
        # The proxies `g` and `request` cost a lookup per access; this hook runs on every request.
        g = _g._get_current_object()
        request = _request._get_current_object()
        g.connection = request
        g.started = time.perf_counter()
        # One pass over the headers: werkzeug's get() raises and catches an exception per absent
        # header, and most of the ones read here are absent.
        header: dict[str, str] = {}
        for key, value in request.headers.items():
            header.setdefault(key.lower(), value)  # the first of repeated headers, as get() answers
        g.header = header
        g.request_id = _request_id(header.get("x-request-id"))
        structlog.contextvars.bind_contextvars(request_id=g.request_id)
        g.ratelimit = None
        g.principal = None
        g.principal_name = ""
        g.is_admin = False
        g.new_cookies = None
        endpoint = request.endpoint
        blueprint = request.blueprint
        app_name = g.app_name = self._blueprint_app.get(blueprint) if blueprint else None
        if request.method == "OPTIONS" and header.get("access-control-request-method"):
            return Response("", status=204)
        view = self.app.view_functions.get(endpoint) if endpoint else None
        limit = body_limit_of(view, self.settings.max_body_bytes)
        body = request.body
        if isinstance(body, GatewayBody):
            body.set_limit(limit)
        length = header.get("content-length")
        if limit is not None and length is not None and (request.content_length or 0) > limit:
            # Refused before anything reads it.
            return error_response(413, "payload_too_large", f"bodies are limited to {limit} bytes here")
        if app_name is not None:
            wait = self._unavailable(app_name)
            if wait:
                return error_response(
                    503, "unavailable", f"{app_name} is not available", Retry_After=str(max(1, round(wait)))
                )
        if view is not None and (is_public(view) or (endpoint or "").endswith(".static")):
            return None  # public views, and the dashboard's CSS and script (the login page needs them)
        principal = await self._authenticate(request, g)
        is_api = request.path.startswith("/api/")
        if principal is None:
            if is_api or view is None or request.path == "/events":
                return error_response(
                    401, "unauthorized", "authentication required", WWW_Authenticate="Bearer"
                )
            return redirect(f"/login?next={request.full_path.rstrip('?')}")
        if view is None:
            return None  # an authenticated caller may learn that the path does not exist
        if not is_api:
            # Dashboard pages: the buttons that change things show only for those allowed to.
            decision = await (await self._auth()).authorize(
                principal, "write", self._resource("aria.supervisor"), {"ip": request.remote_addr or ""}
            )
            g.is_admin = bool(decision)
        section = (app_name or "aria_monitor").removeprefix("aria_")
        permission = permission_of(view, section, request.method)
        if permission == AUTHENTICATED_ONLY:
            return self._rate_limit(principal)
        resource, _, action = permission.rpartition(":")
        decision = await (await self._auth()).authorize(
            principal,
            action,
            self._resource(resource),
            {"ip": request.remote_addr or "", "request_id": g.request_id},
        )
        if not decision:
            return error_response(403, "forbidden", f"{permission} is not allowed: {decision.reason}")
        return self._rate_limit(principal)

    def _rate_limit(self, principal: Any) -> ResponseReturnValue | None:
        g = _g._get_current_object()
        rule = g.connection.url_rule
        verdict = self.limiter.take((principal.name, rule.rule if rule else ""), trio.current_time())
        g.ratelimit = verdict
        if not verdict.allowed:
            return error_response(
                429, "rate_limited", "too many requests", Retry_After=str(max(1, round(verdict.retry_after)))
            )
        return None

    async def _after(self, response: Response) -> Response:
        g = _g._get_current_object()
        request = _request._get_current_object()
        headers = response.headers
        headers["X-Request-ID"] = g.request_id  # _before sets what _after reads, before any return
        verdict = g.ratelimit
        if verdict is not None:
            # add(), not item assignment: views never set these, and add() skips a search.
            add = headers.add
            add("X-RateLimit-Limit", str(verdict.limit))
            add("X-RateLimit-Remaining", str(verdict.remaining))
            add("X-RateLimit-Reset", str(round(verdict.reset)))
        origin = g.header.get("origin")
        if origin and (origin in self.settings.cors_origins or "*" in self.settings.cors_origins):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, X-Request-ID"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
            response.headers["Vary"] = "Origin"
        cookies = g.new_cookies
        if cookies:
            self._set_session(response, *cookies)
        rule = request.url_rule
        route = rule.rule if rule is not None else "unmatched"
        elapsed = time.perf_counter() - g.started
        method, status = request.method, response.status_code
        series = self._series.get((route, method, status))
        if series is None:
            # labels() validates and locks on every call: look each series up once.
            series = (REQUESTS.labels(route, method, str(status)), LATENCY.labels(route, method))
            self._series[(route, method, status)] = series
        series[0].inc()
        series[1].observe(elapsed)
        app_name = g.app_name
        if app_name is not None:
            failed = g.get("failed_app", False) or status >= 500
            self.breaker.record(app_name, not failed, trio.current_time())
        self._request_log.info(
            "request",
            method=method,
            path=request.path,
            route=route,
            status=status,
            ms=round(elapsed * 1000, 2),
            principal=g.principal_name,
        )
        return response

    async def _before_websocket(self) -> ResponseReturnValue | None:
        """The same checks as for a request, before the WebSocket handshake is accepted: circuit,
        credentials (bearer header, ``access_token`` query parameter since browsers cannot set
        headers on a WebSocket, or the session cookie), the view's permission, the rate limit."""
        g = _g._get_current_object()
        connection = websocket._get_current_object()
        g.connection = connection
        g.request_id = _request_id(connection.headers.get("X-Request-ID"))
        structlog.contextvars.bind_contextvars(request_id=g.request_id)
        g.principal, g.principal_name, g.ratelimit = None, "", None
        view = self.app.view_functions.get(connection.endpoint) if connection.endpoint else None
        app_name = self._blueprint_app.get(connection.blueprint or "")
        # Only whether the app runs: a long-lived socket reports no outcome to the circuit breaker,
        # so it must not take the breaker's half-open probe either.
        if app_name is not None and self.system.registry.whereis_nowait(app_name) is None:
            return error_response(503, "unavailable", f"{app_name} is not available", Retry_After="2")
        if view is not None and is_public(view):
            return None
        token = (
            _bearer(connection.headers.get("Authorization", ""))
            or connection.args.get("access_token", "")
            or connection.cookies.get(ACCESS_COOKIE, "")
        )
        principal = await self._verify(token) if token else None
        if principal is None:
            return error_response(401, "unauthorized", "authentication required", WWW_Authenticate="Bearer")
        if view is None:
            return None
        permission = permission_of(view, (app_name or "aria_monitor").removeprefix("aria_"), "GET")
        if permission != AUTHENTICATED_ONLY:
            resource, _, action = permission.rpartition(":")
            decision = await (await self._auth()).authorize(
                principal,
                action,
                self._resource(resource),
                {"ip": connection.remote_addr or "", "request_id": g.request_id},
            )
            if not decision:
                return error_response(403, "forbidden", f"{permission} is not allowed: {decision.reason}")
        return self._rate_limit(principal)

    async def _http_error(self, error: HTTPException) -> Response:
        return error_response(
            error.code or 500, (error.name or "error").lower().replace(" ", "_"), error.description or ""
        )

    # ---- helpers ------------------------------------------------------------------------------

    async def _auth(self) -> Any:
        """aria_auth's live service: straight from the registry on the hot path, waiting (through
        the ServiceRef) only while it restarts."""
        live = self.system.registry.whereis_nowait("aria_auth")
        return live if live is not None else await self.auth.get()

    def _unavailable(self, app_name: str) -> float:
        if self.system.registry.whereis_nowait(app_name) is None:
            return 2.0  # restarting or stopped
        return self.breaker.check(app_name, trio.current_time())

    def _resource(self, resource: str) -> Any:
        return self._resource_class(resource, _g.connection.path)

    async def _authenticate(self, request: Any, g: Any) -> Any:
        token = _bearer(g.header.get("authorization", ""))
        if token:
            return await self._verify(token)
        access = request.cookies.get(ACCESS_COOKIE, "")
        if access:
            principal = await self._verify(access)
            if principal is not None:
                return principal
        refresh = request.cookies.get(REFRESH_COOKIE, "")
        if refresh:
            try:
                tokens = await self.auth.refresh(
                    refresh, ip=request.remote_addr or "", request_id=g.request_id
                )
            except Exception:
                return None
            g.new_cookies = (tokens.access_token, tokens.refresh_token, tokens.expires_in)
            return await self._verify(tokens.access_token)
        return None

    async def _verify(self, token: str) -> Any:
        g = _g._get_current_object()
        try:
            if token.startswith("aria_pat_"):
                principal = await (await self._auth()).verify_api_token(
                    token, ip=g.connection.remote_addr or "", request_id=g.get("request_id", "")
                )
            else:
                principal = await (await self._auth()).verify_token(token)
        except self._auth_error:
            return None
        g.principal = principal
        g.principal_name = principal.name
        return principal

    def _set_session(self, response: Response, access: str, refresh: str, expires_in: float) -> None:
        options = {"httponly": True, "secure": self.settings.tls, "samesite": "Strict", "path": "/"}
        response.set_cookie(ACCESS_COOKIE, access, max_age=int(expires_in), **options)
        response.set_cookie(
            REFRESH_COOKIE, refresh, max_age=int(self.settings.session_days * 86400), **options
        )

    # ---- the gateway's own routes: OpenAPI, login, logout, first-start setup -----------------

    def _own_routes(self) -> Blueprint:
        blueprint = Blueprint("aria_coordinate", __name__)
        auth = self.auth

        @blueprint.get("/api/openapi.json")
        @public
        async def openapi() -> Response:
            """The OpenAPI 3.1 document of the whole API."""
            return jsonify(self.openapi)

        @blueprint.get("/api/v1/coordinate/ping")
        @requires("coordinate:read")
        async def ping() -> Response:
            """The cheapest authenticated call: checks credentials, permission and rate limit."""
            return jsonify({"pong": True, "principal": g.principal_name})

        @blueprint.get("/api/v1/coordinate/status")
        @requires("coordinate:read")
        async def status() -> Response:
            """Where the gateway listens, which apps it serves, the state of their circuits."""
            apps = sorted(set(self._blueprint_app.values()))
            return jsonify({"apps": apps, "circuits": {app: self.breaker.state(app) for app in apps}})

        @blueprint.route("/login", methods=["GET", "POST"])
        @public
        async def login() -> ResponseReturnValue:
            next_path = _safe_next(request.args.get("next") or (await request.form).get("next", "/"))
            node = self.system.config.node_name
            if request.method == "GET":
                return await render_template(
                    "login.html", page="login", pages=None, node=node, next=next_path, error=""
                )
            form = await request.form
            try:
                tokens = await auth.login(
                    form.get("username", ""),
                    form.get("password", ""),
                    otp=form.get("otp") or None,
                    ip=request.remote_addr or "",
                    request_id=g.request_id,
                )
            except Exception as exc:
                message = _login_message(exc)
                body = await render_template(
                    "login.html", page="login", pages=None, node=node, next=next_path, error=message
                )
                return Response(body, status=401, content_type="text/html")
            response = redirect(next_path)
            self._set_session(response, tokens.access_token, tokens.refresh_token, tokens.expires_in)
            return response

        @blueprint.post("/logout")
        @public
        async def logout() -> ResponseReturnValue:
            refresh = request.cookies.get(REFRESH_COOKIE, "")
            if refresh:
                await auth.revoke_token(refresh, request_id=g.request_id, reason="logout")
            response = redirect("/login")
            response.delete_cookie(ACCESS_COOKIE, path="/")
            response.delete_cookie(REFRESH_COOKIE, path="/")
            return response

        @blueprint.route("/setup", methods=["GET", "POST"])
        @public
        async def setup() -> ResponseReturnValue:
            return await self._setup()

        return blueprint

    async def _setup(self) -> ResponseReturnValue:
        """The first start's one-time page: create the admin account, enrol its authenticator."""
        form = await request.form if request.method == "POST" else {}
        token = request.args.get("token") or form.get("token", "")
        if self.setup_token is None or not secrets.compare_digest(token.encode(), self.setup_token.encode()):
            return error_response(404, "not_found", "no setup is pending (the link works once)")
        node = self.system.config.node_name
        if request.method == "GET":
            return await render_template(
                "setup.html", page="setup", pages=None, node=node, token=token, error=""
            )
        if "code" in form:  # step 2: confirm the authenticator
            try:
                codes = await self.auth.confirm_totp(form.get("username", ""), form.get("code", ""))
            except Exception as exc:
                return _setup_page_error(f"that code did not match: {exc}")
            self.setup_token = None
            log.info("administrator created through the first-start link", user=form.get("username", ""))
            items = "".join(f"<li><code>{_attribute(code)}</code></li>" for code in codes)
            return Response(
                f"<!doctype html><meta charset=utf-8><link rel=stylesheet href=/static/dashboard.css>"
                "<main><form class=login><h1>Done</h1><p>Keep these recovery codes:</p>"
                f"<ul id=recovery>{items}</ul>"
                f"<a id=to-login href=/login>Log in</a></form></main>",
                content_type="text/html",
            )
        try:
            await self.auth.add_user(form.get("username", ""), form.get("password", ""), roles=["admin"])
            enrolment = await self.auth.enrol_totp(form.get("username", ""))
        except Exception as exc:
            body = await render_template(
                "setup.html", page="setup", pages=None, node=node, token=token, error=str(exc)
            )
            return Response(body, status=400, content_type="text/html")
        return Response(
            "<!doctype html><meta charset=utf-8><link rel=stylesheet href=/static/dashboard.css><main>"
            "<form method=post action=/setup class=login><h1>Add an authenticator</h1>"
            "<p>Administrators log in with a one-time code. Add this secret to an authenticator app:</p>"
            f"<p><code id=totp-secret>{_attribute(enrolment['secret'])}</code></p>"
            f"<p class=muted><code id=totp-uri>{_attribute(enrolment['uri'])}</code></p>"
            f"<input type=hidden name=token value='{_attribute(token)}'>"
            f"<input type=hidden name=username value='{_attribute(form.get('username', ''))}'>"
            "<label>Code <input name=code id=code inputmode=numeric required autofocus></label>"
            "<button type=submit id=confirm-button>Confirm</button></form></main>",
            content_type="text/html",
        )


def _setup_page_error(message: str) -> Response:
    return error_response(400, "invalid_request", message)


def _attribute(value: str) -> str:
    return html.escape(value, quote=True)


def _login_message(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "MfaRequired":
        return (
            "enter the one-time code from your authenticator"
            if not getattr(exc, "enrolment", False)
            else ("this account must enrol an authenticator first")
        )
    if name == "TooManyAttempts":
        return "too many attempts; try again later"
    return "wrong user name, password or code"


def _safe_next(value: str) -> str:
    """Only local paths (no scheme, no host): an open redirect would be a phishing tool."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _bearer(header: str) -> str:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _request_id(given: str | None) -> str:
    if given and len(given) <= 128 and given.replace("-", "").replace("_", "").isalnum():
        return given
    return secrets.token_hex(16)  # as unique as a UUID4, at a quarter of the cost
