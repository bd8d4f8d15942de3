"""Apps: the 14 services of Aria, each an OTP-style application with its own supervisor.

An app declares its name, boot layer, the apps it depends on, its config section and a function
that builds its children. The system runs each app as one child of the root supervisor: an app
supervisor whose children are the app's workers (and OS processes). One of those workers publishes
the app's API handle under the app's name, which is what :func:`aria.whereis` returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import trio

from aria.config import Config, EmptySection, Section
from aria.errors import UsageError
from aria.supervisor import ChildSpec, ChildType, ServiceRef, Strategy, Supervisor

if TYPE_CHECKING:
    from aria.system import System

LAYERS = {
    1: "foundation",
    2: "core",
    3: "intelligence",
    4: "orchestration",
    5: "gateway & ops",
}


@dataclass(frozen=True)
class App:
    """The declaration of one app (``APP`` in ``aria/apps/<name>/app.py``).

    Args:
        name: The app's name, ``aria_<section>``; also the registered name of its API.
        layer: Its boot layer (1 foundation ... 5 gateway & ops).
        depends_on: Apps it calls; they must be in an earlier layer or earlier in the same layer.
        summary: One line on what it does.
        build: ``build(ctx) -> [ChildSpec, ...]``: the app's children, in start order.
        config_model: Its config section's model.
        strategy, intensity, period: of the app's own supervisor.
        start_timeout: How long the whole app may take to become ready.
        implemented: False for a placeholder.
    """

    name: str
    layer: int
    depends_on: tuple[str, ...]
    summary: str
    build: Callable[[AppContext], Sequence[ChildSpec]]
    config_model: type[Section] = EmptySection
    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: int = 3
    period: float = 5.0
    start_timeout: float = 300.0
    implemented: bool = True

    def __post_init__(self) -> None:
        if not self.name.startswith("aria_"):
            raise ValueError(f"app name {self.name!r} must start with 'aria_'")
        if self.layer not in LAYERS:
            raise ValueError(f"app {self.name!r}: layer {self.layer} is not one of {sorted(LAYERS)}")

    @property
    def section(self) -> str:
        """The app's config section (its name without ``aria_``)."""
        return self.name.removeprefix("aria_")

    def child_spec(self, system: System) -> ChildSpec:
        """The spec that runs this app under the root supervisor."""

        async def start(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            structlog.contextvars.bind_contextvars(app=self.name)
            context = AppContext(self, system)
            context.data_dir.mkdir(parents=True, exist_ok=True)
            supervisor = Supervisor(
                self.build(context),
                strategy=self.strategy,
                intensity=self.intensity,
                period=self.period,
                id=self.name,
            )
            await supervisor.run(task_status=task_status)

        return ChildSpec(
            id=self.name,
            start=start,
            type=ChildType.SUPERVISOR,
            start_timeout=self.start_timeout,
            meta={"layer": self.layer, "implemented": self.implemented},
        )


@dataclass
class AppContext:
    """What an app's ``build`` function and workers get: config, data directory, dependencies."""

    app: App
    system: System
    _allowed: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self._allowed = frozenset(self.system.dependency_closure(self.app.name))

    @property
    def config(self) -> Config:
        return self.system.config

    @property
    def settings(self) -> Any:
        """This app's config section."""
        return self.system.config.section(self.app.section)

    @property
    def data_dir(self) -> Path:
        """This app's own directory under the node's data directory."""
        return self.system.config.data_dir / self.app.section

    @property
    def log(self) -> Any:
        return structlog.get_logger(self.app.name)

    def api(self, name: str) -> ServiceRef:
        """The API of a dependency. Only apps in ``depends_on`` (and theirs) may be reached.

        Raises:
            UsageError: if ``name`` is not a declared dependency of this app.
        """
        if name not in self._allowed:
            raise UsageError(
                f"app {self.app.name!r} may not call {name!r}: it is not among its dependencies "
                f"({', '.join(self.app.depends_on) or 'none'})"
            )
        return self.system.whereis(name)


class PlaceholderApi:
    """The API of an app whose issue has not been done yet: it runs, reports health, and says so."""

    implemented = False

    def __init__(self, app: App) -> None:
        self._app = app
        self._started = trio.current_time()

    def status(self) -> dict[str, Any]:
        return {
            "app": self._app.name,
            "state": "running",
            "implemented": False,
            "note": f"{self._app.name} is not implemented yet: {self._app.summary}",
        }

    async def health(self) -> dict[str, Any]:
        return {"ok": True, "app": self._app.name, "note": "not implemented yet"}


def placeholder_children(context: AppContext) -> list[ChildSpec]:
    """The children of a placeholder app: one worker that publishes a :class:`PlaceholderApi`."""

    async def serve(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        api = PlaceholderApi(context.app)
        context.log.info("app not implemented yet; running as a placeholder")
        task_status.started(api)
        await trio.sleep_forever()

    return [ChildSpec(id="api", start=serve, name=context.app.name)]
