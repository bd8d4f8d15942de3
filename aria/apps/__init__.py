"""The 14 apps and their cold-boot order.

Layers boot in order (1 foundation ... 5 gateway & ops); within a layer, an app boots after the
apps it depends on, and otherwise in the order of :data:`APP_PACKAGES`. An app may depend only on
apps that boot before it; :func:`boot_order` rejects anything else.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from aria.errors import UsageError

if TYPE_CHECKING:
    from aria.application import App

APP_PACKAGES: tuple[str, ...] = (
    "security",
    "data",
    "auth",
    "storage",
    "queue",
    "shape",
    "engine",
    "interpret",
    "workflow",
    "interface",
    "coordinate",
    "monitor",
    "debugger",
    "tune",
)


@functools.cache
def all_apps() -> tuple[App, ...]:
    """Every app's declaration, in the order of :data:`APP_PACKAGES`."""
    apps = []
    for package in APP_PACKAGES:
        module = importlib.import_module(f"aria.apps.{package}.app")
        app = module.APP
        if app.section != package:
            raise UsageError(f"aria/apps/{package}/app.py declares {app.name!r}; expected 'aria_{package}'")
        apps.append(app)
    return tuple(apps)


def app_names() -> list[str]:
    return [app.name for app in all_apps()]


def boot_order(apps: Sequence[App], selected: Iterable[str] | None = None) -> list[App]:
    """The apps to boot, in cold-boot order.

    Args:
        apps: All known apps, in declaration order.
        selected: Names (``aria_data`` or ``data``) to boot with their dependencies; all if None.

    Raises:
        UsageError: for an unknown app name, an unknown dependency, a dependency on an app that
            boots later, or a dependency cycle.
    """
    by_name = {app.name: app for app in apps}
    position = {app.name: index for index, app in enumerate(apps)}
    for app in apps:
        for dependency in app.depends_on:
            if dependency not in by_name:
                raise UsageError(f"app {app.name!r} depends on {dependency!r}, which does not exist")
            if by_name[dependency].layer > app.layer:
                raise UsageError(
                    f"app {app.name!r} (layer {app.layer}) depends on {dependency!r}, "
                    f"which boots later (layer {by_name[dependency].layer})"
                )
    wanted = set(by_name)
    if selected is not None:
        wanted = set()
        pending = [_canonical(name, by_name) for name in selected]
        while pending:
            name = pending.pop()
            if name not in wanted:
                wanted.add(name)
                pending.extend(by_name[name].depends_on)
    ordered: list[App] = []
    placed: set[str] = set()
    for layer in sorted({by_name[name].layer for name in wanted}):
        remaining = sorted((n for n in wanted if by_name[n].layer == layer), key=position.__getitem__)
        while remaining:
            ready = [n for n in remaining if all(d in placed for d in by_name[n].depends_on)]
            if not ready:
                raise UsageError(f"dependency cycle among apps: {', '.join(remaining)}")
            ordered.append(by_name[ready[0]])
            placed.add(ready[0])
            remaining.remove(ready[0])
    return ordered


def dependency_closure(apps: Sequence[App], name: str) -> set[str]:
    """Every app ``name`` depends on, directly or not."""
    by_name = {app.name: app for app in apps}
    closure: set[str] = set()
    pending = list(by_name[name].depends_on)
    while pending:
        dependency = pending.pop()
        if dependency not in closure:
            closure.add(dependency)
            pending.extend(by_name[dependency].depends_on)
    return closure


def _canonical(name: str, by_name: dict[str, App]) -> str:
    full = name if name.startswith("aria_") else f"aria_{name}"
    if full not in by_name:
        raise UsageError(f"unknown app {name!r}; apps are: {', '.join(by_name)}")
    return full
