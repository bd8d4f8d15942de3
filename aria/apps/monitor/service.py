"""aria_monitor's service: metrics, health, history and the data behind the dashboard."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import structlog
import trio
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

import aria
import aria.logging
from aria.apps.data.api import DataError
from aria.apps.monitor import store

log = structlog.get_logger("aria_monitor")

MIGRATIONS = Path(__file__).parent / "migrations"
SAMPLED = (
    "cpu_percent",
    "memory_rss_bytes",
    "child_restarts",
    "http_requests",
    "queue_available",
    "queue_executing",
)


def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for child in node.get("children", []):
        yield child
        yield from walk(child)


class SystemCollector(Collector):
    """Exports the live tree and the latest sampled values as Prometheus metrics (base units)."""

    def __init__(self, monitor: MonitorService) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Any]:
        tree = self.monitor.system.tree()
        up = GaugeMetricFamily(
            "aria_child_up", "1 when the supervised child is running.", labels=["path", "kind"]
        )
        restarts = CounterMetricFamily(
            "aria_child_restarts", "Restarts of a supervised child.", labels=["path"]
        )
        for child in walk(tree["root"]):
            up.add_metric([child["path"], child["kind"]], 1.0 if child["state"] == "running" else 0.0)
            restarts.add_metric([child["path"]], float(child["restarts"]))
        yield up
        yield restarts
        latest = self.monitor.latest
        sealed = GaugeMetricFamily("aria_openbao_sealed", "1 when OpenBao is sealed.")
        if "openbao_sealed" in latest:
            sealed.add_metric([], latest["openbao_sealed"])
        yield sealed
        depth = GaugeMetricFamily("aria_queue_depth", "Jobs by queue and state.", labels=["queue", "state"])
        for (queue, state), count in latest.get("queue_jobs", {}).items():
            depth.add_metric([queue, state], float(count))
        yield depth
        pool = GaugeMetricFamily("aria_db_pool_connections", "Database pool connections.", labels=["state"])
        for state, count in latest.get("db_pool", {}).items():
            pool.add_metric([state], float(count))
        yield pool
        storage = GaugeMetricFamily(
            "aria_storage_bytes", "Bytes in the default chunk store.", labels=["kind"]
        )
        for kind, value in latest.get("storage", {}).items():
            if kind.endswith("bytes"):  # the catalog exports its counts and dedup ratio itself
                storage.add_metric([kind], float(value))
        yield storage


class MonitorService:
    """``aria.whereis("aria_monitor")``: health, metrics, history, and the dashboard's data."""

    def __init__(self, *, system: Any, database: Any, settings: Any, apis: dict[str, Any]) -> None:
        self.system = system
        self.db = database
        self.settings = settings
        self.apis = apis
        self.node = system.config.node_name
        self.latest: dict[str, Any] = {}
        self.started = time.time()
        self._collector = SystemCollector(self)
        self._process = psutil.Process()
        self._process.cpu_percent()  # the first call only primes the counter

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await self.db.migrate("aria_monitor", MIGRATIONS)
        REGISTRY.register(self._collector)
        try:
            async with trio.open_nursery() as nursery:
                await self.sample()
                nursery.start_soon(self._sampler)
                task_status.started(self)
                await trio.sleep_forever()
        finally:
            REGISTRY.unregister(self._collector)

    # ---- health and metrics -------------------------------------------------------------------

    def readiness(self) -> tuple[bool, list[str]]:
        """Ready when every started child of every app is running; returns the ones that are not."""
        not_ready = [
            child["path"] for child in walk(self.system.tree()["root"]) if child["state"] != "running"
        ]
        return not not_ready, not_ready

    def metrics(self) -> bytes:
        return bytes(generate_latest(REGISTRY))

    def status(self) -> dict[str, Any]:
        # Not readiness(): status() is itself part of the tree snapshot readiness() walks.
        return {"samples": len(self.latest), "sample_interval": self.settings.sample_interval}

    async def health(self) -> dict[str, Any]:
        ready, not_ready = self.readiness()
        return {"ok": ready, "not_ready": not_ready}

    # ---- sampling and history -----------------------------------------------------------------

    async def _sampler(self) -> None:
        last_rollup = 0.0
        while True:
            await trio.sleep(self.settings.sample_interval)
            try:
                await self.sample()
                if time.monotonic() - last_rollup >= 60:
                    await self.roll_up()
                    last_rollup = time.monotonic()
            except DataError as exc:
                log.warning("sampling metrics failed", error=str(exc))

    async def sample(self) -> dict[str, float]:
        """Read the current values and store them in the history."""
        values = await self._read()
        for name, value in values.items():
            await self.db.execute(store.INSERT_SAMPLE, self.node, name, float(value))
        return values

    async def _read(self) -> dict[str, float]:
        tree = self.system.tree()
        memory = self._process.memory_info().rss
        values: dict[str, float] = {
            "cpu_percent": self._process.cpu_percent(),
            "memory_rss_bytes": float(memory),
            "child_restarts": float(sum(child["restarts"] for child in walk(tree["root"]))),
            "http_requests": _http_requests(),
        }
        queue = self.apis.get("aria_queue")
        if queue is not None:
            try:
                stats = await queue.stats()
                counts = {(q, s): n for q, states in stats["jobs"].items() for s, n in states.items()}
                self.latest["queue_jobs"] = counts
                values["queue_available"] = float(sum(n for (_, s), n in counts.items() if s == "available"))
                values["queue_executing"] = float(sum(n for (_, s), n in counts.items() if s == "executing"))
            except Exception as exc:  # the queue may be restarting; the sample goes without it
                log.debug("queue statistics unavailable", error=str(exc))
        security = self.apis.get("aria_security")
        if security is not None:
            try:
                self.latest["openbao_sealed"] = 1.0 if security.status().get("sealed") else 0.0
            except Exception:
                pass
        try:
            stats = self.db.statistics()
            self.latest["db_pool"] = {"open": stats.size, "idle": stats.idle, "max": stats.max_size}
        except Exception:
            pass
        storage = self.apis.get("aria_storage")
        if storage is not None and hasattr(storage, "statistics"):
            try:
                found = storage.statistics()
                found = await found if hasattr(found, "__await__") else found
                self.latest["storage"] = {k: v for k, v in dict(found).items() if isinstance(v, int | float)}
            except Exception as exc:
                log.debug("storage statistics unavailable", error=str(exc))
        self.latest.update({f"sample_{name}": value for name, value in values.items()})
        return values

    async def roll_up(self) -> None:
        settings = self.settings
        await self.db.execute(store.ROLLUP_MINUTES, self.node, 3 * 3600.0)
        await self.db.execute(store.ROLLUP_HOURS, self.node, 3 * 86400.0)
        await self.db.execute(store.FORGET_SAMPLES, self.node, settings.raw_retention)
        await self.db.execute(store.FORGET_ROLLUPS, self.node, 60, settings.minute_retention)
        await self.db.execute(store.FORGET_ROLLUPS, self.node, 3600, settings.hour_retention)

    async def history(self, name: str, seconds: float = 3600.0) -> dict[str, Any]:
        """Samples of ``name`` over the last ``seconds``: raw up to 2 h, minute rollups up to 2 days,
        hour rollups beyond."""
        if name not in SAMPLED:
            raise ValueError(f"no history for {name!r}; metrics: {', '.join(SAMPLED)}")
        if seconds <= 2 * 3600:
            rows = await self.db.fetch(store.RAW, self.node, name, float(seconds))
            resolution = 0
        else:
            resolution = 60 if seconds <= 2 * 86400 else 3600
            rows = await self.db.fetch(store.ROLLED, self.node, name, float(seconds), resolution)
        return {
            "name": name,
            "resolution": resolution,
            "points": [[row["at"].timestamp(), row["value"]] for row in rows],
        }

    # ---- what the dashboard shows -------------------------------------------------------------

    def home(self) -> dict[str, Any]:
        tree = self.system.tree()
        data = self.apis.get("aria_data")
        security = self.apis.get("aria_security")
        return {
            "node": tree["node"],
            "pid": tree["pid"],
            "data_dir": tree["data_dir"],
            "uptime": tree["uptime"],
            "boot_seconds": tree["boot_seconds"],
            "apps": len(tree["apps"]),
            "versions": {
                "aria": aria.__version__,
                "python": platform.python_version(),
                "trio": trio.__version__,
                "database": _safe(lambda: data.server_version) if data else None,
                "openbao": _safe(lambda: security.status().get("version")) if security else None,
            },
            "engines": {
                "database": _safe(lambda: data.engine) if data else None,
                "secrets": "openbao",
            },
        }

    def os_stats(self) -> dict[str, Any]:
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(str(self.system.config.data_dir))
        load = os.getloadavg()
        return {
            "cpu_percent": psutil.cpu_percent(),
            "cpus": psutil.cpu_count(),
            "load": list(load),
            "memory": {"total": memory.total, "used": memory.used, "percent": memory.percent},
            "disk": {"path": str(self.system.config.data_dir), "total": disk.total, "used": disk.used,
                     "percent": disk.percent},
            "process": {"rss": self._process.memory_info().rss, "threads": self._process.num_threads(),
                        "python": sys.version.split()[0]},
        }  # fmt: skip

    def logs(self, since: int = 0, app: str = "", level: str = "", limit: int = 200) -> list[dict[str, Any]]:
        """Recent log events after sequence number ``since``, of ``app`` and at least ``level``."""
        levels = ("debug", "info", "warning", "error", "critical")
        floor = levels.index(level) if level in levels else 0

        def wanted(entry: dict[str, Any]) -> bool:
            entry_level = entry.get("level", "info")
            rank = levels.index(entry_level) if entry_level in levels else 1
            return rank >= floor and (not app or entry.get("app") == app)

        return [entry for entry in aria.logging.TAIL.since(since, limit=5000) if wanted(entry)][-limit:]


def _http_requests() -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "aria_http_requests":
            total += sum(sample.value for sample in metric.samples if sample.name.endswith("_total"))
    return total


def _safe(read: Any) -> Any:
    try:
        return read()
    except Exception:
        return None
