-- aria_engine's planning requests and their results. Runs on CockroachDB 22.1 and PostgreSQL 15 alike.
-- A request is planned by the aria_queue job of the same id (worker aria_engine.plan, queue planning).
CREATE TABLE IF NOT EXISTS aria_engine_requests (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    domain TEXT NOT NULL,
    request JSONB NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'done', 'error', 'cancelled')),
    outcome TEXT,
    result JSONB,
    error TEXT,
    attempts INT NOT NULL DEFAULT 0,
    submitted_by TEXT,
    planned_by TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);

-- Listing newest first, and pruning finished requests by age.
CREATE INDEX IF NOT EXISTS aria_engine_requests_created ON aria_engine_requests (created_at);
CREATE INDEX IF NOT EXISTS aria_engine_requests_state ON aria_engine_requests (state, finished_at);
