"""One running Aria node: the root supervisor over the apps, the registry, events and control socket."""

from __future__ import annotations

import fcntl
import gc
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import structlog
import trio

import aria.logging
from aria import config as config_module
from aria.application import App
from aria.apps import all_apps, boot_order, dependency_closure
from aria.config import Config
from aria.errors import AriaError, NoSuchService
from aria.supervisor import (
    EventBus,
    Registry,
    ServiceRef,
    Strategy,
    Supervisor,
    open_process_launcher,
)

log = structlog.get_logger("aria.system")

YOUNG_COLLECTION_THRESHOLD = 20_000
"""Allocations between young-generation collections while a node runs (CPython's default is
700): fewer walks over in-flight request objects, about 3 % of the gateway's CPU per request."""

_current_system: ContextVar[System | None] = ContextVar("aria_current_system", default=None)
_last_system: System | None = None


class DataDirInUse(AriaError):
    """Raised when another Aria process already runs on the same data directory."""

    def __init__(self, data_dir: Path, holder: str) -> None:
        super().__init__(f"another aria process ({holder}) is already running on data directory {data_dir}")


class System:
    """A node: the apps booted in cold-boot order under a rest_for_one root supervisor.

    Use :func:`aria.running` in scripts and tests; ``aria start`` uses it too.
    """

    def __init__(
        self, config: Config, apps: Iterable[str] | None = None, *, catalog: Sequence[App] | None = None
    ) -> None:
        self.config = config
        self.known_apps = tuple(catalog) if catalog is not None else all_apps()
        self.apps = boot_order(self.known_apps, apps)
        self.registry = Registry()
        self.events = EventBus()
        for app in self.apps:
            self.registry.declare(app.name)
        self.root = Supervisor(
            [app.child_spec(self) for app in self.apps],
            strategy=Strategy.REST_FOR_ONE,
            intensity=config.supervisor.intensity,
            period=config.supervisor.period,
            id="root",
            events=self.events,
            registry=self.registry,
            shutdown_timeout=config.supervisor.shutdown_timeout,
        )
        self.control_ops: dict[str, Any] = {}
        self.banner_lines: list[str] = []  # what `aria start` prints after boot (the dashboard's URL...)
        self.boot_seconds: float | None = None
        self.started_wall: float | None = None
        self.failure: BaseException | None = None
        self._stopped = trio.Event()

    # ---- scripting API ------------------------------------------------------------------------

    def whereis(self, name: str, *, timeout: float = 10.0) -> ServiceRef:
        """A reference to a running app's API (``aria_data`` or ``data``); calls wait through restarts.

        Raises:
            NoSuchService: if the app is not part of this system.
        """
        full = name if name.startswith("aria_") else f"aria_{name}"
        if not self.registry.is_known(full):
            raise NoSuchService(full, self.registry.names())
        return ServiceRef(self.registry, full, timeout)

    def dependency_closure(self, name: str) -> set[str]:
        return dependency_closure(self.known_apps, name)

    def tree(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of the node and its whole supervision tree."""
        return {
            "node": self.config.node_name,
            "pid": os.getpid(),
            "data_dir": str(self.config.data_dir),
            "started": self.started_wall,
            "uptime": round(time.time() - self.started_wall, 3) if self.started_wall else None,
            "boot_seconds": self.boot_seconds,
            "apps": [app.name for app in self.apps],
            "root": self.root.snapshot(),
        }

    async def stop(self) -> None:
        """Stop every app in reverse boot order (each within its budget) and wait until done."""
        await self.root.stop()
        await self._stopped.wait()

    async def kill_child(self, path: str) -> None:
        """Kill the child at ``path`` (``aria_data`` or ``aria_data/api``) as if it crashed."""
        supervisor, child_id = self.root.find(path)
        await supervisor.kill_child(child_id)

    async def restart_child(self, path: str) -> None:
        """Stop the child at ``path`` within its budget and start it again."""
        supervisor, child_id = self.root.find(path)
        await supervisor.restart_child(child_id)

    async def terminate_child(self, path: str) -> None:
        """Stop the child at ``path``; it stays stopped until restarted."""
        supervisor, child_id = self.root.find(path)
        await supervisor.terminate_child(child_id)

    async def wait_stopped(self) -> None:
        """Wait until the system has stopped (by request, escalation or boot failure)."""
        await self._stopped.wait()

    def stop_nowait(self) -> None:
        """Ask for :meth:`stop` without waiting."""
        self.root.stop_nowait()

    def kill(self) -> None:
        """Stop now: kill every child without waiting for budgets (a second Ctrl-C)."""
        self.root.kill()

    # ---- running ------------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Boot all apps, report ready, run until stopped, then stop in reverse order.

        Raises:
            StartError: if an app fails to start (after stopping the ones already started).
            Escalation: if the root supervisor gives up after repeated crashes.
            DataDirInUse: if another Aria process owns the data directory.
        """
        from aria.control import serve_control

        data_dir = self.config.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        collect_thresholds: tuple[int, ...] | None = None
        with _data_dir_lock(data_dir), open_process_launcher():
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(serve_control, self)
                    began = trio.current_time()
                    try:
                        await nursery.start(self._run_root)
                    except AriaError as exc:  # a boot failure; the started apps are stopped already
                        self.failure = exc
                    else:
                        self.boot_seconds = round(trio.current_time() - began, 4)
                        self.started_wall = time.time()
                        log.info("system ready", apps=len(self.apps), boot_seconds=self.boot_seconds)
                        # What boot made (modules, models, pools) lives as long as the node: moved
                        # out of the collector's reach, a full collection no longer walks it; those
                        # walks cost tens of ms under load (bench/gateway.py: p99 halved).
                        gc.freeze()
                        # Each request leaves a few hundred young objects alive for a moment; at the
                        # default threshold (700) the collector walks them every few requests.
                        collect_thresholds = gc.get_threshold()
                        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *collect_thresholds[1:])
                        task_status.started(self)
                        await self._stopped.wait()
                    nursery.cancel_scope.cancel()
            finally:
                self._stopped.set()
                gc.unfreeze()  # what this node held may be garbage now (tests run many nodes)
                if collect_thresholds is not None:
                    gc.set_threshold(*collect_thresholds)
        if self.failure is not None:
            raise self.failure

    async def _run_root(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await self.root.run(task_status=task_status)
        except AriaError as exc:
            if self.boot_seconds is None:
                raise  # boot failure: nursery.start re-raises it to run()'s caller
            self.failure = exc
        finally:
            self._stopped.set()


@contextmanager
def _data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<data_dir>/aria.lock`` so two nodes never share a data directory."""
    path = data_dir / "aria.lock"
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise DataDirInUse(data_dir, f"pid {holder}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def current_system() -> System:
    """The system of the enclosing :func:`running` block, else the last one started in this process.

    Raises:
        RuntimeError: if no system is running.
    """
    system = _current_system.get() or _last_system
    if system is None:
        raise RuntimeError("no aria system is running here; use `async with aria.running():`")
    return system


@asynccontextmanager
async def running(
    apps: Iterable[str] | None = None,
    *,
    config: Config | Mapping[str, Mapping[str, Any]] | None = None,
    configure_logging: bool = True,
    catalog: Sequence[App] | None = None,
) -> AsyncIterator[System]:
    """Boot the named apps (all by default) plus their dependencies; stop them when the block ends.

    Args:
        apps: App names (``"aria_storage"`` or ``"storage"``); their dependencies come along.
        config: A :class:`~aria.config.Config`, or overrides on top of the usual sources
            (``{"node": {"data_dir": "/tmp/x"}}``).
        configure_logging: Apply the config's ``[log]`` section to this process.
        catalog: The apps to choose from (Aria's 14 by default); embedders may add their own.

    Raises:
        ConfigError: for invalid configuration.
        StartError: if an app fails to start.
    """
    global _last_system
    if not isinstance(config, Config):
        config = config_module.load(overrides=config)
    if configure_logging:
        aria.logging.configure(config.log.level, config.log.format)
    system = System(config, apps, catalog=catalog)
    # Errors are carried out of the nursery by hand so that callers see them as raised, not
    # wrapped in an ExceptionGroup.
    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:
        try:
            await nursery.start(system.run)
        except AriaError as exc:
            failure = exc
        else:
            token = _current_system.set(system)
            _last_system = system
            try:
                yield system
            except BaseException as exc:
                failure = exc
            finally:
                _current_system.reset(token)
                if _last_system is system:
                    _last_system = None
                with trio.CancelScope(shield=True):
                    await system.stop()
    if failure is not None:
        raise failure
