-- aria_queue's jobs, in Oban's model. Runs on CockroachDB 22.1 and PostgreSQL 15 alike.
CREATE TABLE IF NOT EXISTS aria_jobs (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    state TEXT NOT NULL DEFAULT 'available'
        CHECK (state IN ('available', 'scheduled', 'executing', 'retryable', 'completed', 'discarded', 'cancelled')),
    queue TEXT NOT NULL DEFAULT 'default',
    worker TEXT NOT NULL,
    args JSONB NOT NULL DEFAULT '{}',
    meta JSONB NOT NULL DEFAULT '{}',
    tags JSONB NOT NULL DEFAULT '[]',
    errors JSONB NOT NULL DEFAULT '[]',
    attempt INT NOT NULL DEFAULT 0,
    max_attempts INT NOT NULL DEFAULT 20 CHECK (max_attempts > 0),
    priority INT NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 9),
    unique_key TEXT,
    attempted_by TEXT,
    inserted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    scheduled_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempted_at TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    cancelled_at TIMESTAMPTZ,
    discarded_at TIMESTAMPTZ
);

-- The claim: available jobs of one queue in priority, scheduled time, id order.
CREATE INDEX IF NOT EXISTS aria_jobs_claim ON aria_jobs (queue, state, priority, scheduled_at, id);
-- Staging due scheduled/retryable jobs, pruning old finished ones, rescuing executing ones.
CREATE INDEX IF NOT EXISTS aria_jobs_state_time ON aria_jobs (state, scheduled_at);
CREATE INDEX IF NOT EXISTS aria_jobs_unique ON aria_jobs (unique_key, inserted_at) WHERE unique_key IS NOT NULL;

-- Node instances and their heartbeats (the lifeline rescues jobs of instances that went quiet).
CREATE TABLE IF NOT EXISTS aria_queue_nodes (
    instance TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One leader at a time runs the stager, cron, pruner and lifeline; it holds a lease.
CREATE TABLE IF NOT EXISTS aria_queue_leader (
    id INT PRIMARY KEY,
    instance TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- Cron ticks already inserted, so a tick inserts its job once even across leaders.
CREATE TABLE IF NOT EXISTS aria_queue_cron (
    name TEXT NOT NULL,
    tick TIMESTAMPTZ NOT NULL,
    job_id UUID NOT NULL,
    PRIMARY KEY (name, tick)
);
