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
