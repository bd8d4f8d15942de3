-- aria_shape's generated characters and the requests (batches) that made them.
-- Runs on CockroachDB 22.1 and PostgreSQL 15 alike.

-- A request for n characters: made at once (kind 'direct': generate(), HTTP, WebSocket) or queued
-- on ai_generation (kind 'queued'). Its seed, prompt, constraints and parameters are everything
-- needed to make the same characters again with the same model.
CREATE TABLE IF NOT EXISTS aria_shape_batches (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    kind TEXT NOT NULL CHECK (kind IN ('direct', 'queued')),
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'completed', 'failed')),
    prompt TEXT,
    constraints JSONB,
    n INT NOT NULL CHECK (n > 0),
    seed INT8 NOT NULL CHECK (seed >= 0),
    parameters JSONB NOT NULL,
    -- The model's version (directory or hub id @ weights hash), set when generation starts.
    model TEXT,
    job_id UUID,
    requested_by TEXT,
    runs INT NOT NULL DEFAULT 0,
    error TEXT,
    stats JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS aria_shape_batches_created ON aria_shape_batches (created_at);

-- One valid character, self-describing: how it was made is stored beside it.
CREATE TABLE IF NOT EXISTS aria_shape_characters (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    batch_id UUID NOT NULL REFERENCES aria_shape_batches (id) ON DELETE CASCADE,
    idx INT NOT NULL CHECK (idx >= 0),
    schema_version TEXT NOT NULL,
    model TEXT NOT NULL,
    seed INT8 NOT NULL,
    parameters JSONB NOT NULL,
    prompt TEXT,
    constraints JSONB,
    character JSONB NOT NULL,
    attempts INT NOT NULL,
    repaired_rules JSONB NOT NULL DEFAULT '[]',
    tokens INT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (batch_id, idx)
);
