"""aria_queue figures next to pgqueuer's, on the same embedded PostgreSQL in the same run.

Run: ``.venv/bin/python bench/queue.py [--jobs N] [--concurrency C]``

For aria's portable claim (a conditional UPDATE that CockroachDB 22.1 accepts), aria's PostgreSQL
fast path (SKIP LOCKED), and pgqueuer (triggers, LISTEN/NOTIFY, SKIP LOCKED): insert N no-op jobs
in batches (inserts/s), drain them (jobs/s, until every job is recorded as done), then insert 500
jobs one at a time into an idle queue and report insert-to-start latency p50/p99.
Targets (issue #6): the portable drain rate at least pgqueuer's; the fast path at least 1.5x.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the standard library's `queue`; keep its folder off the import path.
sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from datetime import timedelta
from typing import Any

import asyncpg
import trio

import aria
import aria.logging
from aria.apps.queue.api import Job, QueueApi, Worker, WorkerRegistry
from aria.apps.queue.app import QueueSection
from aria.apps.security.api import AppSecrets

BATCH = 5000
MIGRATIONS = Path(__file__).resolve().parent.parent / "aria" / "apps" / "queue" / "migrations"
LATENCY_JOBS = 500


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(name: str, inserts: float, drain: float, latencies: list[float]) -> dict[str, float]:
    p50, p99 = percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3
    rates = f"inserts {inserts:8.0f}/s   drain {drain:7.0f} jobs/s"
    print(f"{name:<28} {rates}   start latency p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
    return {"drain": drain}


async def aria_round(database: Any, claim: str, jobs: int, concurrency: int) -> dict[str, float]:
    performed = 0
    latencies: list[float] = []
    measuring = False

    async def noop(job: Job) -> None:
        nonlocal performed
        performed += 1
        if measuring:
            latencies.append(time.time() - job.inserted_at.timestamp())

    registry = WorkerRegistry()
    registry.register(Worker("bench.noop", noop, queue="bench"))
    settings = QueueSection(queues={"bench": concurrency}, claim=claim, poll_interval=1.0)
    runtime = QueueApi(
        database=database, settings=settings, node="bench", engine="postgres", workers=registry
    )
    await database.execute("DELETE FROM aria_jobs")
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        runtime.pause("bench")
        began = time.perf_counter()
        for start in range(0, jobs, BATCH):
            await runtime.insert_all([{"worker": "bench.noop"} for _ in range(min(BATCH, jobs - start))])
        inserts = jobs / (time.perf_counter() - began)
        began = time.perf_counter()
        runtime.resume("bench")
        while await database.fetchval("SELECT count(*) FROM aria_jobs WHERE state = 'completed'") < jobs:
            await trio.sleep(0.02)
        drain = jobs / (time.perf_counter() - began)
        measuring = True
        for _ in range(LATENCY_JOBS):
            await runtime.insert("bench.noop")
            await trio.sleep(0.002)
        while len(latencies) < LATENCY_JOBS:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    await database.execute("DELETE FROM aria_jobs")
    return report(f"aria, {claim} claim", inserts, drain, latencies)


def pgqueuer_round(dsn: dict[str, Any], jobs: int, concurrency: int) -> dict[str, float]:
    from pgqueuer import AsyncpgDriver, Queries, QueueManager
    from pgqueuer.domain.types import QueueExecutionMode

    async def run() -> dict[str, float]:
        connection = await asyncpg.connect(**dsn)
        driver = AsyncpgDriver(connection)
        queries = Queries(driver)
        try:
            await queries.install()
        except asyncpg.exceptions.DuplicateObjectError:
            pass
        manager = QueueManager(queries)
        latencies: list[float] = []
        measuring = False

        @manager.entrypoint("noop")
        async def noop(job: Any) -> None:
            if measuring:
                latencies.append(time.time() - job.created.timestamp())

        began = time.perf_counter()
        for start in range(0, jobs, BATCH):
            count = min(BATCH, jobs - start)
            await queries.enqueue(["noop"] * count, [None] * count, [0] * count)
        inserts = jobs / (time.perf_counter() - began)
        began = time.perf_counter()
        await manager.run(
            batch_size=concurrency, max_concurrent_tasks=2 * concurrency, mode=QueueExecutionMode.drain
        )
        drain = jobs / (time.perf_counter() - began)
        measuring = True
        worker = QueueManager(queries)
        worker.entrypoint("noop")(noop)
        runner = asyncio.create_task(
            worker.run(
                batch_size=concurrency,
                max_concurrent_tasks=2 * concurrency,
                dequeue_timeout=timedelta(seconds=1),
            )
        )
        await asyncio.sleep(0.5)
        for _ in range(LATENCY_JOBS):
            await queries.enqueue("noop", None)
            await asyncio.sleep(0.002)
        while len(latencies) < LATENCY_JOBS:
            await asyncio.sleep(0.01)
        worker.shutdown.set()
        await runner
        await connection.close()
        return report("pgqueuer", inserts, drain, latencies)

    return asyncio.run(run())


async def main(jobs: int, concurrency: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="aria-bench-", dir="/tmp"))
    os.chmod(base, 0o711)  # PostgreSQL runs as the postgres user when this runs as root
    config = {"node": {"data_dir": str(base / "var")}, "log": {"format": "json", "level": "warning"}}
    aria.logging.configure("warning", "json")
    try:
        async with aria.running(apps=["aria_data"], config=config, configure_logging=False):
            database = await aria.whereis("aria_data").get()
            await database.migrate("aria_queue", MIGRATIONS)
            host, port = database.status()["address"].split(":")
            password = (
                await AppSecrets(aria.whereis("aria_security"), "aria_data").get_secret("db/password")
            )["value"]
            dsn = {"host": host, "port": int(port), "user": "aria", "password": password, "database": "aria"}
            print(f"{jobs} no-op jobs, concurrency {concurrency}, PostgreSQL {database.server_version}")
            peer = await trio.to_thread.run_sync(pgqueuer_round, dsn, jobs, concurrency)
            portable = await aria_round(database, "portable", jobs, concurrency)
            fast = await aria_round(database, "skip_locked", jobs, concurrency)
            print(f"portable drain / pgqueuer:  {portable['drain'] / peer['drain']:.2f}x (target >= 1.0x)")
            print(f"fast path drain / pgqueuer: {fast['drain'] / peer['drain']:.2f}x (target >= 1.5x)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=50)
    arguments = parser.parse_args()
    trio.run(main, arguments.jobs, arguments.concurrency)
