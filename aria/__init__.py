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

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aria.supervisor import ServiceRef
    from aria.system import System, current_system, running

__version__ = "0.1.0"

__all__ = ["System", "__version__", "current_system", "running", "tree", "whereis"]


def __getattr__(name: str) -> Any:
    # The system's names load on first use, so commands that need none of it (`aria storage make`)
    # start without importing the supervisor, config and every app.
    if name in ("System", "current_system", "running"):
        import aria.system

        return getattr(aria.system, name)
    raise AttributeError(f"module 'aria' has no attribute {name!r}")


def whereis(name: str, *, timeout: float = 10.0) -> ServiceRef:
    """The API of a running app (``"aria_data"`` or ``"data"``) in the current system.

    Async methods called on the result wait up to ``timeout`` seconds for the app if it is
    restarting, instead of failing at once.

    Raises:
        NoSuchService: if the app is not part of the running system.
        RuntimeError: if no system is running.
    """
    from aria.system import current_system

    return current_system().whereis(name, timeout=timeout)


def tree() -> dict[str, Any]:
    """A JSON-serialisable snapshot of the running system's supervision tree."""
    from aria.system import current_system

    return current_system().tree()
