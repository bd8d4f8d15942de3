"""aria_engine's SQL: planning requests and their results (``aria_engine_requests``).

Portable between CockroachDB 22.1 and PostgreSQL 15. JSON goes in as text cast to JSONB and comes
back as text (aria_data sets no JSON codec). ``db`` is aria_data's Database or one of its
transactions.

A request moves ``queued`` -> ``running`` (each attempt of its job counts in ``attempts``) ->
``done`` (the planner returned: ``outcome`` is success, failure or a limit, ``result`` holds plan,
tree, stats and explanation), ``error`` (the domain misbehaved, or the job gave up) or
``cancelled``. Finishing is conditional on the request not being finished yet, so a job retried
after its result was stored changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

COLUMNS = (
    "id, domain, state, outcome, error, attempts, submitted_by, planned_by, "
    "created_at, started_at, finished_at"
)
FINAL_STATES = ("done", "error", "cancelled")
STATES = ("queued", "running", *FINAL_STATES)

INSERT = """INSERT INTO aria_engine_requests (id, domain, request, submitted_by)
VALUES ($1, $2, $3::JSONB, $4)"""

GET = f"SELECT {COLUMNS}, result FROM aria_engine_requests WHERE id = $1"

GET_REQUEST = "SELECT request, state FROM aria_engine_requests WHERE id = $1"

START_ATTEMPT = """UPDATE aria_engine_requests
SET state = 'running', attempts = attempts + 1, started_at = now(), planned_by = $2
WHERE id = $1 AND state IN ('queued', 'running')
RETURNING request"""

FINISH = """UPDATE aria_engine_requests
SET state = $2, outcome = $3, result = $4::JSONB, error = $5, finished_at = now()
WHERE id = $1 AND state IN ('queued', 'running')"""

CANCEL = """UPDATE aria_engine_requests SET state = 'cancelled', finished_at = now()
WHERE id = $1 AND state IN ('queued', 'running')
RETURNING id"""

LIST = f"""SELECT {COLUMNS} FROM aria_engine_requests
WHERE ($1::TEXT IS NULL OR state = $1)
ORDER BY created_at DESC, id LIMIT $2"""

PRUNE = """DELETE FROM aria_engine_requests
WHERE state IN ('done', 'error', 'cancelled') AND finished_at < $1"""


def request_from_record(record: Any, *, with_result: bool) -> dict[str, Any]:
    """The JSON form of a stored request (times as ISO 8601)."""
    data: dict[str, Any] = {
        "id": str(record["id"]),
        "domain": record["domain"],
        "state": record["state"],
        "outcome": record["outcome"],
        "error": record["error"],
        "attempts": record["attempts"],
        "submitted_by": record["submitted_by"],
        "planned_by": record["planned_by"],
    }
    for name in ("created_at", "started_at", "finished_at"):
        value = record[name]
        data[name] = value.isoformat() if value is not None else None
    if with_result:
        result = record["result"]
        data["result"] = json.loads(result) if isinstance(result, str) else result
    return data
