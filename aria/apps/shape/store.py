"""aria_shape's SQL: batches (requests for characters) and the characters they made.

Portable between CockroachDB 22.1 and PostgreSQL 15. ``db`` is aria_data's Database or one of its
transactions: both have fetch/fetchrow/fetchval/execute/executemany. JSON goes in as text cast to
JSONB and comes back as text (asyncpg's default), decoded here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from aria.apps.shape.schema import SCHEMA_VERSION

MIGRATIONS = Path(__file__).parent / "migrations"

BATCH_COLUMNS = (
    "id, kind, state, prompt, constraints, n, seed, parameters, model, job_id, requested_by, runs, error, "
    "stats, created_at, started_at, finished_at"
)
CHARACTER_COLUMNS = (
    "id, batch_id, idx, schema_version, model, seed, parameters, prompt, constraints, character, "
    "attempts, repaired_rules, tokens, created_at"
)

INSERT_BATCH = f"""INSERT INTO aria_shape_batches
    (id, kind, state, prompt, constraints, n, seed, parameters, model, job_id, requested_by, stats,
     started_at, finished_at)
VALUES ($1, $2, $3, $4, $5::JSONB, $6, $7, $8::JSONB, $9, $10, $11, $12::JSONB,
        CASE WHEN $3 = 'queued' THEN NULL ELSE now() END, CASE WHEN $3 = 'completed' THEN now() END)
RETURNING {BATCH_COLUMNS}"""

GET_BATCH = f"SELECT {BATCH_COLUMNS} FROM aria_shape_batches WHERE id = $1"

# A batch's model is set by the first run; later runs must have the same one (checked by the caller).
START_BATCH = f"""UPDATE aria_shape_batches
SET state = 'running', runs = runs + 1, model = COALESCE(model, $2), started_at = COALESCE(started_at, now()),
    error = NULL
WHERE id = $1 AND state IN ('queued', 'running')
RETURNING {BATCH_COLUMNS}"""

FINISH_BATCH = f"""UPDATE aria_shape_batches
SET state = $2, error = $3, stats = $4::JSONB, finished_at = now()
WHERE id = $1
RETURNING {BATCH_COLUMNS}"""

STORED_INDICES = "SELECT idx FROM aria_shape_characters WHERE batch_id = $1"

INSERT_CHARACTER = """INSERT INTO aria_shape_characters
    (id, batch_id, idx, schema_version, model, seed, parameters, prompt, constraints, character,
     attempts, repaired_rules, tokens)
VALUES ($1, $2, $3, $4, $5, $6, $7::JSONB, $8, $9::JSONB, $10::JSONB, $11, $12::JSONB, $13)
ON CONFLICT (batch_id, idx) DO NOTHING"""

BATCH_CHARACTERS = f"""SELECT {CHARACTER_COLUMNS} FROM aria_shape_characters
WHERE batch_id = $1 ORDER BY idx LIMIT $2 OFFSET $3"""

GET_CHARACTER = f"SELECT {CHARACTER_COLUMNS} FROM aria_shape_characters WHERE id = $1"

COUNT_CHARACTERS = "SELECT count(*) FROM aria_shape_characters WHERE batch_id = $1"


def parse_id(value: str, what: str) -> uuid.UUID:
    """``value`` as a UUID.

    Raises:
        ValueError: naming ``what`` when it is not one.
    """
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValueError(f"{what} id {value!r} is not a UUID") from None


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=False)


def _decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def batch_dict(record: Mapping[str, Any], done: int | None = None) -> dict[str, Any]:
    """A batch row as the API and the routes show it (``done``: characters stored so far)."""
    data = {
        "id": str(record["id"]),
        "kind": record["kind"],
        "state": record["state"],
        "n": record["n"],
        "seed": record["seed"],
        "prompt": record["prompt"],
        "constraints": _decoded(record["constraints"]),
        "parameters": _decoded(record["parameters"]),
        "model": record["model"],
        "job_id": str(record["job_id"]) if record["job_id"] is not None else None,
        "requested_by": record["requested_by"],
        "runs": record["runs"],
        "error": record["error"],
        "stats": _decoded(record["stats"]),
        "created_at": _time(record["created_at"]),
        "started_at": _time(record["started_at"]),
        "finished_at": _time(record["finished_at"]),
    }
    if done is not None:
        data["done"] = done
    return data


def character_dict(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored character in the shape of ``GeneratedCharacter.to_dict()`` plus its id and batch."""
    return {
        "id": str(record["id"]),
        "character": _decoded(record["character"]),
        "meta": {
            "batch": str(record["batch_id"]),
            "schema_version": record["schema_version"],
            "model": record["model"],
            "seed": record["seed"],
            "index": record["idx"],
            "attempts": record["attempts"],
            "repaired_rules": _decoded(record["repaired_rules"]),
            "prompt": record["prompt"],
            "constraints": _decoded(record["constraints"]),
            "parameters": _decoded(record["parameters"]),
            "tokens": record["tokens"],
            "created_at": _time(record["created_at"]),
        },
    }


async def insert_batch(
    db: Any,
    *,
    batch_id: uuid.UUID,
    kind: str,
    state: str,
    prompt: str | None,
    constraints: Mapping[str, Any] | None,
    n: int,
    seed: int,
    parameters: Mapping[str, Any],
    model: str | None = None,
    job_id: uuid.UUID | None = None,
    requested_by: str | None = None,
    stats: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    record = await db.fetchrow(
        INSERT_BATCH,
        batch_id,
        kind,
        state,
        prompt,
        _json(dict(constraints) if constraints else None),
        n,
        seed,
        _json(dict(parameters)),
        model,
        job_id,
        requested_by,
        _json(dict(stats or {})),
    )
    return batch_dict(record)


async def get_batch(db: Any, batch_id: uuid.UUID) -> dict[str, Any] | None:
    record = await db.fetchrow(GET_BATCH, batch_id)
    if record is None:
        return None
    return batch_dict(record, done=await db.fetchval(COUNT_CHARACTERS, batch_id))


async def start_batch(db: Any, batch_id: uuid.UUID, model: str) -> dict[str, Any] | None:
    """Mark a queued or running batch as running (another run); None if it is finished or gone."""
    record = await db.fetchrow(START_BATCH, batch_id, model)
    return batch_dict(record) if record is not None else None


async def finish_batch(
    db: Any, batch_id: uuid.UUID, state: str, stats: Mapping[str, Any], error: str | None = None
) -> dict[str, Any]:
    record = await db.fetchrow(FINISH_BATCH, batch_id, state, error, _json(dict(stats)))
    return batch_dict(record)


async def stored_indices(db: Any, batch_id: uuid.UUID) -> set[int]:
    return {record["idx"] for record in await db.fetch(STORED_INDICES, batch_id)}


def character_rows(batch_id: uuid.UUID, characters: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Rows for :data:`INSERT_CHARACTER`, one per ``GeneratedCharacter``; each gets its new id."""
    rows = []
    for made in characters:
        made.id = str(uuid.uuid4())
        made.batch = str(batch_id)
        rows.append(
            (
                uuid.UUID(made.id),
                batch_id,
                made.index,
                SCHEMA_VERSION,
                made.model,
                made.seed,
                _json(made.parameters),
                made.prompt,
                _json(made.constraints),
                _json(made.character),
                made.attempts,
                _json(made.repaired_rules),
                made.tokens,
            )
        )
    return rows


async def insert_characters(db: Any, batch_id: uuid.UUID, characters: Sequence[Any]) -> None:
    """Store characters of a batch; an index stored already (a rerun) is left as it was."""
    if characters:
        await db.executemany(INSERT_CHARACTER, character_rows(batch_id, characters))


async def batch_characters(
    db: Any, batch_id: uuid.UUID, limit: int = 1000, offset: int = 0
) -> list[dict[str, Any]]:
    return [character_dict(r) for r in await db.fetch(BATCH_CHARACTERS, batch_id, limit, offset)]


async def get_character(db: Any, character_id: uuid.UUID) -> dict[str, Any] | None:
    record = await db.fetchrow(GET_CHARACTER, character_id)
    return character_dict(record) if record is not None else None
