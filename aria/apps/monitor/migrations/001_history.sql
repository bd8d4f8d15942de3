-- Metric history for trend views: raw samples per node, and rollups at one minute and one hour.
CREATE TABLE IF NOT EXISTS aria_metric_samples (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    node TEXT NOT NULL,
    name TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    value FLOAT8 NOT NULL
);
CREATE INDEX IF NOT EXISTS aria_metric_samples_lookup ON aria_metric_samples (node, name, at);

CREATE TABLE IF NOT EXISTS aria_metric_rollups (
    node TEXT NOT NULL,
    name TEXT NOT NULL,
    resolution INT NOT NULL,
    bucket TIMESTAMPTZ NOT NULL,
    count INT NOT NULL,
    total FLOAT8 NOT NULL,
    minimum FLOAT8 NOT NULL,
    maximum FLOAT8 NOT NULL,
    PRIMARY KEY (node, name, resolution, bucket)
);
