"""aria_storage's routes, mounted by the gateway at ``/api/v1/storage``.

* ``GET /assets?name=&limit=``: asset versions, by name then age (``aria_storage.assets:read``).
* ``POST /assets/<name>?version=``: upload; the request body is the content, streamed into the
  chunker, ``Content-Type`` its media type; 201 with the asset (``aria_storage.assets:write``).
  The gateway's body limit and deadline do not apply: the body streams with back-pressure
  (hypercorn stops reading while the chunker is behind), so an upload of any size holds about
  1 MiB of it in memory.
* ``GET /assets/<name>``: the versions of one asset (``aria_storage.assets:read``).
* ``GET /assets/<name>/<version>``: one version's metadata; ``latest`` is the newest (``...:read``).
* ``GET``/``HEAD /assets/<name>/<version>/content``: the content, with ``Range: bytes=`` (206, or
  416), ``ETag`` (the CAID), ``If-None-Match`` (304) and ``If-Range`` (``aria_storage.assets:read``).
* ``DELETE /assets/<name>/<version>``: remove it from the catalog; its chunks go at the next gc
  unless shared (``aria_storage.assets:delete``).
* ``GET /statistics?detail=1``: the catalog's numbers; ``detail`` adds per asset dedup figures
  (``aria_storage.statistics:read``).
* ``POST /gc?dry_run=1``: mark and sweep the default store (``aria_storage.gc:write``).

Errors: 400 for a bad name, version, content type or query; 404 for an unknown asset or version;
409 when the version exists or another gc is sweeping; 500
naming the chunk and store when the store fails.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify, request
from werkzeug.http import parse_range_header

from aria.apps.storage.catalog import DEFAULT_CONTENT_TYPE
from aria.apps.storage.errors import (
    AssetExists,
    AssetNotFound,
    StorageError,
    SweepInProgress,
    UploadExpired,
)
from aria.http import error_response, limits, requires


def create_blueprint(service: Any) -> Blueprint:
    """The routes, on ``service`` (a reference to the running :class:`StorageApi`)."""
    blueprint = Blueprint("aria_storage", __name__)

    @blueprint.get("/assets")
    @requires("aria_storage.assets:read")
    async def list_assets() -> Response:
        """Asset versions, by name then age (``?name=`` one asset, ``?limit=`` at most 1000 by default)."""
        limit = _int(request.args.get("limit", "1000"))
        if limit is None or not 1 <= limit <= 100_000:
            return error_response(400, "invalid_request", "limit must be an integer from 1 to 100000")
        try:
            return jsonify(await service.list_assets(request.args.get("name") or None, limit=limit))
        except ValueError as exc:
            return error_response(400, "invalid_request", str(exc))

    @blueprint.post("/assets/<name>")
    @requires("aria_storage.assets:write")
    @limits(max_body_bytes=None, timeout=None)  # streamed with back-pressure: any size, any duration
    async def upload(name: str) -> Response:
        """Store the request body as a new version of ``name`` (``?version=``, else the next number)."""
        try:
            asset = await service.put_asset(
                name,
                request.body,
                version=request.args.get("version") or None,
                content_type=request.headers.get("Content-Type") or DEFAULT_CONTENT_TYPE,
            )
        except (ValueError, TypeError) as exc:
            return error_response(400, "invalid_request", str(exc))
        except (AssetExists, UploadExpired) as exc:
            return error_response(409, "conflict", str(exc))
        except StorageError as exc:
            return error_response(500, "storage_error", str(exc))
        response = jsonify(asset.to_json())
        response.status_code = 201
        response.headers["Location"] = f"{request.path}/{asset.version}"
        return response

    @blueprint.get("/assets/<name>")
    @requires("aria_storage.assets:read")
    async def versions(name: str) -> Response:
        """The versions of one asset, oldest first."""
        try:
            found = await service.list_assets(name)
        except ValueError as exc:
            return error_response(400, "invalid_request", str(exc))
        if not found:
            return error_response(404, "not_found", f"asset {name!r} is not in the catalog")
        return jsonify(found)

    @blueprint.get("/assets/<name>/<version>")
    @requires("aria_storage.assets:read")
    async def metadata(name: str, version: str) -> Response:
        """One version's metadata; ``latest`` is the newest version."""
        try:
            return jsonify((await service.get_asset(name, version)).to_json())
        except AssetNotFound as exc:
            return error_response(404, "not_found", str(exc))
        except ValueError as exc:
            return error_response(400, "invalid_request", str(exc))

    @blueprint.route("/assets/<name>/<version>/content", methods=["GET", "HEAD"])
    @requires("aria_storage.assets:read")
    async def content(name: str, version: str) -> Response:
        """The content, streamed from the store, whole or one byte range."""
        try:
            reader = await service.open_asset(name, version)
        except AssetNotFound as exc:
            return error_response(404, "not_found", str(exc))
        except ValueError as exc:
            return error_response(400, "invalid_request", str(exc))
        asset, size = reader.asset, reader.size
        etag = f'"{asset.caid}"'
        headers = {"ETag": etag, "Accept-Ranges": "bytes", "Content-Type": asset.content_type}
        if etag in _etags(request.headers.get("If-None-Match", "")):
            return Response(b"", status=304, headers=headers)
        start, stop, status = 0, size, 200
        wanted = parse_range_header(request.headers.get("Range"))
        if_range = request.headers.get("If-Range")
        # One range is served as asked; several are answered with the whole content (RFC 9110
        # lets a server ignore Range), as is a Range whose If-Range names another version.
        if wanted is not None and len(wanted.ranges) == 1 and (if_range is None or if_range == etag):
            span = wanted.range_for_length(size)
            if span is None:
                headers["Content-Range"] = f"bytes */{size}"
                response = error_response(416, "range_not_satisfiable", f"the asset has {size} bytes")
                response.headers.update(headers)
                response.headers["Content-Type"] = "application/json"
                return response
            start, stop = span
            status = 206
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        # quart.Response, not the app's trio class: its body wrapper takes any async iterator.
        body = reader.stream(start, stop - start) if request.method == "GET" else b""
        response = Response(body, status=status, headers=headers)
        response.headers["Content-Length"] = str(stop - start)
        response.timeout = None  # a large download may take longer than Quart's response timeout
        return response

    @blueprint.delete("/assets/<name>/<version>")
    @requires("aria_storage.assets:delete")
    async def delete(name: str, version: str) -> Response:
        """Remove a version from the catalog; its chunks go at the next gc unless other assets share them."""
        try:
            return jsonify((await service.delete_asset(name, version)).to_json())
        except AssetNotFound as exc:
            return error_response(404, "not_found", str(exc))
        except ValueError as exc:
            return error_response(400, "invalid_request", str(exc))

    @blueprint.get("/statistics")
    @requires("aria_storage.statistics:read")
    async def statistics() -> Response:
        """Assets, bytes, stored (distinct chunk) bytes, chunks, dedup ratio, uploads in progress;
        ``?detail=1`` adds each version's distinct and exclusive bytes (fresh from the catalog)."""
        if request.args.get("detail") in ("1", "true"):
            return jsonify(await service.dedup_statistics(request.args.get("name") or None))
        live = await service.get()
        return jsonify(live.statistics())

    @blueprint.post("/gc")
    @requires("aria_storage.gc:write")
    async def gc() -> Response:
        """Delete the default store's chunks that no asset references (``?dry_run=1`` counts only)."""
        dry_run = request.args.get("dry_run") in ("1", "true")
        try:
            report = await service.gc(dry_run=dry_run)
        except SweepInProgress as exc:
            return error_response(409, "conflict", str(exc))
        except StorageError as exc:
            return error_response(500, "storage_error", str(exc))
        return jsonify(report.to_json())

    return blueprint


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
