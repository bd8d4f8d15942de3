"""The asset catalog's SQL (aria_data), portable between CockroachDB 22.1 and PostgreSQL 15.

Not to be confused with :mod:`aria.apps.storage.stores`, the chunk stores: this module holds the
queries behind :mod:`aria.apps.storage.catalog`. ``db`` is aria_data's Database or a Transaction.
"""

from __future__ import annotations

SECONDS = "$%d::FLOAT8 * INTERVAL '1 second'"

ASSET_COLUMNS = (
    "id, name, version, content_type, size, caid, chunks, unique_chunks, digest, store, "
    "upload_started_at, created_at"
)

# Uploads ---------------------------------------------------------------------------------------

INSERT_UPLOAD = "INSERT INTO aria_storage_uploads (id, name, version, node) VALUES ($1, $2, $3, $4)"

HEARTBEAT = "UPDATE aria_storage_uploads SET heartbeat_at = now() WHERE id = $1"

UPLOAD_STARTED = "SELECT started_at FROM aria_storage_uploads WHERE id = $1"

FORGET_UPLOAD = "DELETE FROM aria_storage_uploads WHERE id = $1"

ANNOUNCE_CHUNK = """INSERT INTO aria_storage_upload_chunks (upload_id, chunk_id) VALUES ($1, $2)
ON CONFLICT (upload_id, chunk_id) DO NOTHING"""

COUNT_UPLOADS = "SELECT count(*) FROM aria_storage_uploads"

# Assets ----------------------------------------------------------------------------------------

VERSIONS_OF = "SELECT version FROM aria_storage_assets WHERE name = $1"

VERSION_EXISTS = "SELECT 1 FROM aria_storage_assets WHERE name = $1 AND version = $2"

INSERT_ASSET = f"""INSERT INTO aria_storage_assets
    (name, version, content_type, size, caid, chunk_index, chunks, unique_chunks, digest, store,
     upload_started_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING {ASSET_COLUMNS}"""

INSERT_ASSET_CHUNK = "INSERT INTO aria_storage_asset_chunks (asset_id, chunk_id, size) VALUES ($1, $2, $3)"

LIST_ASSETS = f"SELECT {ASSET_COLUMNS} FROM aria_storage_assets ORDER BY name, created_at, id LIMIT $1"

LIST_VERSIONS = f"""SELECT {ASSET_COLUMNS} FROM aria_storage_assets WHERE name = $1
ORDER BY created_at, id LIMIT $2"""

GET_ASSET = f"SELECT {ASSET_COLUMNS}, chunk_index FROM aria_storage_assets WHERE name = $1 AND version = $2"

GET_LATEST = f"""SELECT {ASSET_COLUMNS}, chunk_index FROM aria_storage_assets WHERE name = $1
ORDER BY created_at DESC, id DESC LIMIT 1"""

DELETE_ASSET = f"DELETE FROM aria_storage_assets WHERE name = $1 AND version = $2 RETURNING {ASSET_COLUMNS}"

# Statistics ------------------------------------------------------------------------------------

ASSET_TOTALS = (
    "SELECT count(*) AS assets, COALESCE(sum(size), 0) AS bytes, COALESCE(sum(chunks), 0) AS chunk_refs "
    "FROM aria_storage_assets"
)

DISTINCT_CHUNK_TOTALS = """SELECT count(*) AS chunks, COALESCE(sum(size), 0) AS bytes FROM (
    SELECT chunk_id, max(size) AS size FROM aria_storage_asset_chunks GROUP BY chunk_id
) AS distinct_chunks"""

# Per asset: the bytes of its distinct chunks, and of those no other asset uses (what deleting it
# and a gc would free).
DEDUP_BY_ASSET = """WITH uses AS (
    SELECT chunk_id, count(*) AS assets FROM aria_storage_asset_chunks GROUP BY chunk_id
)
SELECT a.name, a.version, a.size, a.chunks, a.unique_chunks,
    COALESCE(sum(c.size), 0) AS distinct_bytes,
    COALESCE(sum(CASE WHEN u.assets = 1 THEN c.size ELSE 0 END), 0) AS exclusive_bytes
FROM aria_storage_assets AS a
JOIN aria_storage_asset_chunks AS c ON c.asset_id = a.id
JOIN uses AS u ON u.chunk_id = c.chunk_id
WHERE ($1::TEXT IS NULL OR a.name = $1)
GROUP BY a.id, a.name, a.version, a.size, a.chunks, a.unique_chunks, a.created_at
ORDER BY a.name, a.created_at, a.id"""

# The sweep lease and gc's marks ----------------------------------------------------------------

LIVE_SWEEPER = "SELECT holder FROM aria_storage_gc WHERE id = 1 AND expires_at > now()"

TAKE_SWEEP = f"""INSERT INTO aria_storage_gc (id, holder, started_at, expires_at)
VALUES (1, $1, now(), now() + {SECONDS % 2})
ON CONFLICT (id) DO UPDATE SET holder = $1, started_at = now(), expires_at = now() + {SECONDS % 2}"""

RENEW_SWEEP = f"""UPDATE aria_storage_gc SET expires_at = now() + {SECONDS % 2}
WHERE id = 1 AND holder = $1 AND expires_at > now()"""

RELEASE_SWEEP = "DELETE FROM aria_storage_gc WHERE id = 1 AND holder = $1"

EXPIRE_UPLOADS = f"""DELETE FROM aria_storage_uploads WHERE heartbeat_at < now() - {SECONDS % 1}
RETURNING id"""

MARKED_CHUNKS = """SELECT chunk_id FROM aria_storage_asset_chunks
UNION SELECT chunk_id FROM aria_storage_upload_chunks"""
