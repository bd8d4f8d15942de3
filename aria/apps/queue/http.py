"""aria_queue's routes, mounted by the gateway at ``/api/v1/queue``.

| method | path | what |
|---|---|---|
| GET | ``/stats`` | jobs per queue and state; this node's queues |
| GET | ``/jobs?state=&queue=&limit=`` | jobs, newest first |
| POST | ``/jobs`` | insert ``{worker, args, queue?, priority?, schedule_in?, max_attempts?, tags?, meta?}`` |
| GET | ``/jobs/<id>`` | one job |
| POST | ``/jobs/<id>/retry``, ``/jobs/<id>/cancel`` | retry or cancel it |
| POST | ``/queues/<name>/pause``, ``/resume``, ``/scale`` (``{limit}``) | this node's queue |
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify, request

from aria.apps.queue.errors import JobNotFound, QueueUsageError
from aria.http import error_response, requires

_INSERT_KEYS = {"worker", "args", "queue", "priority", "schedule_in", "max_attempts", "tags", "meta"}


def create_blueprint(queue: Any) -> Blueprint:
    blueprint = Blueprint("aria_queue", __name__)

    @blueprint.get("/stats")
    @requires("aria_queue.jobs:read")
    async def stats() -> Response:
        """Jobs per queue and state, and this node's queues."""
        return jsonify(await queue.stats())

    @blueprint.get("/jobs")
    @requires("aria_queue.jobs:read")
    async def jobs() -> Response:
        """Jobs, newest first (?state=&queue=&limit=)."""
        raw = request.args.get("limit", "50")
        limit = int(raw) if raw.isdigit() else 0
        if not 1 <= limit <= 1000:
            return error_response(400, "invalid_request", "limit must be an integer from 1 to 1000")
        try:
            found = await queue.jobs(
                state=request.args.get("state") or None, queue=request.args.get("queue") or None, limit=limit
            )
        except QueueUsageError as exc:
            return error_response(400, "invalid_request", str(exc))
        return jsonify([job.to_json() for job in found])

    @blueprint.post("/jobs")
    @requires("aria_queue.jobs:write")
    async def insert() -> Response:
        """Insert a job."""
        body = await request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("worker"), str):
            return error_response(
                400, "invalid_request", "the body must be a JSON object with a 'worker' string"
            )
        unknown = set(body) - _INSERT_KEYS
        if unknown:
            return error_response(400, "invalid_request", f"unknown fields {sorted(unknown)}")
        args = body.get("args", {})
        if not isinstance(args, dict):
            return error_response(400, "invalid_request", "args must be a JSON object")
        options = {
            k: body[k]
            for k in ("queue", "priority", "schedule_in", "max_attempts", "tags", "meta")
            if k in body
        }
        try:
            job = await queue.insert(body["worker"], args, **options)
        except (QueueUsageError, TypeError) as exc:
            return error_response(400, "invalid_request", str(exc))
        response = jsonify(job.to_json())
        response.status_code = 201
        return response

    @blueprint.get("/jobs/<job_id>")
    @requires("aria_queue.jobs:read")
    async def get_job(job_id: str) -> Response:
        """One job."""
        try:
            return jsonify((await queue.get_job(job_id)).to_json())
        except JobNotFound as exc:
            return error_response(404, "not_found", str(exc))
        except QueueUsageError as exc:
            return error_response(400, "invalid_request", str(exc))

    @blueprint.post("/jobs/<job_id>/<action>")
    @requires("aria_queue.jobs:write")
    async def job_action(job_id: str, action: str) -> Response:
        """Retry or cancel a job."""
        if action not in ("retry", "cancel"):
            return error_response(404, "not_found", f"no action {action!r}; actions: retry, cancel")
        try:
            job = await (queue.retry_job(job_id) if action == "retry" else queue.cancel_job(job_id))
        except JobNotFound as exc:
            return error_response(404, "not_found", str(exc))
        except QueueUsageError as exc:
            return error_response(409, "conflict", str(exc))
        return jsonify(job.to_json())

    @blueprint.post("/queues/<name>/<action>")
    @requires("aria_queue.queues:write")
    async def queue_action(name: str, action: str) -> Response:
        """Pause, resume or scale (``{"limit": n}``) one of this node's queues."""
        try:
            if action == "pause":
                queue.pause(name)
            elif action == "resume":
                queue.resume(name)
            elif action == "scale":
                body = await request.get_json(silent=True)
                limit = body.get("limit") if isinstance(body, dict) else None
                queue.scale(name, limit)
            else:
                return error_response(
                    404, "not_found", f"no action {action!r}; actions: pause, resume, scale"
                )
        except QueueUsageError as exc:
            return error_response(400, "invalid_request", str(exc))
        return jsonify(queue.status()["queues"].get(name, {}))

    return blueprint
