"""The errors aria_storage raises, in one tree.

* ``StorageError`` (an :class:`aria.errors.AriaError`): storage could not do what was asked.

  * ``InvalidIndex`` (also a ``ValueError``): a file is not a valid ``.caibx``/``.caidx`` index
    (truncated, foreign, wrong magic, inconsistent table); the message names the file and the fault.
  * ``InvalidArchive`` (also a ``ValueError``): a ``.catar`` stream is malformed.
  * ``ChunkMissing``: a store does not hold a chunk; names the chunk ID and the store.
  * ``ChunkInvalid``: a chunk's content does not hash to its ID, or does not decompress; names the
    chunk ID and the store.
  * ``StoreFailure``: the backend failed (I/O error, HTTP status, S3 or SFTP error); names the store,
    the operation and the backend's own message, chained with ``from``.
  * ``ContentMismatch``: a file's bytes do not match the index they are said to match (``chop``).
  * ``AssetNotFound`` (also a ``LookupError``): the catalog has no such asset or version.
  * ``AssetExists``: an asset version that is already stored (versions are immutable).
  * ``UploadExpired``: an upload stopped sending heartbeats for longer than
    ``storage.upload_timeout`` and a gc forgot it; nothing of it was cataloged.
  * ``SweepInProgress``: another gc holds the sweep lease.

* ``StoreURLError`` (an :class:`aria.errors.UsageError` and ``ValueError``): a store location that
  names an unknown scheme or is malformed. The caller must change it.
"""

from __future__ import annotations

from aria.errors import AriaError, UsageError


class StorageError(AriaError):
    """Base class of aria_storage's environmental failures."""


class InvalidIndex(StorageError, ValueError):
    """Raised when index bytes are not a valid casync index; ``source`` names the file."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source} is not a valid casync index: {problem}")


class InvalidArchive(StorageError, ValueError):
    """Raised when a ``.catar`` stream is malformed; ``source`` names it, ``offset`` says where."""

    def __init__(self, source: str, offset: int, problem: str) -> None:
        self.source = source
        self.offset = offset
        super().__init__(f"{source} is not a valid catar archive at byte {offset}: {problem}")


class ChunkMissing(StorageError):
    """Raised when a store does not hold a chunk (a router then tries the next store)."""

    def __init__(self, chunk_id: bytes, store: str, *, also_missing: int = 0) -> None:
        self.chunk_id = chunk_id
        self.store = store
        self.also_missing = also_missing
        more = f" (and {also_missing} more chunks)" if also_missing else ""
        super().__init__(f"chunk {chunk_id.hex()} is missing from store {store}{more}")


class ChunkInvalid(StorageError):
    """Raised when a stored chunk does not decompress or does not hash to its ID."""

    def __init__(self, chunk_id: bytes, store: str, problem: str) -> None:
        self.chunk_id = chunk_id
        self.store = store
        self.problem = problem
        super().__init__(f"chunk {chunk_id.hex()} in store {store} is invalid: {problem}")


class StoreFailure(StorageError):
    """Raised when a store's backend fails; ``__cause__`` holds the backend's exception."""

    def __init__(self, store: str, operation: str, problem: str) -> None:
        self.store = store
        self.operation = operation
        super().__init__(f"store {store}: {operation} failed: {problem}")


class ContentMismatch(StorageError):
    """Raised when data does not match the index it is meant to match."""


class StoreURLError(UsageError, ValueError):
    """Raised for a store location with an unknown scheme or a malformed URL."""

    def __init__(self, location: str, problem: str) -> None:
        self.location = location
        super().__init__(f"store location {location!r}: {problem}")


class AssetNotFound(StorageError, LookupError):
    """Raised when the catalog has no asset of that name (and version)."""

    def __init__(self, name: str, version: str | None = None) -> None:
        self.name = name
        self.version = version
        what = f"asset {name!r}" if version is None else f"asset {name!r} version {version!r}"
        super().__init__(f"{what} is not in the catalog")


class AssetExists(StorageError):
    """Raised when putting an asset version that the catalog already holds."""

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        super().__init__(f"asset {name!r} version {version!r} already exists (versions are immutable)")


class UploadExpired(StorageError):
    """Raised when an upload was forgotten (no heartbeat for ``storage.upload_timeout``) mid-way."""


class SweepInProgress(StorageError):
    """Raised when a gc starts while another one (``holder``) holds the sweep lease."""

    def __init__(self, holder: str) -> None:
        self.holder = holder
        super().__init__(f"a gc is already sweeping the store (held by {holder})")
