"""aria_monitor's SQL (portable to CockroachDB 22.1): metric samples, rollups, retention."""

from __future__ import annotations

SECONDS = "$%d::FLOAT8 * INTERVAL '1 second'"

INSERT_SAMPLE = "INSERT INTO aria_metric_samples (node, name, value) VALUES ($1, $2, $3)"

# Minute rollups of raw samples, hour rollups of minute rollups; re-running a window overwrites.
_ROLLUP_INTO = (
    "INSERT INTO aria_metric_rollups (node, name, resolution, bucket, count, total, minimum, maximum)"
)

ROLLUP_MINUTES = f"""{_ROLLUP_INTO}
SELECT node, name, 60, date_trunc('minute', at), count(*), sum(value), min(value), max(value)
FROM aria_metric_samples
WHERE node = $1 AND at >= date_trunc('minute', now() - {SECONDS % 2}) AND at < date_trunc('minute', now())
GROUP BY node, name, date_trunc('minute', at)
ON CONFLICT (node, name, resolution, bucket) DO UPDATE
SET count = excluded.count, total = excluded.total, minimum = excluded.minimum, maximum = excluded.maximum"""

ROLLUP_HOURS = f"""{_ROLLUP_INTO}
SELECT node, name, 3600, date_trunc('hour', bucket), sum(count), sum(total), min(minimum), max(maximum)
FROM aria_metric_rollups
WHERE node = $1 AND resolution = 60
  AND bucket >= date_trunc('hour', now() - {SECONDS % 2}) AND bucket < date_trunc('hour', now())
GROUP BY node, name, date_trunc('hour', bucket)
ON CONFLICT (node, name, resolution, bucket) DO UPDATE
SET count = excluded.count, total = excluded.total, minimum = excluded.minimum, maximum = excluded.maximum"""

FORGET_SAMPLES = f"DELETE FROM aria_metric_samples WHERE node = $1 AND at < now() - {SECONDS % 2}"
FORGET_ROLLUPS = (
    f"DELETE FROM aria_metric_rollups WHERE node = $1 AND resolution = $2 AND bucket < now() - {SECONDS % 3}"
)

RAW = f"""SELECT at, value FROM aria_metric_samples
WHERE node = $1 AND name = $2 AND at >= now() - {SECONDS % 3} ORDER BY at"""

ROLLED = f"""SELECT bucket AS at, total / count AS value, minimum, maximum FROM aria_metric_rollups
WHERE node = $1 AND name = $2 AND resolution = $4 AND bucket >= now() - {SECONDS % 3} ORDER BY bucket"""
