-- aria_storage's asset catalog. Runs on CockroachDB 22.1 and PostgreSQL 15 alike.

-- One row per stored asset version; chunk_index is its .caibx, byte for byte.
CREATE TABLE IF NOT EXISTS aria_storage_assets (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL CHECK (size >= 0),
    caid TEXT NOT NULL,
    chunk_index BYTEA NOT NULL,
    chunks INT NOT NULL,
    unique_chunks INT NOT NULL,
    digest TEXT NOT NULL,
    store TEXT NOT NULL,
    upload_started_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);
CREATE INDEX IF NOT EXISTS aria_storage_assets_by_time ON aria_storage_assets (name, created_at);

-- The distinct chunks of each asset with their sizes: gc's marks and the dedup statistics.
CREATE TABLE IF NOT EXISTS aria_storage_asset_chunks (
    asset_id UUID NOT NULL REFERENCES aria_storage_assets (id) ON DELETE CASCADE,
    chunk_id BYTEA NOT NULL,
    size INT NOT NULL,
    PRIMARY KEY (asset_id, chunk_id)
);
CREATE INDEX IF NOT EXISTS aria_storage_asset_chunks_by_chunk ON aria_storage_asset_chunks (chunk_id);

-- Uploads in progress, kept alive by a heartbeat; a crashed one expires after storage.upload_timeout.
CREATE TABLE IF NOT EXISTS aria_storage_uploads (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT,
    node TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The chunks an upload has announced before writing them: gc keeps them like an asset's.
CREATE TABLE IF NOT EXISTS aria_storage_upload_chunks (
    upload_id UUID NOT NULL REFERENCES aria_storage_uploads (id) ON DELETE CASCADE,
    chunk_id BYTEA NOT NULL,
    PRIMARY KEY (upload_id, chunk_id)
);

-- The sweep lease (one row, id 1): while a gc holds it, uploads wait before announcing chunks.
CREATE TABLE IF NOT EXISTS aria_storage_gc (
    id INT PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);
