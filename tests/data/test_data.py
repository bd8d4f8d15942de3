"""aria_data against a real PostgreSQL child process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import aria
from aria.application import AppContext
from aria.apps import all_apps
from aria.apps.data.api import (
    ConnectionLost,
    Database,
    DatabaseUnavailable,
    MigrationError,
    QueryError,
    QueryTimeout,
    SerializationFailure,
    UniqueViolation,
)
from aria.apps.security.api import AppSecrets
from aria.control import request
from aria.errors import StartError
from aria.supervisor import ChildSpec
from aria.system import System
from tests.data.conftest import data_config, postgres_pid

WAIT = 60


def db() -> Any:
    return aria.whereis("aria_data")


class TestLifeCycle:
    async def test_boot_from_empty_then_reboot_keeps_the_data(self, data_dir: Path) -> None:
        config = data_config(data_dir)
        async with aria.running(apps=["aria_data"], config=config):
            status = db().status()
            assert status["engine"] == "postgres"
            assert status["server_version"].startswith("PostgreSQL 15")
            await db().execute(
                "CREATE TABLE notes (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), body TEXT)"
            )
            await db().execute("INSERT INTO notes (body) VALUES ($1)", "kept")
            # The aria role authenticates with SCRAM and its password lives in aria_security.
            password = (
                await AppSecrets(aria.whereis("aria_security"), "aria_data").get_secret("db/password")
            )["value"]
            assert len(password) == 32
            assert await db().fetchval("SHOW password_encryption") == "scram-sha-256"
        cluster = data_dir / "data" / "postgres"
        hba = (cluster / "pg_hba.conf").read_text()
        assert "host    all             all             127.0.0.1/32            scram-sha-256" in hba
        async with aria.running(apps=["aria_data"], config=config):
            assert [r["body"] for r in await db().fetch("SELECT body FROM notes")] == ["kept"]

    async def test_kill_9_during_committed_writes_loses_and_doubles_nothing(self, node: System) -> None:
        """A stream of writes; the postmaster is SIGKILLed mid-stream. Every acknowledged write is
        there exactly once; a write whose connection broke in flight is reported, never retried
        blindly, and appears at most once."""
        await db().execute(
            "CREATE TABLE stream (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), seq INT NOT NULL)"
        )
        acknowledged: list[int] = []
        unknown: list[int] = []
        killed = trio.Event()

        async def writer() -> None:
            seq = 0
            while len(acknowledged) < 60 or not killed.is_set() or len(acknowledged) < 120:
                seq += 1
                try:
                    await db().execute("INSERT INTO stream (seq) VALUES ($1)", seq)
                    acknowledged.append(seq)
                except ConnectionLost:
                    unknown.append(seq)
                if len(acknowledged) == 60 and not killed.is_set():
                    os.kill(postgres_pid(node), signal.SIGKILL)
                    killed.set()

        with trio.fail_after(WAIT):
            await writer()
        counts = {
            row["seq"]: row["n"]
            for row in await db().fetch("SELECT seq, count(*) AS n FROM stream GROUP BY seq")
        }
        assert all(counts.get(seq) == 1 for seq in acknowledged)
        assert all(counts.get(seq, 0) <= 1 for seq in unknown)
        assert set(counts) <= set(acknowledged) | set(unknown)
        postgres = next(c for c in node.tree()["root"]["children"][1]["children"] if c["id"] == "postgres")
        assert postgres["restarts"] == 1

    async def test_a_stopped_database_gives_a_typed_error_then_recovers(self, warm_data_dir: Path) -> None:
        async with aria.running(
            apps=["aria_data"], config=data_config(warm_data_dir, unavailable_timeout=1.0)
        ) as system:
            await system.terminate_child("aria_data/postgres")
            began = trio.current_time()
            with pytest.raises(DatabaseUnavailable, match=r"the database at 127\.0\.0\.1:\d+ is unavailable"):
                await db().fetchval("SELECT 1")
            assert trio.current_time() - began < 5
            await system.restart_child("aria_data/postgres")
            assert await db().fetchval("SELECT 1") == 1

    async def test_callers_waiting_through_a_restart_get_their_result(self, node: System) -> None:
        await node.terminate_child("aria_data/postgres")
        result: list[int] = []

        async def caller() -> None:
            result.append(await db().fetchval("SELECT 41 + 1"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller)
            await trio.testing.wait_all_tasks_blocked()
            assert result == []
            await node.restart_child("aria_data/postgres")
        assert result == [42]


class TestTransactions:
    async def test_a_serialization_conflict_is_retried_to_success(self, node: System) -> None:
        """Two read-modify-write transactions interleave; one hits 40001 and is re-run."""
        await db().execute("CREATE TABLE counter (id INT PRIMARY KEY, value INT NOT NULL)")
        await db().execute("INSERT INTO counter VALUES (1, 0)")
        both_read = trio.Event()
        readers = 0
        runs: list[str] = []

        async def increment(tx: Any, name: str) -> None:
            nonlocal readers
            runs.append(name)
            value = await tx.fetchval("SELECT value FROM counter WHERE id = 1")
            if len(runs) <= 2:  # first attempts: make sure both read before either writes
                readers += 1
                if readers == 2:
                    both_read.set()
                await both_read.wait()
            await tx.execute("UPDATE counter SET value = $1 WHERE id = 1", value + 1)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(db().transact, increment, "a")
            nursery.start_soon(db().transact, increment, "b")
        assert await db().fetchval("SELECT value FROM counter WHERE id = 1") == 2
        assert len(runs) == 3  # one of the two ran again after its conflict

    async def test_a_single_attempt_raises_the_typed_conflict(self, node: System) -> None:
        await db().execute("CREATE TABLE c2 (id INT PRIMARY KEY, value INT NOT NULL)")
        await db().execute("INSERT INTO c2 VALUES (1, 0)")
        database: Database = await db().get()

        async def conflicting() -> None:
            async with database.transaction() as first:
                await first.fetchval("SELECT value FROM c2 WHERE id = 1")
                async with database.transaction() as second:
                    await second.fetchval("SELECT value FROM c2 WHERE id = 1")
                    await second.execute("UPDATE c2 SET value = 10 WHERE id = 1")
                await first.execute("UPDATE c2 SET value = 20 WHERE id = 1")

        with pytest.raises(SerializationFailure, match="40001"):
            await conflicting()
        assert await db().fetchval("SELECT value FROM c2 WHERE id = 1") == 10

    async def test_a_failing_body_rolls_back(self, node: System) -> None:
        await db().execute("CREATE TABLE r (id INT PRIMARY KEY)")

        async def body(tx: Any) -> None:
            await tx.execute("INSERT INTO r VALUES (1)")
            raise ValueError("changed my mind")

        with pytest.raises(ValueError, match="changed my mind"):
            await db().transact(body)
        assert await db().fetchval("SELECT count(*) FROM r") == 0


class TestAsyncioReports:
    async def test_a_warning_from_asyncio_is_logged_and_the_pool_keeps_running(self, node: System) -> None:
        """asyncpg reports "Resetting connection with an active transaction" through the loop's
        exception handler (then rolls back itself); trio-asyncio's default handler raised it and
        crashed the pool child, failing every statement in flight."""
        database = await db().get()
        database._loop.call_exception_handler({"message": "Resetting connection with an active transaction"})
        await trio.testing.wait_all_tasks_blocked()
        assert await db().fetchval("SELECT 1") == 1
        data = node.tree()["root"]["children"][1]
        pool = next(child for child in data["children"] if child["id"] == "pool")
        assert pool["restarts"] == 0


class TestCancellation:
    async def test_cancelling_a_query_cancels_it_on_the_server_and_keeps_the_pool_healthy(
        self, node: System
    ) -> None:
        began = trio.current_time()
        with trio.move_on_after(0.3) as scope:
            await db().fetchval("SELECT pg_sleep(30)")
        assert scope.cancelled_caught
        assert trio.current_time() - began < 5
        running = await db().fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE query LIKE 'SELECT pg_sleep(30)%' AND state = 'active'"
        )
        assert running == 0
        assert await db().fetchval("SELECT 1") == 1

    async def test_statement_timeout(self, warm_data_dir: Path) -> None:
        async with aria.running(apps=["aria_data"], config=data_config(warm_data_dir, statement_timeout=0.3)):
            with pytest.raises(QueryTimeout, match="statement cancelled by the server"):
                await db().fetchval("SELECT pg_sleep(3)")
            assert await db().fetchval("SELECT 1") == 1


class TestErrors:
    async def test_sql_errors_are_typed(self, node: System) -> None:
        with pytest.raises(QueryError) as info:
            await db().execute("SELEC nonsense")
        assert info.value.sqlstate == "42601"
        await db().execute("CREATE TABLE u (id INT PRIMARY KEY)")
        await db().execute("INSERT INTO u VALUES (1)")
        with pytest.raises(UniqueViolation):
            await db().execute("INSERT INTO u VALUES (1)")

    async def test_an_unreachable_external_dsn_names_host_and_port_quickly(self, warm_data_dir: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # closed once the block ends
        config = data_config(warm_data_dir, engine="external", dsn=f"postgresql://aria@127.0.0.1:{port}/aria")
        await _store_password(warm_data_dir, "whatever")
        began = time.monotonic()
        with pytest.raises(StartError, match=rf"the database at 127\.0\.0\.1:{port} is unavailable"):
            async with aria.running(apps=["aria_data"], config=config):
                pass
        assert time.monotonic() - began < 15

    async def test_a_silent_server_times_out_naming_host_and_port(self, warm_data_dir: Path) -> None:
        with socket.socket() as silent:  # accepts TCP connections, never speaks PostgreSQL
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            port = silent.getsockname()[1]
            config = data_config(
                warm_data_dir,
                engine="external",
                dsn=f"postgresql://aria@127.0.0.1:{port}/aria",
                connect_timeout=1.0,
            )
            await _store_password(warm_data_dir, "whatever")
            began = time.monotonic()
            with pytest.raises(StartError, match=rf"127\.0\.0\.1:{port} is unavailable"):
                async with aria.running(apps=["aria_data"], config=config):
                    pass
            assert time.monotonic() - began < 10

    async def test_a_wrong_password_names_user_host_and_port(self, node: System, tmp_path: Path) -> None:
        port = int(node.tree()["root"]["children"][1]["children"][1]["status"]["address"].split(":")[1])
        other = tmp_path / "other"
        config = data_config(other, engine="external", dsn=f"postgresql://aria@127.0.0.1:{port}/aria")
        config["security"]["port"] = 0
        await _store_password(other, "not-the-password", config=config)
        with pytest.raises(StartError, match=rf"127\.0\.0\.1:{port} refused user 'aria'"):
            async with aria.running(apps=["aria_data"], config=config):
                pass


async def _store_password(data_dir: Path, password: str, config: dict[str, Any] | None = None) -> None:
    """What `aria data set-password` does for an external database."""
    config = config or data_config(data_dir)
    async with aria.running(apps=["aria_security"], config=config):
        await AppSecrets(aria.whereis("aria_security"), "aria_data").put_secret(
            "db/password", {"value": password}
        )


class TestMigrations:
    def migrations(self, directory: Path, files: dict[str, str]) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        for name, sql in files.items():
            (directory / name).write_text(sql)
        return directory

    async def test_apply_once_and_report(self, node: System, tmp_path: Path) -> None:
        directory = self.migrations(
            tmp_path / "m",
            {
                "001_things.sql": "CREATE TABLE things (id UUID PRIMARY KEY, n TEXT);",
                "002_seed.sql": "INSERT INTO things VALUES (gen_random_uuid(), 'a');\n"
                "INSERT INTO things VALUES (gen_random_uuid(), 'b');",
            },
        )
        assert await db().migrate("aria_test", directory) == ["001_things", "002_seed"]
        assert await db().migrate("aria_test", directory) == []
        assert await db().fetchval("SELECT count(*) FROM things") == 2

    async def test_an_edited_applied_migration_stops_the_boot_naming_the_file(
        self, warm_data_dir: Path, tmp_path: Path
    ) -> None:
        directory = self.migrations(tmp_path / "m", {"001_t.sql": "CREATE TABLE t1 (id INT PRIMARY KEY);"})

        def build(context: AppContext) -> list[ChildSpec]:
            async def start(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                await context.api("aria_data").migrate("aria_interpret", directory)
                task_status.started(None)
                await trio.sleep_forever()

            return [ChildSpec("worker", start)]

        catalog = [replace(a, build=build) if a.name == "aria_interpret" else a for a in all_apps()]
        config = data_config(warm_data_dir)
        async with aria.running(apps=["aria_interpret"], config=config, catalog=catalog):
            pass
        (directory / "001_t.sql").write_text("CREATE TABLE t1 (id INT PRIMARY KEY, extra TEXT);")
        with pytest.raises(StartError, match=r"migration .*001_t\.sql was edited after it was applied"):
            async with aria.running(apps=["aria_interpret"], config=config, catalog=catalog):
                pass

    async def test_concurrent_migrators_apply_each_migration_exactly_once(
        self, node: System, tmp_path: Path
    ) -> None:
        """Several pools migrate one database at once; every migration runs exactly once."""
        files = {f"{n:03d}_step.sql": f"INSERT INTO ran (step) VALUES ({n});" for n in range(2, 12)}
        files["001_ran.sql"] = "CREATE TABLE ran (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), step INT);"
        directory = self.migrations(tmp_path / "m", files)
        database: Database = await db().get()
        others = [await _second_database(database) for _ in range(3)]
        applied: list[list[str]] = []

        async def migrate(target: Database) -> None:
            applied.append(await target.migrate("aria_test", directory))

        try:
            async with trio.open_nursery() as nursery:
                for target in [database, *others]:
                    nursery.start_soon(migrate, target)
        finally:
            for other in others:
                await other.close()
        assert sorted(name for names in applied for name in names) == sorted(Path(f).stem for f in files)
        steps = [row["step"] for row in await db().fetch("SELECT step FROM ran ORDER BY step")]
        assert steps == list(range(2, 12))

    async def test_malformed_migration_names(self, node: System, tmp_path: Path) -> None:
        directory = self.migrations(tmp_path / "m", {"1_bad.sql": "SELECT 1;"})
        with pytest.raises(MigrationError, match=r"must be named NNN_name\.sql"):
            await db().migrate("aria_test", directory)

    async def test_migrate_status_lists_every_app(self, node: System, warm_data_dir: Path) -> None:
        answer = await trio.to_thread.run_sync(
            lambda: request(warm_data_dir / "aria.sock", "data.migrations")
        )
        assert isinstance(answer["migrations"], list)


async def _second_database(database: Database) -> Database:
    """Another pool on the same database, as a second Aria process would have."""
    import asyncpg

    from aria.apps.data.migrations import MigrationRunner
    from aria.apps.data.pool import in_asyncio

    password = (await AppSecrets(aria.whereis("aria_security"), "aria_data").get_secret("db/password"))[
        "value"
    ]
    pool = await in_asyncio(
        database._loop,
        asyncpg.create_pool,
        host=database.host,
        port=database.port,
        user="aria",
        password=password,
        database="aria",
    )
    other = Database(
        loop=database._loop,
        pool=pool,
        settings=database._settings,
        engine="postgres",
        host=database.host,
        port=database.port,
        user="aria",
        server_version="",
    )
    other.migrations = MigrationRunner(other)
    return other


class TestBackup:
    async def test_backup_and_restore(self, node: System, warm_data_dir: Path) -> None:
        await db().execute("CREATE TABLE precious (id INT PRIMARY KEY, what TEXT)")
        await db().execute("INSERT INTO precious VALUES (1, 'gold'), (2, 'silver')")
        backup = warm_data_dir / "backup.dump"
        socket_path = warm_data_dir / "aria.sock"
        await trio.to_thread.run_sync(lambda: request(socket_path, "data.backup", path=str(backup)))
        assert backup.stat().st_size > 0
        await db().execute("DELETE FROM precious")
        await trio.to_thread.run_sync(lambda: request(socket_path, "data.restore", path=str(backup)))
        assert [r["what"] for r in await db().fetch("SELECT what FROM precious ORDER BY id")] == [
            "gold",
            "silver",
        ]


class TestEngineChoice:
    def test_missing_binaries_say_how_to_fix_it(self, tmp_path: Path) -> None:
        from aria.apps.data.engines import choose_engine
        from aria.apps.data.errors import EngineError
        from aria.config import load

        settings = load(
            environ={"ARIA_DATA__ENGINE": "postgres", "ARIA_DATA__POSTGRES_BIN_DIR": str(tmp_path)}
        ).data
        with pytest.raises(EngineError, match="initdb/postgres were not found: install PostgreSQL"):
            choose_engine(settings, tmp_path)
        settings = load(
            environ={"ARIA_DATA__ENGINE": "cockroach", "ARIA_DATA__COCKROACH_BINARY": str(tmp_path / "x")}
        ).data
        with pytest.raises(EngineError, match="run `make vendor`"):
            choose_engine(settings, tmp_path)

    def test_a_password_in_the_dsn_is_refused(self) -> None:
        from aria.config import load
        from aria.errors import ConfigError

        with pytest.raises(ConfigError, match="engine = external needs dsn"):
            load(environ={"ARIA_DATA__ENGINE": "external"})
        from aria.apps.data.engines import ExternalEngine
        from aria.apps.data.errors import EngineError

        with pytest.raises(EngineError, match="must not contain a password"):
            ExternalEngine("postgresql://aria:secret@db:5432/aria")

    def test_a_dead_postmaster_not_yet_reaped_leaves_no_lock_behind(self, tmp_path: Path) -> None:
        """kill -9 of the whole node, started again at once: the old postmaster may still be a zombie
        (its parent was killed; init reaps it later), and PostgreSQL's kill(pid, 0) check would take
        its postmaster.pid for a live server. A live postmaster's lock is left alone."""
        from aria.apps.data.engines import PostgresEngine, find_postgres_binaries
        from aria.config import load

        binaries = find_postgres_binaries()
        if binaries is None:
            pytest.skip("PostgreSQL's binaries are not installed")
        engine = PostgresEngine(load(environ={}).data, tmp_path, binaries)
        engine.cluster.mkdir(parents=True)
        lock_file = engine.cluster / "postmaster.pid"
        live = subprocess.Popen(["sleep", "60"], start_new_session=True)
        try:
            lock_file.write_text(f"{live.pid}\n{engine.cluster}\n")
            engine._clear_stale_postmaster()
            assert lock_file.exists()  # a running process: not ours to touch
        finally:
            live.kill()
        # Wait for its exit without reaping it (WNOWAIT): a zombie, as the postmaster of a node
        # killed with -9 is until init reaps it.
        os.waitid(os.P_PID, live.pid, os.WEXITED | os.WNOWAIT)
        assert Path(f"/proc/{live.pid}").exists()
        engine._clear_stale_postmaster()
        assert not lock_file.exists()
        live.wait()
