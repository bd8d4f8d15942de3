"""SQL that must run on CockroachDB 22.1 and PostgreSQL 15 alike: the whole project is scanned."""

from __future__ import annotations

from pathlib import Path

import pytest

from aria.apps.data.portability import CONSTRUCTS, scan

ROOT = Path(__file__).resolve().parents[2]


def test_the_project_uses_only_portable_sql() -> None:
    findings = scan(ROOT)
    assert findings == [], "\n".join(str(f) for f in findings)


@pytest.mark.parametrize(
    ("construct", "sql"),
    [
        ("trigger", "CREATE TRIGGER bump AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION f();"),
        ("function", "CREATE OR REPLACE FUNCTION f() RETURNS trigger AS $$ BEGIN END $$ LANGUAGE plpgsql;"),
        ("procedure", "CREATE PROCEDURE p() LANGUAGE SQL AS $$ SELECT 1 $$;"),
        ("listen", "LISTEN jobs_inserted;"),
        ("notify", "SELECT pg_notify('jobs', 'x');"),
        ("skip locked", "SELECT id FROM jobs FOR UPDATE SKIP LOCKED LIMIT 10;"),
        ("serial", "CREATE TABLE t (id BIGSERIAL PRIMARY KEY);"),
        ("advisory lock", "SELECT pg_try_advisory_lock(42);"),
    ],
)
def test_each_construct_is_caught_in_sql_files_and_python_strings(
    tmp_path: Path, construct: str, sql: str
) -> None:
    package = tmp_path / "aria"
    package.mkdir()
    (package / "001_x.sql").write_text(f"-- a migration\n{sql}\n")
    (package / "store.py").write_text(f"QUERY = {sql!r}\n")
    found = {(f.path, f.construct, f.line) for f in scan(tmp_path)}
    assert ("aria/001_x.sql", construct, 2) in found
    assert ("aria/store.py", construct, 1) in found
    assert construct in CONSTRUCTS


def test_ordinary_sql_passes(tmp_path: Path) -> None:
    package = tmp_path / "aria"
    package.mkdir()
    (package / "001_ok.sql").write_text(
        "-- Portable: no triggers, functions or SERIAL here.\n/* nor LISTEN\n or NOTIFY */\n"
        "CREATE TABLE jobs (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), args JSONB, at TIMESTAMPTZ);\n"
        "SELECT id FROM jobs WHERE id IN (SELECT id FROM jobs LIMIT 5) FOR UPDATE;\n"
    )
    assert scan(tmp_path) == []
