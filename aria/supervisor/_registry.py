"""Named services: OTP's registered names, with callers that wait through restarts."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import trio

from aria.errors import NameAlreadyRegistered, NoSuchService, ServiceUnavailable

DEFAULT_CALL_TIMEOUT = 10.0


class Registry:
    """Maps names to the handles of running children.

    A name is *known* from its first registration on (or from :meth:`declare`), and *bound* while
    its child runs. Binding a name that is already bound raises
    :class:`~aria.errors.NameAlreadyRegistered`; when the child exits, the name is unbound but stays
    known, so :meth:`wait_for` waits for the restart instead of failing at once.
    """

    def __init__(self) -> None:
        self._handles: dict[str, object] = {}
        self._known: set[str] = set()
        self._changed = trio.Event()

    def declare(self, name: str) -> None:
        """Make a name known before its child first starts, so early callers wait for it."""
        self._known.add(name)

    def register(self, name: str, handle: object) -> None:
        if name in self._handles:
            raise NameAlreadyRegistered(name)
        self._handles[name] = handle
        self._known.add(name)
        self._notify()

    def unregister(self, name: str, handle: object | None = None) -> None:
        """Unbind ``name`` (only if it is still bound to ``handle``, when one is given)."""
        if name in self._handles and (handle is None or self._handles[name] is handle):
            del self._handles[name]
            self._notify()

    def whereis_nowait(self, name: str) -> object | None:
        """The handle bound to ``name`` now, or None if its child is not running."""
        return self._handles.get(name)

    def names(self) -> list[str]:
        return sorted(self._known)

    def is_known(self, name: str) -> bool:
        return name in self._known

    async def wait_for(self, name: str, timeout: float = DEFAULT_CALL_TIMEOUT) -> object:
        """Return the handle bound to ``name``, waiting up to ``timeout`` seconds for it.

        Raises:
            NoSuchService: if the name was never declared nor registered in this registry.
            ServiceUnavailable: if it did not become bound within ``timeout``.
        """
        if name not in self._known:
            raise NoSuchService(name, list(self._known))
        with trio.move_on_after(timeout):
            while (handle := self._handles.get(name)) is None:
                await self._changed.wait()
            return handle
        raise ServiceUnavailable(name, timeout)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


class ServiceRef:
    """A stable reference to a named service that survives its restarts.

    Attribute access goes to the handle that is live *now*. Async methods are wrapped so that each
    call first waits (up to ``timeout``) for the service to be running and then calls the handle that
    is live at that moment, which is what callers want while a service restarts. While the service is
    down, every attribute is such a waiting async callable (its type cannot be known then); plain
    attributes are read directly only while it runs.
    """

    __slots__ = ("_name", "_registry", "_timeout")

    def __init__(self, registry: Registry, name: str, timeout: float = DEFAULT_CALL_TIMEOUT) -> None:
        self._registry = registry
        self._name = name
        self._timeout = timeout

    @property
    def service_name(self) -> str:
        return self._name

    async def get(self, timeout: float | None = None) -> Any:
        """The live handle, waiting for the service to be running."""
        return await self._registry.wait_for(self._name, self._timeout if timeout is None else timeout)

    def __getattr__(self, attr: str) -> Any:
        handle = self._registry.whereis_nowait(self._name)
        if handle is not None:
            value = getattr(handle, attr)
            if not inspect.iscoroutinefunction(value):
                return value
        elif not self._registry.is_known(self._name):
            raise NoSuchService(self._name, self._registry.names())
        return self._waiting_method(attr)

    def _waiting_method(self, attr: str) -> Callable[..., Any]:
        registry, name, timeout = self._registry, self._name, self._timeout

        async def call(*args: Any, **kwargs: Any) -> Any:
            handle = await registry.wait_for(name, timeout)
            method = getattr(handle, attr)
            if not inspect.iscoroutinefunction(method):
                raise TypeError(f"{name}.{attr} is not an async method; read it after the service is up")
            return await method(*args, **kwargs)

        call.__name__ = attr
        call.__qualname__ = f"{name}.{attr}"
        return call

    def __repr__(self) -> str:
        state = "running" if self._registry.whereis_nowait(self._name) is not None else "not running"
        return f"<ServiceRef {self._name!r} ({state})>"
