"""aria_data: CockroachDB/PostgreSQL as a managed child, the data layer and migrations."""
