"""Aria Character Core: a supervised monolith for generating game characters.

Scripting::

    import aria, trio

    async def main():
        async with aria.running(apps=["aria_storage"]) as system:
            storage = aria.whereis("aria_storage")
            print(storage.status())

    trio.run(main)
"""

from __future__ import annotations

from typing import Any

from aria.supervisor import ServiceRef
from aria.system import System, current_system, running

__version__ = "0.1.0"

__all__ = ["System", "__version__", "current_system", "running", "tree", "whereis"]


def whereis(name: str, *, timeout: float = 10.0) -> ServiceRef:
    """The API of a running app (``"aria_data"`` or ``"data"``) in the current system.

    Async methods called on the result wait up to ``timeout`` seconds for the app if it is
    restarting, instead of failing at once.

    Raises:
        NoSuchService: if the app is not part of the running system.
        RuntimeError: if no system is running.
    """
    return current_system().whereis(name, timeout=timeout)


def tree() -> dict[str, Any]:
    """A JSON-serialisable snapshot of the running system's supervision tree."""
    return current_system().tree()
