"""Chunk stores selected by location, as desync selects them.

=======================================  ==============================================
location                                 store
=======================================  ==============================================
``/path`` or ``relative/path``           :class:`LocalStore` (a directory)
``file:///path``                         :class:`LocalStore`
``http://host[:port]/path/``             :class:`~aria.apps.storage.stores.http.HTTPStore`
``s3+http[s]://host[:port]/bucket/pfx``  :class:`~aria.apps.storage.stores.s3.S3Store`
``sftp://[user@]host[:port]/path``       :class:`~aria.apps.storage.stores.sftp.SFTPStore`
``memory://name``                        :class:`MemoryStore`
=======================================  ==============================================

Open them with ``async with open_store(location) as store``; remote stores hold connections (and,
for the asyncio libraries S3 and SFTP use, a trio-asyncio loop) until the block ends.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from urllib.parse import unquote, urlsplit

from aria.apps.storage.errors import StoreURLError
from aria.apps.storage.stores.base import StorageProblem, Store, StoreOptions
from aria.apps.storage.stores.cache import CacheStore, RouterStore
from aria.apps.storage.stores.local import LocalStore
from aria.apps.storage.stores.memory import MemoryStore

__all__ = [
    "SCHEMES",
    "CacheStore",
    "LocalStore",
    "MemoryStore",
    "RouterStore",
    "StorageProblem",
    "Store",
    "StoreOptions",
    "open_store",
    "open_stores",
    "scheme_of",
]

SCHEMES = ("file", "http", "https", "s3+http", "s3+https", "sftp", "memory")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def scheme_of(location: str) -> str:
    """The store kind a location selects: one of :data:`SCHEMES` (``file`` for a plain path).

    Raises:
        StoreURLError: for an empty location or an unknown scheme.
    """
    if not location:
        raise StoreURLError(location, "is empty")
    match = _SCHEME.match(location)
    if match is None:
        return "file"
    scheme = match.group(1).lower()
    if scheme not in SCHEMES:
        raise StoreURLError(location, f"unknown scheme {scheme!r}; supported: {', '.join(SCHEMES)}")
    return scheme


@asynccontextmanager
async def open_store(
    location: str, *, cache: str | None = None, options: StoreOptions | None = None
) -> AsyncIterator[Store]:
    """Open the store at ``location`` (and a local cache in front of it), closing it afterwards.

    Args:
        location: A path or URL (see the module docstring).
        cache: A local directory used as a cache in front of the store (desync's ``-c``).
        options: Store options; defaults otherwise.

    Raises:
        StoreURLError: for an unknown scheme or a malformed URL.
        StoreFailure: if a remote store cannot be reached or refuses the login.
    """
    options = options or StoreOptions()
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(_open_one(location, options))
        if cache:
            store = CacheStore(store, LocalStore(cache, compressed=options.compressed))
        yield store


@asynccontextmanager
async def open_stores(
    locations: Sequence[str], *, cache: str | None = None, options: StoreOptions | None = None
) -> AsyncIterator[Store]:
    """Several stores tried in order for reads (desync's repeated ``-s``), with an optional cache."""
    if not locations:
        raise StoreURLError("", "no store given")
    options = options or StoreOptions()
    async with AsyncExitStack() as stack:
        stores = [await stack.enter_async_context(_open_one(location, options)) for location in locations]
        store: Store = stores[0] if len(stores) == 1 else RouterStore(stores)
        if cache:
            store = CacheStore(store, LocalStore(cache, compressed=options.compressed))
        yield store


@asynccontextmanager
async def _open_one(location: str, options: StoreOptions) -> AsyncIterator[Store]:
    scheme = scheme_of(location)
    if scheme == "file":
        path = unquote(urlsplit(location).path) if location.startswith("file://") else location
        yield LocalStore(path, compressed=options.compressed)
    elif scheme == "memory":
        yield MemoryStore(location.removeprefix("memory://"), compressed=options.compressed)
    elif scheme in ("http", "https"):
        from aria.apps.storage.stores.http import HTTPStore

        async with HTTPStore(location, options) as store:
            yield store
    elif scheme in ("s3+http", "s3+https"):
        from aria.apps.storage.stores.s3 import open_s3_store

        async with open_s3_store(location, options) as store:
            yield store
    else:
        from aria.apps.storage.stores.sftp import open_sftp_store

        async with open_sftp_store(location, options) as store:
            yield store
