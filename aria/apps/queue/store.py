"""aria_queue's SQL. Portable between CockroachDB 22.1 and PostgreSQL 15, except the claim's
PostgreSQL fast path (``SKIP LOCKED``), which sits beside the portable claim and is only used on
PostgreSQL (``queue.claim = "auto"`` or ``"skip_locked"``).

``db`` is aria_data's Database or a Transaction of it: both have fetch/fetchrow/fetchval/execute.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from aria.apps.queue.jobs import Job

COLUMNS = (
    "id, state, queue, worker, args, meta, tags, errors, attempt, max_attempts, priority, attempted_by, "
    "inserted_at, scheduled_at, attempted_at, completed_at, cancelled_at, discarded_at"
)
SECONDS = "$%d::FLOAT8 * INTERVAL '1 second'"

INSERT = f"""INSERT INTO aria_jobs
    (id, state, queue, worker, args, meta, tags, max_attempts, priority, unique_key, scheduled_at)
VALUES ($1, $2, $3, $4, $5::JSONB, $6::JSONB, $7::JSONB, $8, $9, $10, now() + {SECONDS % 11})
RETURNING {COLUMNS}"""

FIND_UNIQUE = f"""SELECT {COLUMNS} FROM aria_jobs
WHERE unique_key = $1 AND state = ANY($2::TEXT[]) AND inserted_at > now() - {SECONDS % 3}
ORDER BY inserted_at DESC LIMIT 1"""

CLAIM_PORTABLE = f"""UPDATE aria_jobs
SET state = 'executing', attempt = attempt + 1, attempted_at = now(), attempted_by = $3
WHERE id IN (
    SELECT id FROM aria_jobs WHERE queue = $1 AND state = 'available'
    ORDER BY priority, scheduled_at, id LIMIT $2
) AND state = 'available'
RETURNING {COLUMNS}"""

# PostgreSQL only (allow-listed in aria/apps/data/portability.py): concurrent claimers skip each
# other's rows instead of conflicting.
CLAIM_SKIP_LOCKED = f"""UPDATE aria_jobs
SET state = 'executing', attempt = attempt + 1, attempted_at = now(), attempted_by = $3
WHERE id IN (
    SELECT id FROM aria_jobs WHERE queue = $1 AND state = 'available'
    ORDER BY priority, scheduled_at, id LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING {COLUMNS}"""

COMPLETE = """UPDATE aria_jobs SET state = 'completed', completed_at = now()
WHERE id = ANY($1::UUID[]) AND state = 'executing' AND attempted_by = $2"""

FAIL = f"""UPDATE aria_jobs
SET state = $2,
    scheduled_at = now() + {SECONDS % 3},
    errors = errors || $4::JSONB,
    discarded_at = CASE WHEN $2 = 'discarded' THEN now() END
WHERE id = $1 AND state = 'executing' AND attempted_by = $5"""

SNOOZE = f"""UPDATE aria_jobs
SET state = 'scheduled', scheduled_at = now() + {SECONDS % 2}, max_attempts = max_attempts + 1
WHERE id = $1 AND state = 'executing' AND attempted_by = $3"""

CANCEL_SELF = """UPDATE aria_jobs SET state = 'cancelled', cancelled_at = now(), errors = errors || $2::JSONB
WHERE id = $1 AND state = 'executing' AND attempted_by = $3"""

RELEASE = """UPDATE aria_jobs SET state = 'available', attempt = attempt - 1, attempted_by = NULL
WHERE id = ANY($1::UUID[]) AND state = 'executing' AND attempted_by = $2"""

STAGE = """UPDATE aria_jobs SET state = 'available'
WHERE id IN (
    SELECT id FROM aria_jobs WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= now() LIMIT 10000
)
RETURNING queue"""

HEARTBEAT = """INSERT INTO aria_queue_nodes (instance, node) VALUES ($1, $2)
ON CONFLICT (instance) DO UPDATE SET heartbeat_at = now()"""

FORGET_NODE = "DELETE FROM aria_queue_nodes WHERE instance = $1"

LEAD = f"""INSERT INTO aria_queue_leader (id, instance, expires_at) VALUES (1, $1, now() + {SECONDS % 2})
ON CONFLICT (id) DO UPDATE SET instance = excluded.instance, expires_at = excluded.expires_at
WHERE aria_queue_leader.instance = excluded.instance OR aria_queue_leader.expires_at < now()
RETURNING instance"""

RESIGN = "DELETE FROM aria_queue_leader WHERE id = 1 AND instance = $1"

RESCUE = f"""UPDATE aria_jobs
SET state = CASE WHEN attempt >= max_attempts THEN 'discarded' ELSE 'available' END,
    discarded_at = CASE WHEN attempt >= max_attempts THEN now() END,
    errors = errors || jsonb_build_array(jsonb_build_object(
        'attempt', attempt, 'at', now()::TEXT,
        'error', 'rescued: ' || COALESCE(attempted_by, 'an unknown node') || ' stopped its heartbeat'))
WHERE state = 'executing' AND (attempted_by IS NULL OR attempted_by NOT IN (
    SELECT instance FROM aria_queue_nodes WHERE heartbeat_at > now() - {SECONDS % 1}
))
RETURNING id, queue, state"""

FORGET_DEAD_NODES = f"DELETE FROM aria_queue_nodes WHERE heartbeat_at < now() - {SECONDS % 1}"

PRUNE = f"""DELETE FROM aria_jobs WHERE id IN (
    SELECT id FROM aria_jobs
    WHERE state IN ('completed', 'discarded', 'cancelled')
      AND COALESCE(completed_at, discarded_at, cancelled_at) < now() - {SECONDS % 1}
    LIMIT 10000
)"""

CRON_TICK = """INSERT INTO aria_queue_cron (name, tick, job_id) VALUES ($1, $2, $3)
ON CONFLICT (name, tick) DO NOTHING RETURNING job_id"""

PRUNE_CRON = f"DELETE FROM aria_queue_cron WHERE tick < now() - {SECONDS % 1}"

STATS = "SELECT queue, state, count(*) AS n FROM aria_jobs GROUP BY queue, state"

LIST = f"""SELECT {COLUMNS} FROM aria_jobs
WHERE ($1::TEXT IS NULL OR state = $1) AND ($2::TEXT IS NULL OR queue = $2)
ORDER BY inserted_at DESC, id LIMIT $3"""

GET = f"SELECT {COLUMNS} FROM aria_jobs WHERE id = $1"

CANCEL = f"""UPDATE aria_jobs SET state = 'cancelled', cancelled_at = now()
WHERE id = $1 AND state IN ('available', 'scheduled', 'executing', 'retryable')
RETURNING {COLUMNS}"""

RETRY = f"""UPDATE aria_jobs
SET state = 'available', scheduled_at = now(), max_attempts = GREATEST(max_attempts, attempt + 1),
    completed_at = NULL, discarded_at = NULL, cancelled_at = NULL, attempted_by = NULL
WHERE id = $1 AND state IN ('scheduled', 'retryable', 'completed', 'discarded', 'cancelled')
RETURNING {COLUMNS}"""

STOLEN = (
    "SELECT id FROM aria_jobs WHERE id = ANY($1::UUID[]) AND (state <> 'executing' OR attempted_by <> $2)"
)


def new_job_row(
    worker: str,
    args: dict[str, Any],
    *,
    queue: str,
    priority: int,
    max_attempts: int,
    tags: Sequence[str],
    meta: dict[str, Any],
    unique_key: str | None,
    delay: float,
    job_id: str | None = None,
) -> tuple[Any, ...]:
    """The parameters of :data:`INSERT` for one job."""
    state = "scheduled" if delay > 0 else "available"
    return (
        uuid.UUID(job_id) if job_id else uuid.uuid4(),
        state,
        queue,
        worker,
        json.dumps(args),
        json.dumps(meta),
        json.dumps(list(tags)),
        max_attempts,
        priority,
        unique_key,
        max(delay, 0.0),
    )


def jobs_from(records: Sequence[Any]) -> list[Job]:
    return [Job.from_record(record) for record in records]
