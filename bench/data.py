"""aria_data figures, against the embedded PostgreSQL child.

Run: ``.venv/bin/python bench/data.py [--seconds S]``

Single-row round trips (an upsert, then a select of that row) through aria's trio API (asyncpg on
trio-asyncio, pool, retries, typed errors) and through raw asyncpg on plain asyncio, against the
same database in the same run, interleaved in rounds. Twice: with durable commits (fsync-bound),
and with ``synchronous_commit = off`` for the role, where the client side's cost shows. Then the
cold first boot (OpenBao and initdb included) and a warm boot.
Target (issue #4): aria keeps at least 80 % of raw throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import trio

import aria
import aria.logging
from aria.apps.security.api import AppSecrets

UPSERT = "INSERT INTO bench (id, value) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET value = excluded.value"
SELECT = "SELECT value FROM bench WHERE id = $1"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def aria_round(database: Any, seconds: float) -> list[float]:
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    key = 0
    while time.perf_counter() < deadline:
        key = (key + 1) % 1000
        began = time.perf_counter()
        await database.execute(UPSERT, key, "v")
        await database.fetchval(SELECT, key)
        samples.append(time.perf_counter() - began)
    return samples


def raw_round(dsn: dict[str, Any], seconds: float) -> list[float]:
    async def run() -> list[float]:
        pool = await asyncpg.create_pool(**dsn, min_size=1, max_size=10)
        samples: list[float] = []
        deadline = time.perf_counter() + seconds
        key = 0
        while time.perf_counter() < deadline:
            key = (key + 1) % 1000
            began = time.perf_counter()
            async with pool.acquire() as connection:
                await connection.execute(UPSERT, key, "v")
            async with pool.acquire() as connection:
                await connection.fetchval(SELECT, key)
            samples.append(time.perf_counter() - began)
        await pool.close()
        return samples

    return asyncio.run(run())


async def compare(label: str, database: Any, dsn: dict[str, Any], seconds: float, rounds: int) -> None:
    aria_samples: list[float] = []
    raw_samples: list[float] = []
    for _ in range(rounds):
        aria_samples += await aria_round(database, seconds / rounds)
        raw_samples += await trio.to_thread.run_sync(raw_round, dsn, seconds / rounds)
    aria_rate = len(aria_samples) / sum(aria_samples)
    raw_rate = len(raw_samples) / sum(raw_samples)
    print(f"{label}:")
    for name, rate, samples in (
        ("aria (trio)", aria_rate, aria_samples),
        ("raw asyncpg", raw_rate, raw_samples),
    ):
        print(f"  {name:<18} {rate:8.0f} round trips/s   p99 {percentile(samples, 0.99) * 1e3:6.2f} ms")
    print(f"  aria keeps {aria_rate / raw_rate * 100:.0f} % of raw throughput (target >= 80 %)")


async def main(seconds: float) -> None:
    base = Path(tempfile.mkdtemp(prefix="aria-bench-", dir="/tmp"))
    os.chmod(base, 0o711)  # PostgreSQL runs as the postgres user when this runs as root
    config = {"node": {"data_dir": str(base / "var")}, "log": {"format": "json", "level": "warning"}}
    aria.logging.configure("warning", "json")
    try:
        began = time.perf_counter()
        async with aria.running(apps=["aria_data"], config=config, configure_logging=False):
            cold = time.perf_counter() - began
        began = time.perf_counter()
        async with aria.running(apps=["aria_data"], config=config, configure_logging=False):
            warm = time.perf_counter() - began
            database = aria.whereis("aria_data")
            status = database.status()
            host, port = status["address"].split(":")
            password = (
                await AppSecrets(aria.whereis("aria_security"), "aria_data").get_secret("db/password")
            )["value"]
            dsn = {"host": host, "port": int(port), "user": "aria", "password": password, "database": "aria"}
            await database.execute("CREATE TABLE IF NOT EXISTS bench (id INT PRIMARY KEY, value TEXT)")
            await compare("durable commits", database, dsn, seconds, rounds=6)
            await database.execute("ALTER ROLE aria SET synchronous_commit = off")
            await compare("synchronous_commit = off", database, dsn, seconds, rounds=6)
        print(f"cold first boot (OpenBao init + initdb + role): {cold:.2f} s")
        print(f"warm boot:                                      {warm:.2f} s")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="per comparison, split into rounds")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    trio.run(main, parser.parse_args().seconds)
