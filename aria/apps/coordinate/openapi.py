"""The OpenAPI 3.1 document of the whole API, built from the mounted routes at start.

Each route under ``/api/``, ``/metrics`` and ``/health/`` becomes an operation: its summary from the
view's docstring, its path parameters from the URL rule, ``bearerAuth`` unless the view is public,
JSON request bodies for writes, and the error shape every route answers with.
"""

from __future__ import annotations

import re
from typing import Any

from quart import Quart

from aria.http import is_public

_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")
DOCUMENTED = ("/api/", "/metrics", "/health/")
ERRORS = {
    "400": "Bad request",
    "401": "Not authenticated",
    "403": "Not allowed",
    "404": "Not found",
    "409": "Conflict",
    "413": "Body too large",
    "429": "Rate limited",
    "503": "The app is restarting or failing",
    "504": "Timed out",
}


def openapi_document(app: Quart, public_url: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        path = rule.rule
        if rule.endpoint == "static" or not path.startswith(DOCUMENTED) or getattr(rule, "websocket", False):
            continue
        view = app.view_functions[rule.endpoint]
        template = _CONVERTER.sub(lambda m: "{" + m.group(2) + "}", path)
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
            for converter, name in _CONVERTER.findall(path)
        ]
        for method in sorted(rule.methods or ()):
            if method in ("HEAD", "OPTIONS"):
                continue
            operation: dict[str, Any] = {
                "operationId": f"{rule.endpoint}.{method.lower()}",
                "summary": (view.__doc__ or rule.endpoint).strip().splitlines()[0],
                "parameters": parameters,
                "responses": _responses(),
            }
            if is_public(view):
                operation["security"] = []
            if method in ("POST", "PUT", "PATCH"):
                operation["requestBody"] = {
                    "required": False,
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                    },
                }
            paths.setdefault(template, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Aria Character Core", "version": _version()},
        "servers": [{"url": public_url}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
                }
            },
        },
        "security": [{"bearerAuth": []}],
    }


def _responses() -> dict[str, Any]:
    anything = {"application/json": {"schema": {}}, "text/plain": {"schema": {}}}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        "200": {"description": "OK", "content": anything},
        **{code: {"description": text, "content": error} for code, text in ERRORS.items()},
        "default": {"description": "Another status", "content": anything},
    }


def _version() -> str:
    import aria

    return aria.__version__
