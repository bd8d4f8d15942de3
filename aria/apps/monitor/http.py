"""aria_monitor's routes: the JSON API (``/api/v1/monitor``), the operations endpoints
(``/metrics``, ``/health/live``, ``/health/ready``) and the dashboard (``/``).

The gateway authenticates the caller before these views run and puts the principal in
``g.principal``; dashboard pages use the session cookie the login page sets, API calls a bearer
token. Actions (restart, stop or kill a child; retry or cancel a job) need the permissions named
on each view.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio
from quart import Blueprint, Response, g, jsonify, render_template, request

from aria.http import error_response, public, requires

HERE = Path(__file__).parent
PAGES = {
    "home": "Home",
    "tree": "Supervision tree",
    "apps": "Apps",
    "charts": "Metrics",
    "logs": "Logs",
    "queue": "Queue",
    "storage": "Storage",
    "security": "Security",
    "os": "OS",
}


def create_blueprint(monitor: Any) -> Blueprint:
    """The JSON API behind the dashboard, mounted at ``/api/v1/monitor``."""
    blueprint = Blueprint("aria_monitor", __name__)

    @blueprint.get("/home")
    async def home() -> Response:
        """Versions, uptime, node, data directory, engines."""
        return jsonify(monitor.home())

    @blueprint.get("/tree")
    async def tree() -> Response:
        """The live supervision tree."""
        return jsonify(monitor.system.tree())

    @blueprint.get("/apps")
    async def apps() -> Response:
        """Each app: its state, its own status, its config section."""
        return jsonify(apps_overview(monitor))

    @blueprint.get("/os")
    async def os_stats() -> Response:
        """CPU, memory, disk and this process."""
        return jsonify(monitor.os_stats())

    @blueprint.get("/logs")
    async def logs() -> Response:
        """Recent log events: ?since=<seq>&app=<app>&level=<level>."""
        since = _int(request.args.get("since"), 0)
        return jsonify(monitor.logs(since, request.args.get("app", ""), request.args.get("level", "")))

    @blueprint.get("/history/<name>")
    async def history(name: str) -> Response:
        """Samples of a metric over ?seconds= (raw, then minute and hour rollups)."""
        seconds = _float(request.args.get("seconds"), 3600.0)
        if not 1 <= seconds <= 90 * 86400:
            return error_response(400, "invalid_request", "seconds must be from 1 to 7776000")
        try:
            return jsonify(await monitor.history(name, seconds))
        except ValueError as exc:
            return error_response(404, "not_found", str(exc))

    @blueprint.get("/queue")
    async def queue() -> Response:
        """Jobs by queue and state, and recent jobs (?state=&queue=)."""
        api = monitor.apis.get("aria_queue")
        if api is None:
            return error_response(404, "not_found", "aria_queue is not running on this node")
        state = request.args.get("state") or None
        name = request.args.get("queue") or None
        try:
            jobs = await api.jobs(state=state, queue=name, limit=50)
        except ValueError as exc:
            return error_response(400, "invalid_request", str(exc))
        return jsonify({"stats": await api.stats(), "jobs": [job.to_json() for job in jobs]})

    @blueprint.get("/security")
    async def security() -> Response:
        """OpenBao's seal state and recent authentication events (never a secret value)."""
        result: dict[str, Any] = {}
        keeper = monitor.apis.get("aria_security")
        if keeper is not None:
            result["openbao"] = keeper.status()
        auth = monitor.apis.get("aria_auth")
        if auth is not None:
            result["events"] = [_plain(event) for event in await auth.audit(limit=50)]
        return jsonify(result)

    @blueprint.get("/storage")
    async def storage() -> Response:
        """Assets and deduplication of the default store."""
        api = monitor.apis.get("aria_storage")
        if api is None:
            return error_response(404, "not_found", "aria_storage is not running on this node")
        return jsonify(await storage_overview(api))

    @blueprint.post("/tree/<path:path>/<action>")
    @requires("aria.supervisor:write")
    async def child_action(path: str, action: str) -> Response:
        """Restart, stop or kill (a crash, restarted by strategy) the child at ``path``."""
        system = monitor.system
        actions = {"restart": system.restart_child, "stop": system.terminate_child, "kill": system.kill_child}
        if action not in actions:
            return error_response(404, "not_found", f"no action {action!r}; actions: {', '.join(actions)}")
        try:
            await actions[action](path)
        except LookupError as exc:
            return error_response(404, "not_found", str(exc))
        except Exception as exc:
            return error_response(409, "conflict", f"{type(exc).__name__}: {exc}")
        return jsonify({"path": path, "action": action, "by": getattr(g, "principal_name", "")})

    return blueprint


def create_ops_blueprint(monitor: Any) -> Blueprint:
    """``/metrics`` (Prometheus), ``/health/live`` and ``/health/ready``, mounted at the root."""
    blueprint = Blueprint("aria_monitor_ops", __name__)

    @blueprint.get("/metrics")
    @public
    async def metrics() -> Response:
        """Prometheus metrics of this node (aria_ prefix, base units)."""
        # In the trio thread: the collector reads the live supervision tree (a few ms of work).
        body = monitor.metrics()
        return Response(body, content_type="text/plain; version=0.0.4; charset=utf-8")

    @blueprint.get("/health/live")
    @public
    async def live() -> Response:
        """200 while the process serves requests."""
        return jsonify({"live": True})

    @blueprint.get("/health/ready")
    @public
    async def ready() -> Response:
        """200 when every started app is ready; otherwise 503 naming the children that are not."""
        is_ready, not_ready = monitor.readiness()
        response = jsonify({"ready": is_ready, "not_ready": not_ready})
        response.status_code = 200 if is_ready else 503
        return response

    return blueprint


def create_dashboard(monitor: Any) -> Blueprint:
    """The pages, the live event stream and static files, mounted at ``/``."""
    blueprint = Blueprint(
        "aria_dashboard",
        __name__,
        template_folder=str(HERE / "templates"),
        static_folder=str(HERE / "static"),
        static_url_path="/static",
    )

    async def page(name: str) -> str:
        return await render_template(
            f"{name}.html",
            page=name,
            pages=PAGES,
            node=monitor.node,
            user=getattr(g, "principal_name", ""),
            is_admin=getattr(g, "is_admin", False),
        )

    @blueprint.get("/")
    async def home() -> str:
        return await page("home")

    for name in PAGES:
        if name == "home":
            continue

        async def view(name: str = name) -> str:
            return await page(name)

        view.__name__ = f"page_{name}"
        blueprint.add_url_rule(f"/{name}", view_func=view, methods=["GET"])

    @blueprint.get("/events")
    async def events() -> Response:
        """Server-sent events: the tree every second, log lines as they come, OS figures."""
        since = _int(request.args.get("since"), 0)

        async def stream() -> AsyncIterator[bytes]:
            last_seq = since
            tick = 0
            while True:
                yield _event("tree", monitor.system.tree())
                lines = monitor.logs(last_seq, limit=200)
                if lines:
                    last_seq = lines[-1]["seq"]
                    yield _event("logs", lines)
                if tick % 2 == 0:
                    yield _event("os", monitor.os_stats())
                tick += 1
                await trio.sleep(1.0)

        response = Response(stream(), content_type="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.timeout = None
        return response

    return blueprint


def apps_overview(monitor: Any) -> list[dict[str, Any]]:
    tree = monitor.system.tree()
    config = monitor.system.config.to_dict()
    overview = []
    for app in tree["root"]["children"]:
        section = app["id"].removeprefix("aria_")
        api = next((c for c in app.get("children", []) if "status" in c), None)
        overview.append(
            {
                "name": app["id"],
                "state": app["state"],
                "restarts": app["restarts"],
                "status": api["status"] if api else None,
                "config": config.get(section, {}),
            }
        )
    return overview


async def storage_overview(api: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in ("statistics", "list_assets"):
        method = getattr(api, name, None)
        if method is None:
            continue
        try:
            value = method()
            value = await value if hasattr(value, "__await__") else value
        except Exception as exc:
            result[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        result[name] = _plain(value)
    return result


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: getattr(v, "__dict__", str(v))))


def _event(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default
