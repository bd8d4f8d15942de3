"""The character sheet's JSON Schema: loading it, checking a document against it, narrowing it.

The schema lives in ``schema/character-<version>.schema.json`` (documented field by field in the
app's README). Rules that a JSON Schema cannot express live in :mod:`aria.apps.shape.rules`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_VERSION = "1"
SCHEMA_FILE = Path(__file__).parent / "schema" / f"character-{SCHEMA_VERSION}.schema.json"

#: Top-level fields whose value a caller may fix or restrict through ``constraints``.
CONSTRAINABLE = ("name", "pronouns", "species", "archetype", "age")


@dataclass(frozen=True)
class SchemaError:
    """One way a document breaks the schema: where (a JSON path such as ``stats.strength``) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


@functools.cache
def _schema_text() -> str:
    return SCHEMA_FILE.read_text(encoding="utf-8")


def character_schema() -> dict[str, Any]:
    """A fresh copy of the character sheet schema (callers may change their copy)."""
    return json.loads(_schema_text())


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(character_schema())


def schema_errors(document: Any, schema: Mapping[str, Any] | None = None) -> list[SchemaError]:
    """Every way ``document`` breaks the character schema (or ``schema``), in document order."""
    validator = _validator() if schema is None else jsonschema.Draft202012Validator(dict(schema))
    errors = [
        SchemaError(".".join(str(part) for part in error.absolute_path), error.message)
        for error in validator.iter_errors(document)
    ]
    return sorted(errors, key=lambda e: e.path)


def parse_character(text: str) -> tuple[dict[str, Any] | None, list[SchemaError]]:
    """Parse generated text strictly; return the document (None if not JSON) and its schema errors."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [SchemaError("", f"not valid JSON: {exc.msg} at character {exc.pos}")]
    return document, schema_errors(document)


def schema_digest() -> str:
    """A short hash of the schema file: models trained on one field order are tied to it."""
    return hashlib.sha256(_schema_text().encode()).hexdigest()[:10]


def in_schema_order(document: Any, schema: Mapping[str, Any] | None = None) -> Any:
    """A copy of ``document`` with object keys in the schema's property order (how sheets are written)."""
    schema = character_schema() if schema is None else schema
    if isinstance(document, dict) and "properties" in schema:
        properties = schema["properties"]
        ordered = {
            key: in_schema_order(document[key], properties[key]) for key in properties if key in document
        }
        ordered.update({key: value for key, value in document.items() if key not in properties})
        return ordered
    if isinstance(document, list) and isinstance(schema.get("items"), Mapping):
        items = schema["items"]
        if "anyOf" in items:
            return [in_schema_order(value, items["anyOf"][0]) for value in document]
        return [in_schema_order(value, items) for value in document]
    return document


def constrained_schema(constraints: Mapping[str, Any] | None) -> dict[str, Any]:
    """The schema with some top-level fields fixed or restricted.

    Args:
        constraints: ``{field: value}`` fixes a field; ``{field: [v1, v2]}`` restricts it to those
            values. Fields must be among :data:`CONSTRAINABLE`, and values must be allowed by the
            schema itself.

    Raises:
        ValueError: naming the field and value when a constraint is unknown or impossible.
    """
    schema = character_schema()
    if not constraints:
        return schema
    if not isinstance(constraints, Mapping):
        raise TypeError(
            f"constraints must be a mapping of field to value(s), not {type(constraints).__name__}"
        )
    for field, wanted in constraints.items():
        if field not in CONSTRAINABLE:
            raise ValueError(
                f"constraint on {field!r} is not supported; "
                f"constrainable fields are: {', '.join(CONSTRAINABLE)}"
            )
        values = list(wanted) if isinstance(wanted, list | tuple | set | frozenset) else [wanted]
        if not values:
            raise ValueError(f"constraint on {field!r} allows no value at all")
        base = schema["properties"][field]
        for value in values:
            problems = jsonschema.Draft202012Validator(base).iter_errors(value)
            first = next(iter(problems), None)
            if first is not None:
                raise ValueError(f"constraint {field}={value!r} is impossible: {first.message}")
        narrowed = copy.deepcopy(base)
        narrowed.pop("enum", None)
        if len(values) == 1:
            narrowed["const"] = values[0]
        else:
            narrowed["enum"] = sorted(set(values), key=values.index)
        for keyword in ("pattern", "minimum", "maximum"):
            narrowed.pop(keyword, None)  # the enum says it all; some decoders choke on both
        schema["properties"][field] = narrowed
    return schema
