"""Supervisor figures: boot of the 14-app tree, restart latency of a crashed child, shutdown.

Run: ``.venv/bin/python -m bench.supervisor [--crashes N] [--boots N]``

Logging stays on (JSON at info level, written to /dev/null), as it is in production: a restart
logs the crash with its traceback, and that cost belongs in the figure.

Targets (issue #2): restart latency under 1 ms median, boot under 200 ms, shutdown under 500 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio

import aria
import aria.logging
from aria.application import App, placeholder_children
from aria.apps import all_apps
from aria.config import load
from aria.supervisor import ChildSpec, Supervisor


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def placeholder_tree() -> list[App]:
    """The 14 apps with their real layers, dependencies and config, each booting as a placeholder:
    the supervisor's own cost, without OpenBao's or PostgreSQL's start-up."""
    return [replace(app, build=placeholder_children) for app in all_apps()]


async def measure_boot_and_shutdown(boots: int) -> tuple[list[float], list[float]]:
    boot_times, stop_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        config = load(overrides={"node": {"data_dir": str(Path(tmp) / "var")}, "log": {"format": "json"}})
        for _ in range(boots):
            began = time.perf_counter()
            async with aria.running(
                config=config, configure_logging=False, catalog=placeholder_tree()
            ) as system:
                boot_times.append(time.perf_counter() - began)
                assert len(system.apps) == 14
                began = time.perf_counter()
                await system.stop()
                stop_times.append(time.perf_counter() - began)
    return boot_times, stop_times


async def measure_restarts(crashes: int) -> list[float]:
    """Time from a child raising to its next incarnation reporting ready."""
    crashed_at: list[float] = []
    latencies: list[float] = []
    trigger = trio.Event()
    restarted = trio.Event()

    async def crashy(*, task_status: Any) -> None:
        nonlocal trigger
        if crashed_at:
            latencies.append(time.perf_counter() - crashed_at[-1])
            restarted.set()
        trigger = trio.Event()
        task_status.started()
        await trigger.wait()
        crashed_at.append(time.perf_counter())
        raise RuntimeError("deliberate crash")

    supervisor = Supervisor([ChildSpec("crashy", crashy)], intensity=crashes + 1, period=3600)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        for _ in range(crashes):
            restarted = trio.Event()
            trigger.set()
            await restarted.wait()
        await supervisor.stop()
    return latencies


async def main(crashes: int, boots: int) -> None:
    with open(os.devnull, "w") as sink:  # noqa: ASYNC230 - opened once, before anything is measured
        aria.logging.configure("info", "json", stream=sink)
        boot_times, stop_times = await measure_boot_and_shutdown(boots)
        latencies = await measure_restarts(crashes)
    ms = 1000.0
    print(
        f"boot of the 14-app placeholder tree: median {statistics.median(boot_times) * ms:.1f} ms "
        f"(min {min(boot_times) * ms:.1f}, max {max(boot_times) * ms:.1f}, {boots} boots; target < 200 ms)"
    )
    print(
        f"shutdown of the tree:                median {statistics.median(stop_times) * ms:.1f} ms "
        f"(max {max(stop_times) * ms:.1f}; target < 500 ms)"
    )
    print(
        f"restart latency over {len(latencies)} crashes:   "
        f"median {statistics.median(latencies) * ms:.3f} ms, "
        f"p99 {percentile(latencies, 0.99) * ms:.3f} ms (target median < 1 ms)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crashes", type=int, default=1000)
    parser.add_argument("--boots", type=int, default=10)
    arguments = parser.parse_args()
    trio.run(main, arguments.crashes, arguments.boots)
