"""aria_shape's routes, mounted by the gateway at ``/api/v1/shape``.

* ``POST /characters`` (``aria_shape.characters:write``): generate now and store,
  ``{prompt?, constraints?, n?, seed?}`` with ``n`` up to ``shape.http_max_characters``;
  answers ``{batch, characters}``.
* ``GET /characters/<id>`` (``aria_shape.characters:read``): one stored character.
* ``POST /batches`` (``aria_shape.batches:write``): queue a batch on ``ai_generation``,
  ``{prompt?, constraints?, n, seed?, priority?}``; answers 202 with the batch.
* ``GET /batches/<id>`` (``aria_shape.batches:read``): its state, ``done`` count, model,
  parameters and error.
* ``GET /batches/<id>/characters?limit=&offset=`` (``aria_shape.characters:read``): its stored
  characters in index order.
* WebSocket ``/stream`` (``aria_shape.characters:write``): send one request as for
  ``POST /characters``; receive ``token``, ``retry``, ``character`` and ``done`` messages.

Generation routes answer 503 (``model_not_ready``) while the default model is untrained: a request
never starts a training of minutes. The gateway checks a WebSocket's credentials
(``Authorization: Bearer`` or ``?access_token=``) and the view's permission before the handshake.
"""

from __future__ import annotations

import json
from typing import Any

import trio
from quart import Blueprint, Response, g, jsonify, request, websocket

from aria.apps.shape.errors import GenerationFailed, ShapeError
from aria.http import error_response, requires

_REQUEST_KEYS = {"prompt", "constraints", "n", "seed"}
#: Seconds a WebSocket client has to send its request after connecting.
STREAM_REQUEST_TIMEOUT = 30.0


class BadRequest(ValueError):
    """A request body that is not what the route takes (answered with 400)."""


def _generation_request(body: Any, *, batch: bool = False, limit: int | None = None) -> dict[str, Any]:
    """The keyword arguments of a generation request body (``limit``: the most characters).

    Raises:
        BadRequest: naming what is wrong.
    """
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    allowed = _REQUEST_KEYS | ({"priority"} if batch else set())
    unknown = set(body) - allowed
    if unknown:
        raise BadRequest(f"unknown fields {sorted(unknown)}; allowed: {sorted(allowed)}")
    arguments = {key: body[key] for key in allowed if key in body}
    constraints = arguments.get("constraints")
    if constraints is not None and not isinstance(constraints, dict):
        raise BadRequest("constraints must be a JSON object of field to value(s)")
    for key in ("n", "seed", "priority"):
        value = arguments.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise BadRequest(f"{key} must be an integer, not {json.dumps(value)[:40]}")
    prompt = arguments.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise BadRequest("prompt must be a string")
    if limit is not None and arguments.get("n", 1) > limit:
        raise BadRequest(f"n must be at most {limit} here; submit a batch (POST /batches) for more")
    return arguments


def _principal_name() -> str | None:
    principal = g.get("principal")
    return getattr(principal, "name", None)


def create_blueprint(shape: Any) -> Blueprint:
    """The routes; ``shape`` is a reference to :class:`~aria.apps.shape.api.ShapeApi`."""
    from aria.apps.shape.api import BatchNotFound, CharacterNotFound

    blueprint = Blueprint("aria_shape", __name__)

    def failure(exc: Exception) -> Response:
        """The error response for what the API raised."""
        if isinstance(exc, BatchNotFound | CharacterNotFound):
            return error_response(404, "not_found", str(exc))
        if isinstance(exc, BadRequest | ValueError | TypeError):
            return error_response(400, "invalid_request", str(exc))
        if isinstance(exc, GenerationFailed):
            return error_response(422, "generation_failed", str(exc))
        return error_response(503, "model_not_ready" if "train" in str(exc) else "unavailable", str(exc))

    async def ready() -> Response | None:
        live = await shape.get()
        if live.model_ready():
            return None
        try:
            live.require_model_ready()
        except ShapeError as exc:
            return error_response(503, "model_not_ready", str(exc), Retry_After="60")
        return None

    @blueprint.post("/characters")
    @requires("aria_shape.characters:write")
    async def generate() -> Response:
        """Generate characters now and store them (small requests; queue big ones as a batch)."""
        try:
            limit = (await shape.get()).service.settings.http_max_characters
            arguments = _generation_request(await request.get_json(silent=True), limit=limit)
            not_ready = await ready()
            if not_ready is not None:
                return not_ready
            characters = await shape.generate(**arguments, requested_by=_principal_name())
        except (BadRequest, ValueError, TypeError, LookupError, ShapeError) as exc:
            return failure(exc)
        made = [character.to_dict() for character in characters]
        return jsonify({"batch": made[0]["meta"].get("batch"), "characters": made})

    @blueprint.get("/characters/<character_id>")
    @requires("aria_shape.characters:read")
    async def character(character_id: str) -> Response:
        """One stored character: the sheet and how it was made."""
        try:
            return jsonify(await shape.character(character_id))
        except (LookupError, ShapeError) as exc:
            return failure(exc)

    @blueprint.post("/batches")
    @requires("aria_shape.batches:write")
    async def submit() -> Response:
        """Queue a batch of characters on the ai_generation queue."""
        try:
            arguments = _generation_request(await request.get_json(silent=True), batch=True)
            not_ready = await ready()
            if not_ready is not None:
                return not_ready
            batch = await shape.submit(**arguments, requested_by=_principal_name())
        except (BadRequest, ValueError, TypeError, LookupError, ShapeError) as exc:
            return failure(exc)
        response = jsonify(batch)
        response.status_code = 202
        response.headers["Location"] = f"{request.path}/{batch['id']}"
        return response

    @blueprint.get("/batches/<batch_id>")
    @requires("aria_shape.batches:read")
    async def batch(batch_id: str) -> Response:
        """A batch: its request, state, progress, model and error."""
        try:
            return jsonify(await shape.batch(batch_id))
        except (LookupError, ShapeError) as exc:
            return failure(exc)

    @blueprint.get("/batches/<batch_id>/characters")
    @requires("aria_shape.characters:read")
    async def results(batch_id: str) -> Response:
        """A batch's stored characters in index order (?limit=&offset=)."""
        try:
            limit = _int_arg("limit", 1000)
            offset = _int_arg("offset", 0)
            return jsonify(await shape.results(batch_id, limit=limit, offset=offset))
        except (BadRequest, ValueError, LookupError, ShapeError) as exc:
            return failure(exc)

    @blueprint.websocket("/stream")
    @requires("aria_shape.characters:write")
    async def stream() -> None:
        """Generate characters, streaming their tokens as they are drawn."""
        await _stream(shape)

    return blueprint


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise BadRequest(f"{name} must be a non-negative integer, not {raw[:40]!r}")
    return int(raw)


async def _stream(shape: Any) -> None:
    """One WebSocket session: read one request, stream, close.

    Closes with 1000 when done, 4400 for a bad request, 4408 when no request came in time, 4422
    when generation failed and 4503 when the model is not ready; an ``{"type": "error", "error",
    "error_description"}`` message comes first.
    """
    live = await shape.get()
    principal = g.get("principal")

    async def refuse(code: int, error: str, description: str) -> None:
        await websocket.send(json.dumps({"type": "error", "error": error, "error_description": description}))
        await websocket.close(code)

    await websocket.accept()
    with trio.move_on_after(STREAM_REQUEST_TIMEOUT) as waited:
        raw = await websocket.receive()
    if waited.cancelled_caught:
        await refuse(4408, "timeout", f"no request within {STREAM_REQUEST_TIMEOUT:g} s")
        return
    try:
        limit = live.service.settings.http_max_characters
        arguments = _generation_request(json.loads(raw), limit=limit)
    except (ValueError, TypeError) as exc:
        await refuse(4400, "invalid_request", str(exc))
        return
    if not live.model_ready():
        try:
            live.require_model_ready()
        except ShapeError as exc:
            await refuse(4503, "model_not_ready", str(exc))
            return

    async def send(event: dict[str, Any]) -> None:
        await websocket.send(json.dumps(event))

    try:
        await live.stream(send, **arguments, requested_by=getattr(principal, "name", None))
    except (ValueError, TypeError) as exc:
        await refuse(4400, "invalid_request", str(exc))
        return
    except GenerationFailed as exc:
        await refuse(4422, "generation_failed", str(exc))
        return
    except ShapeError as exc:
        await refuse(4503, "unavailable", str(exc))
        return
    await websocket.close(1000)
