"""aria_coordinate's place in the boot tree: the gateway, one worker serving every app's routes
over HTTP/1.1 and HTTP/2 (hypercorn's trio worker, quart-trio), TLS by default with a certificate
from aria_security's local CA. It boots last, after every app whose routes it mounts."""

from __future__ import annotations

import importlib
import ipaddress
import logging
import secrets
from functools import partial
from typing import Any

import hypercorn.trio
import trio
from hypercorn.config import Config as HypercornConfig
from pydantic import Field, model_validator

from aria.application import App, AppContext
from aria.apps.coordinate.gateway import Gateway
from aria.config import Section
from aria.supervisor import ChildSpec

ROUTED = (
    "aria_security",
    "aria_data",
    "aria_auth",
    "aria_storage",
    "aria_queue",
    "aria_engine",
    "aria_shape",
    "aria_interpret",
    "aria_workflow",
    "aria_interface",
    "aria_monitor",
    "aria_debugger",
    "aria_tune",
)


BANNER_LABELS = ("dashboard:", "local CA:", "first start:")


class CoordinateSection(Section):
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8443, ge=0, le=65535, description="Port to listen on (0: any free one).")
    tls: bool = Field(True, description="HTTPS with a certificate from the node's local CA.")
    public_url: str = Field("", description="The URL clients use; empty: https://<host>:<port>.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser."
    )
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest request body (413 beyond).")
    request_timeout: float = Field(30.0, gt=0, description="Seconds a request may take (504 beyond).")
    retries: int = Field(2, ge=0, description="Retries of idempotent requests that meet a restarting app.")
    rate_limit: float = Field(50.0, gt=0, description="Requests per second per principal and route.")
    rate_burst: int = Field(100, ge=1, description="Bursts allowed above the rate.")
    breaker_threshold: int = Field(
        5, ge=1, description="Consecutive failures of an app that open its circuit."
    )
    breaker_cooldown: float = Field(
        5.0, gt=0, description="Seconds an open circuit answers 503 before a probe."
    )
    session_days: float = Field(7.0, gt=0, description="How long a dashboard login lasts (refresh cookie).")

    @model_validator(mode="after")
    def _plain_http_only_on_loopback(self) -> CoordinateSection:
        if not self.tls and not _loopback(self.host):
            raise ValueError(f"tls = false is only allowed on a loopback host, not {self.host!r}")
        return self


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class GatewayService:
    """``aria.whereis("aria_coordinate")``: where the gateway listens and how it is doing."""

    def __init__(self, gateway: Gateway, url: str, ca_file: str | None) -> None:
        self.gateway = gateway
        self.url = url
        self.ca_file = ca_file

    def status(self) -> dict[str, Any]:
        apps = sorted(set(self.gateway._blueprint_app.values()))
        return {
            "url": self.url,
            "tls": self.ca_file is not None,
            "apps": apps,
            "circuits": {app: self.gateway.breaker.state(app) for app in apps},
            "setup_pending": self.gateway.setup_token is not None,
        }

    async def health(self) -> dict[str, Any]:
        return {"ok": True, **self.status()}


def build(context: AppContext) -> list[ChildSpec]:
    settings: CoordinateSection = context.settings

    async def serve(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        auth = context.api("aria_auth")
        routes = {}
        for name in ROUTED:
            if name == "aria_monitor" or name not in context.system.registry.names():
                continue
            module = importlib.import_module(f"aria.apps.{name.removeprefix('aria_')}.api")
            if hasattr(module, "create_blueprint"):
                routes[name.removeprefix("aria_")] = module.create_blueprint(context.api(name))
        monitor_routes = None
        if "aria_monitor" in context.system.registry.names():
            monitor_api = importlib.import_module("aria.apps.monitor.api")
            monitor = context.api("aria_monitor")
            routes["monitor"] = monitor_api.create_blueprint(monitor)
            monitor_routes = (
                monitor_api.create_ops_blueprint(monitor),
                monitor_api.create_dashboard(monitor),
            )
        config = HypercornConfig()
        config.bind = [f"{settings.host}:{settings.port}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        config.graceful_timeout = 1.0
        ca_file = None
        if settings.tls:
            security = await context.api("aria_security").get()
            config.certfile, config.keyfile = await security.issue_certificate(
                "gateway", dns_names=("localhost",), ip_addresses=("127.0.0.1",)
            )
            ca_file = security.ca_file
        scheme = "https" if settings.tls else "http"
        placeholder_url = settings.public_url or f"{scheme}://{settings.host}:{settings.port}"
        gateway = Gateway(
            system=context.system,
            settings=settings,
            auth=auth,
            routes=routes,
            monitor_routes=monitor_routes,
            public_url=placeholder_url,
        )
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(hypercorn.trio.serve, gateway.app, config))
            url = settings.public_url or binds[0]
            gateway.openapi["servers"] = [{"url": url}]
            service = GatewayService(gateway, url, ca_file)
            (await auth.get()).gateway_listening(service)  # the OAuth issuer follows this URL
            banner = [f"dashboard:      {url}/"]
            if ca_file is not None:
                banner.append(f"local CA:       {ca_file}  (trust it to skip the browser's warning)")
            if not await auth.principals(kind="user"):
                gateway.setup_token = secrets.token_urlsafe(24)
                setup = f"{url}/setup?token={gateway.setup_token}"
                banner.append(f"first start:    create the admin account at {setup}")
            # After a restart the lines of the previous instance (URL, setup token) are stale.
            lines = context.system.banner_lines
            lines[:] = [line for line in lines if not line.startswith(BANNER_LABELS)] + banner
            context.log.info("gateway listening", url=url, apps=sorted(routes), tls=settings.tls)
            task_status.started(service)
            await trio.sleep_forever()

    return [ChildSpec("gateway", serve, name="aria_coordinate", shutdown=5.0)]


APP = App(
    name="aria_coordinate",
    layer=5,
    depends_on=ROUTED,
    summary="the API gateway: routing, authentication, rate limits, the dashboard's front door",
    build=build,
    config_model=CoordinateSection,
)
