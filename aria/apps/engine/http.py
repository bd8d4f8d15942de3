"""aria_engine's routes, mounted by the gateway at ``/api/v1/engine``.

* ``GET /domains`` (``aria_engine.domains:read``): registered domains with their actions, tasks,
  methods and goal variables.
* ``POST /plan`` (``aria_engine.plans:write``): plan a request now, within the synchronous limits.
* ``POST /requests`` (``aria_engine.requests:write``): queue a request; ``202`` with its id and
  state. The body is that of ``/plan``, plus ``priority`` (0-9).
* ``GET /requests?state=&limit=`` (``aria_engine.requests:read``): stored requests, newest first,
  without results.
* ``GET /requests/<id>?wait=S`` (``aria_engine.requests:read``): one request with its job and its
  result; ``wait`` (up to 20 s) holds the answer until the request is finished.
* ``POST /requests/<id>/cancel`` (``aria_engine.requests:write``): cancel a queued or running one.

A plan request is ``{"domain", "state", "todo", "strategy"?, "max_expansions"?, "time_limit"?,
"options"?}`` in the engine's JSON forms (see :mod:`aria.apps.engine.serialize`). Errors: ``400``
for a malformed request, an unknown domain or limits beyond the synchronous ones, ``404`` for an
unknown request id, ``409`` for cancelling a finished request, ``422`` when the domain misbehaves,
``503`` while aria_engine restarts.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, g, jsonify, request

from aria.apps.engine.errors import (
    DomainError,
    EngineStopped,
    LimitTooHigh,
    PlanningQueueUnavailable,
    RequestFinished,
    RequestNotFound,
    SerializationError,
    UnknownDomain,
)
from aria.apps.queue.api import QueueUsageError
from aria.http import error_response, requires

#: The longest a status request may wait for its request to finish (below the gateway's timeout).
MAX_WAIT_S = 20.0


def create_blueprint(engine: Any) -> Blueprint:
    """The routes, calling ``engine`` (aria_engine's API; a ServiceRef waits through its restarts)."""
    blueprint = Blueprint("aria_engine", __name__)

    @blueprint.get("/domains")
    @requires("aria_engine.domains:read")
    async def domains() -> Response:
        """Registered planning domains with their actions, tasks, methods and goal variables."""
        return jsonify(await engine.describe_domains())

    @blueprint.post("/plan")
    @requires("aria_engine.plans:write")
    async def plan_now() -> Response:
        """Plan a request now, within the synchronous limits; returns status, plan, tree, stats."""
        body = await request.get_json(silent=True)
        try:
            return jsonify(await engine.plan_now(body))
        except (SerializationError, LimitTooHigh) as exc:
            return error_response(400, "invalid_request", str(exc))
        except UnknownDomain as exc:
            return error_response(400, "unknown_domain", str(exc))
        except DomainError as exc:
            return error_response(422, "domain_error", str(exc))
        except EngineStopped as exc:
            return error_response(503, "unavailable", str(exc), Retry_After="2")

    @blueprint.post("/requests")
    @requires("aria_engine.requests:write")
    async def submit() -> Response:
        """Queue a planning request on the planning queue; returns its id (202)."""
        body = await request.get_json(silent=True)
        if not isinstance(body, dict):
            return error_response(400, "invalid_request", "the body must be a JSON plan request object")
        body = dict(body)
        priority = body.pop("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 9:
            return error_response(400, "invalid_request", f"priority must be 0..9, not {priority!r}")
        try:
            request_id = await engine.submit(
                body, priority=priority, submitted_by=g.get("principal_name") or None
            )
            status = await engine.request_status(request_id)
        except (SerializationError, QueueUsageError) as exc:
            return error_response(400, "invalid_request", str(exc))
        except UnknownDomain as exc:
            return error_response(400, "unknown_domain", str(exc))
        except PlanningQueueUnavailable as exc:
            return error_response(503, "unavailable", str(exc))
        response = jsonify(status)
        response.status_code = 202
        response.headers["Location"] = f"{request.path}/{request_id}"
        return response

    @blueprint.get("/requests")
    @requires("aria_engine.requests:read")
    async def list_requests() -> Response:
        """Stored planning requests, newest first (?state=&limit=), without their results."""
        raw = request.args.get("limit", "50")
        limit = int(raw) if raw.isdigit() else 0
        try:
            found = await engine.requests(state=request.args.get("state") or None, limit=limit)
        except ValueError as exc:
            return error_response(400, "invalid_request", str(exc))
        except PlanningQueueUnavailable as exc:
            return error_response(503, "unavailable", str(exc))
        return jsonify(found)

    @blueprint.get("/requests/<request_id>")
    @requires("aria_engine.requests:read")
    async def request_status(request_id: str) -> Response:
        """One planning request: state, attempts, its job, and the result once done (?wait=seconds)."""
        raw = request.args.get("wait", "0")
        try:
            wait = float(raw)
        except ValueError:
            wait = -1.0
        if not 0 <= wait <= MAX_WAIT_S:
            return error_response(400, "invalid_request", f"wait must be seconds from 0 to {MAX_WAIT_S:g}")
        try:
            if wait > 0:
                return jsonify(await engine.wait_for_request(request_id, wait))
            return jsonify(await engine.request_status(request_id))
        except RequestNotFound as exc:
            return error_response(404, "not_found", str(exc))
        except PlanningQueueUnavailable as exc:
            return error_response(503, "unavailable", str(exc))

    @blueprint.post("/requests/<request_id>/cancel")
    @requires("aria_engine.requests:write")
    async def cancel(request_id: str) -> Response:
        """Cancel a queued or running planning request."""
        try:
            return jsonify(await engine.cancel_request(request_id))
        except RequestNotFound as exc:
            return error_response(404, "not_found", str(exc))
        except RequestFinished as exc:
            return error_response(409, "conflict", str(exc))
        except PlanningQueueUnavailable as exc:
            return error_response(503, "unavailable", str(exc))

    return blueprint
