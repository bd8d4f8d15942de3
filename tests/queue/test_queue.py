"""aria_queue against a real PostgreSQL, with real second processes for the multi-node behaviour."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio

import aria
from aria.apps.queue.api import (
    Cancel,
    Discard,
    Job,
    JobNotFound,
    QueueApi,
    QueueUsageError,
    Snooze,
    Unique,
    default_backoff,
    worker,
)
from aria.apps.security.api import AppSecrets
from aria.system import System
from tests.conftest import eventually
from tests.queue.conftest import queue_config

WAIT = 60
ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """What the test workers saw; reset for every test."""

    def __init__(self) -> None:
        self.order: list[Any] = []
        self.running = 0
        self.max_running = 0
        self.gate = trio.Event()
        self.started = trio.Event()


REC = Recorder()


@pytest.fixture(autouse=True)
def fresh_recorder() -> None:
    global REC
    REC = Recorder()


@worker("t.record")
async def record(job: Job) -> None:
    REC.order.append(job.args.get("n"))


@worker("t.gated")
async def gated(job: Job) -> None:
    REC.running += 1
    REC.max_running = max(REC.max_running, REC.running)
    REC.started.set()
    try:
        await REC.gate.wait()
    finally:
        REC.running -= 1


@worker("t.fails", max_attempts=3, backoff=lambda attempt: 0.3)
async def fails(job: Job) -> None:
    raise ValueError(f"attempt {job.attempt} failed")


@worker("t.outcome")
async def outcome(job: Job) -> Any:
    kind = job.args["kind"]
    if kind == "snooze" and job.meta.get("snoozed") is None and job.attempt == 1:
        REC.order.append("snoozed")
        return Snooze(0.2)
    if kind == "cancel":
        return Cancel("not needed any more")
    if kind == "discard":
        return Discard("the input is unusable")
    REC.order.append(f"{kind} ran at attempt {job.attempt}")
    return None


@worker("t.slow", timeout=0.2, max_attempts=1)
async def too_slow(job: Job) -> None:
    await trio.sleep(10)


async def queue() -> QueueApi:
    found: QueueApi = await aria.whereis("aria_queue").get()
    return found


async def wait_for_state(job_id: str, *states: str) -> Job:
    q = await queue()
    with trio.fail_after(WAIT):
        while (job := await q.get_job(job_id)).state not in states:  # noqa: ASYNC110 - a row's state, polled
            await trio.sleep(0.05)
    return job


class TestExecution:
    async def test_concurrency_limits_hold(self, queue_dir: Path) -> None:
        config = queue_config(queue_dir, queues={"default": 3})
        async with aria.running(apps=["aria_queue"], config=config):
            q = await queue()
            jobs = [await q.insert("t.gated") for _ in range(10)]
            with trio.fail_after(WAIT):
                await eventually(lambda: REC.running == 3)
            states = [(await q.get_job(j.id)).state for j in jobs]
            assert states.count("executing") == 3 and states.count("available") == 7
            REC.gate.set()
            for job in jobs:
                await wait_for_state(job.id, "completed")
            assert REC.max_running == 3

    async def test_priorities_order_and_pause_holds_jobs(self, queue_dir: Path) -> None:
        async with aria.running(apps=["aria_queue"], config=queue_config(queue_dir, queues={"default": 1})):
            q = await queue()
            q.pause("default")
            jobs = [await q.insert("t.record", {"n": p}, priority=p) for p in (5, 0, 9, 3, 0)]
            await trio.sleep(0.5)  # several poll intervals pass (real time) while paused
            assert {(await q.get_job(j.id)).state for j in jobs} == {"available"}
            q.resume("default")
            for job in jobs:
                await wait_for_state(job.id, "completed")
            assert REC.order == [0, 0, 3, 5, 9]

    async def test_scheduled_jobs_wait_until_due(self, node: System) -> None:
        q = await queue()
        began = time.time()
        job = await q.insert("t.record", {"n": "later"}, schedule_in=1.0)
        assert job.state == "scheduled"
        done = await wait_for_state(job.id, "completed")
        assert done.attempted_at is not None
        assert done.attempted_at.timestamp() - began >= 1.0

    async def test_a_raising_worker_retries_with_backoff_then_is_discarded(self, node: System) -> None:
        job = await (await queue()).insert("t.fails")
        done = await wait_for_state(job.id, "discarded")
        assert done.attempt == 3
        assert [e["error"] for e in done.errors] == [f"ValueError: attempt {n} failed" for n in (1, 2, 3)]
        assert all("Traceback" in e["traceback"] for e in done.errors)
        assert done.discarded_at is not None

    def test_default_backoff_follows_oban(self) -> None:
        for attempt in (1, 2, 5):
            delay = default_backoff(attempt)
            assert attempt**4 + 15 <= delay <= attempt**4 + 15 + 30 * attempt

    async def test_an_unknown_worker_is_discarded_with_a_clear_error(self, node: System) -> None:
        job = await (await queue()).insert("t.nobody_has_this")
        done = await wait_for_state(job.id, "discarded")
        assert "no worker named 't.nobody_has_this' is registered" in done.errors[-1]["error"]

    async def test_snooze_cancel_discard_and_timeout(self, node: System) -> None:
        q = await queue()
        snoozed = await q.insert("t.outcome", {"kind": "snooze"})
        cancelled = await q.insert("t.outcome", {"kind": "cancel"})
        discarded = await q.insert("t.outcome", {"kind": "discard"})
        timed_out = await q.insert("t.slow")
        done = await wait_for_state(snoozed.id, "completed")
        assert done.max_attempts == 21  # a snooze does not use up an attempt
        assert (await wait_for_state(cancelled.id, "cancelled")).errors[-1][
            "cancelled"
        ] == "not needed any more"
        assert (await wait_for_state(discarded.id, "discarded")).errors[-1][
            "error"
        ] == "the input is unusable"
        slow = await wait_for_state(timed_out.id, "discarded")
        assert "TimeoutError: attempt ran longer than 0.2 s" in slow.errors[-1]["error"]

    async def test_cancelling_a_running_job_stops_it(self, node: System) -> None:
        q = await queue()
        job = await q.insert("t.gated")
        with trio.fail_after(WAIT):
            await REC.started.wait()
        await q.cancel_job(job.id)
        with trio.fail_after(WAIT):
            await eventually(lambda: REC.running == 0)
        assert (await q.get_job(job.id)).state == "cancelled"
        retried = await q.retry_job(job.id)
        assert retried.state == "available"

    async def test_graceful_stop_gives_unfinished_jobs_back(self, queue_dir: Path) -> None:
        config = queue_config(queue_dir, shutdown_grace=0.2)
        async with aria.running(apps=["aria_queue"], config=config):
            job = await (await queue()).insert("t.gated")
            with trio.fail_after(WAIT):
                await REC.started.wait()
        async with aria.running(apps=["aria_data"], config=config):
            row = await aria.whereis("aria_data").fetchrow(
                "SELECT state, attempt FROM aria_jobs WHERE id = $1", job.id
            )
        assert (row["state"], row["attempt"]) == ("available", 0)


class TestInsertion:
    async def test_unique_jobs_hold_under_concurrent_inserts(self, node: System) -> None:
        q = await queue()
        results: list[Job] = []

        async def insert() -> None:
            results.append(await q.insert("t.record", {"n": "once"}, unique=Unique(period=60)))

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(insert)
        assert len({job.id for job in results}) == 1
        assert sum(not job.conflict for job in results) == 1
        count = await aria.whereis("aria_data").fetchval(
            "SELECT count(*) FROM aria_jobs WHERE worker = 't.record'"
        )
        assert count == 1

    async def test_transactional_enqueue(self, node: System) -> None:
        q = await queue()
        db = aria.whereis("aria_data")
        database = await db.get()

        async def enqueue_then_fail() -> None:
            async with database.transaction() as tx:
                await q.insert("t.record", {"n": "never"}, tx=tx)
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError, match="rolled back"):
            await enqueue_then_fail()
        async with database.transaction() as tx:
            kept = await q.insert("t.record", {"n": "kept"}, tx=tx)
        await wait_for_state(kept.id, "completed")
        assert await db.fetchval("SELECT count(*) FROM aria_jobs") == 1

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"priority": 10}, "priority must be an integer from 0 to 9"),
            ({"queue": "Bad Queue"}, "queue name 'Bad Queue'"),
            ({"args": {"x": {1, 2}}}, "must be JSON-serialisable"),
            ({"schedule_in": -1}, "schedule_in must be seconds >= 0"),
            ({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
        ],
    )
    async def test_bad_jobs_are_refused_and_nothing_is_stored(
        self, node: System, options: dict[str, Any], message: str
    ) -> None:
        args = options.pop("args", {})
        with pytest.raises(QueueUsageError, match=message):
            await (await queue()).insert("t.record", args, **options)
        assert await aria.whereis("aria_data").fetchval("SELECT count(*) FROM aria_jobs") == 0

    async def test_unknown_ids(self, node: System) -> None:
        q = await queue()
        with pytest.raises(JobNotFound):
            await q.get_job("00000000-0000-0000-0000-000000000000")
        with pytest.raises(QueueUsageError, match="is not a job id"):
            await q.cancel_job("nope")


class TestCron:
    async def test_cron_inserts_once_per_tick_across_two_nodes(self, queue_dir: Path) -> None:
        """Two queue runtimes lead in turn; the every-second cron entry inserts one job per tick."""
        config = queue_config(
            queue_dir, cron=[{"schedule": "* * * * * *", "worker": "t.record", "args": {"n": "c"}}]
        )
        async with aria.running(apps=["aria_queue"], config=config):
            first = await queue()
            second = QueueApi(database=first.db, settings=first.settings, node="second", engine="postgres")
            async with trio.open_nursery() as nursery:
                await nursery.start(second.run)
                await trio.sleep(3.5)  # real time: a few cron ticks pass
                nursery.cancel_scope.cancel()
            db = aria.whereis("aria_data")
            ticks = await db.fetchval("SELECT count(*) FROM aria_queue_cron")
            jobs = await db.fetchval("SELECT count(*) FROM aria_jobs WHERE worker = 't.record'")
            duplicates = await db.fetchval(
                "SELECT count(*) FROM "
                "(SELECT meta->>'tick' FROM aria_jobs GROUP BY meta->>'tick' HAVING count(*) > 1) d"
            )
        assert ticks >= 3
        assert jobs == ticks
        assert duplicates == 0


class SecondNode:
    """Another Aria process sharing the first node's database (engine external)."""

    def __init__(self, system: System, queues: dict[str, int]) -> None:
        status = system.tree()["root"]["children"][1]["children"][1]["status"]
        self.base = Path(str(system.config.data_dir) + "-second")
        self.dsn = f"postgresql://aria@{status['address']}/aria"
        self.queues = queues
        self.process: subprocess.Popen[str] | None = None

    async def start(self, password: str) -> None:
        args = [
            sys.executable,
            "-m",
            "tests.queue.node_process",
            str(self.base),
            self.dsn,
            password,
            json.dumps(self.queues),
        ]
        # A plain Popen: the child lives across awaits and is read from a worker thread.
        self.process = subprocess.Popen(  # noqa: ASYNC220
            args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert await self.read_line() == "ready"

    async def read_line(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        with trio.fail_after(WAIT):
            return (await trio.to_thread.run_sync(self.process.stdout.readline)).strip()

    async def stop(self) -> list[str]:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        ran: list[str] = json.loads(await self.read_line())
        await trio.to_thread.run_sync(self.process.wait)
        self.close()
        return ran

    def close(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()


async def shared_password() -> str:
    secret = await AppSecrets(aria.whereis("aria_security"), "aria_data").get_secret("db/password")
    return str(secret["value"])


@worker("test.count")
async def count(job: Job) -> None:
    REC.order.append(job.id)


@worker("test.slow", queue="rescue", max_attempts=3)
async def finishes_here(job: Job) -> None:
    REC.order.append(("rescued", job.id))


class TestTwoProcesses:
    async def test_two_processes_run_each_of_5000_jobs_exactly_once(self, node: System) -> None:
        second = SecondNode(node, {"default": 10})
        await second.start(await shared_password())
        try:
            q = await queue()
            await q.insert_all([{"worker": "test.count", "args": {"i": i}} for i in range(5000)])
            db = aria.whereis("aria_data")
            with trio.fail_after(180):
                completed = "SELECT count(*) FROM aria_jobs WHERE state = 'completed'"
                while await db.fetchval(completed) < 5000:  # noqa: ASYNC110 - rows written by two processes
                    await trio.sleep(0.2)
        finally:
            ran_there = await second.stop()
        ran_here = [job_id for job_id in REC.order if isinstance(job_id, str)]
        everything = ran_here + ran_there
        assert len(everything) == 5000
        assert len(set(everything)) == 5000
        assert ran_here and ran_there  # both processes took part

    async def test_kill_9_mid_job_is_rescued_by_the_survivor(self, queue_dir: Path) -> None:
        config = queue_config(queue_dir, queues={"default": 2, "rescue": 1})
        async with aria.running(apps=["aria_queue"], config=config) as system:
            q = await queue()
            q.pause("rescue")  # the job must start in the second process
            second = SecondNode(system, {"rescue": 1})
            await second.start(await shared_password())
            try:
                job = await q.insert("test.slow")
                assert await second.read_line() == f"started {job.id}"
                assert (await q.get_job(job.id)).state == "executing"
                assert second.process is not None
                second.process.kill()
                await trio.to_thread.run_sync(second.process.wait)
            finally:
                second.close()
            q.resume("rescue")
            done = await wait_for_state(job.id, "completed")
        assert ("rescued", job.id) in REC.order
        assert "stopped its heartbeat" in done.errors[-1]["error"]
        assert done.attempt == 2
