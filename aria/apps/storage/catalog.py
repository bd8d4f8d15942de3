"""The asset catalog: named, versioned, immutable assets in the chunk store, indexed in aria_data.

An asset is a blob chunked into the node's default store like ``aria storage make`` does; the
catalog row holds its name, version, content type, size, CAID (the SHA-256 of the whole content),
its ``.caibx`` index and timestamps, and one row per distinct chunk (gc's marks and the dedup
statistics).

**Puts are atomic.** :meth:`AssetCatalog.put_asset` streams the content through the chunker (never
holding it whole), writes the chunks, and only then inserts the asset in one transaction. A crash
at any point before that commit leaves no asset row: the asset appears whole or not at all. The
chunks it wrote are garbage that the next :meth:`AssetCatalog.gc` removes.

**gc is safe against concurrent puts.** An upload announces each batch of chunk IDs in the database
(``aria_storage_upload_chunks``) before writing or relying on them, in a transaction that also
checks no sweep is running; a gc first takes the sweep lease (``aria_storage_gc``), then reads
the marks (asset chunks and announced chunks) in a transaction that reads the lease again, then
deletes the listed chunks that are not marked. Under SERIALIZABLE isolation an announcement either
commits before the lease (so the marks include it) or sees the lease and waits for the sweep to end;
there is no order in which a chunk an upload relies on is deleted. An upload keeps a heartbeat; one
silent for ``storage.upload_timeout`` (its process died) is forgotten by the next gc, and if it was
in fact alive its final commit fails with :class:`UploadExpired` rather than catalog a partial asset.
"""

from __future__ import annotations

import bisect
import io
import os
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
import trio
from prometheus_client import Counter, Gauge

from aria.apps.data.api import DataError, UniqueViolation
from aria.apps.storage import store as sql
from aria.apps.storage.errors import (
    AssetExists,
    AssetNotFound,
    StorageError,
    SweepInProgress,
    UploadExpired,
)
from aria.apps.storage.format import Digest, Index
from aria.apps.storage.operations import make_from_stream
from aria.apps.storage.pipeline import single_errors
from aria.apps.storage.sizes import ChunkSizes
from aria.apps.storage.stores import LocalStore, StorageProblem, Store

log = structlog.get_logger("aria_storage")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
CONTENT_TYPE_PATTERN = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*(\s*;[ -~]*)?$")
#: The version alias meaning the most recently created version; never a version's own name.
LATEST = "latest"
DEFAULT_CONTENT_TYPE = "application/octet-stream"

#: Bytes handed to the chunker at a time (an upload's small network pieces are gathered first).
BLOCK = 1 << 20
#: Bytes of chunks a reader fetches at once (ahead of what it returns).
READ_AHEAD = 4 << 20
#: The sweep lease's length, and how often a sweeping gc renews it.
SWEEP_LEASE = 60.0
SWEEP_RENEW = 15.0
#: How often an upload that a sweep holds back asks again.
SWEEP_WAIT = 0.2

UPLOADED = Counter("aria_storage_uploaded_bytes", "Bytes of assets put into the catalog.")
DOWNLOADED = Counter("aria_storage_downloaded_bytes", "Bytes of assets read from the catalog.")
SWEPT = Counter("aria_storage_gc_deleted_chunks", "Chunks deleted by the catalog's gc.")
ASSETS = Gauge("aria_storage_assets", "Assets in the catalog.")
LOGICAL_BYTES = Gauge("aria_storage_asset_bytes", "Total size of the catalog's assets.")
DISTINCT_BYTES = Gauge(
    "aria_storage_distinct_chunk_bytes", "Uncompressed bytes of the distinct chunks assets reference."
)
DEDUP_RATIO = Gauge("aria_storage_dedup_ratio", "Asset bytes over distinct chunk bytes.")


@dataclass(frozen=True)
class Asset:
    """One asset version as the catalog describes it.

    Attributes:
        caid: The SHA-256 of the whole content, hex: the asset's content ID.
        chunks: Chunks in its index; ``unique_chunks`` of them distinct.
        digest: How its chunk IDs are computed (``sha512-256`` or ``sha256``).
        store: The store its chunks were written to.
    """

    id: str
    name: str
    version: str
    content_type: str
    size: int
    caid: str
    chunks: int
    unique_chunks: int
    digest: str
    store: str
    upload_started_at: datetime
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Asset:
        return cls(
            id=str(row["id"]),
            name=row["name"],
            version=row["version"],
            content_type=row["content_type"],
            size=int(row["size"]),
            caid=row["caid"],
            chunks=int(row["chunks"]),
            unique_chunks=int(row["unique_chunks"]),
            digest=row["digest"],
            store=row["store"],
            upload_started_at=row["upload_started_at"],
            created_at=row["created_at"],
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict: name, version, size, content_type, caid, and the rest."""
        return {
            "name": self.name,
            "version": self.version,
            "size": self.size,
            "content_type": self.content_type,
            "caid": self.caid,
            "chunks": self.chunks,
            "unique_chunks": self.unique_chunks,
            "digest": self.digest,
            "store": self.store,
            "id": self.id,
            "upload_started_at": self.upload_started_at.isoformat(),
            "created_at": self.created_at.isoformat(),
        }


@dataclass
class GCReport:
    """What a gc did: chunks listed in the store, marked by the catalog, deleted (or would be)."""

    listed: int = 0
    marked: int = 0
    deleted: int = 0
    expired_uploads: int = 0
    removed_temporaries: int = 0
    dry_run: bool = False
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_name(name: object) -> str:
    """``name`` if it is a valid asset name, else a ValueError saying what one looks like."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(
            f"asset name {name!r} is not valid: 1 to 200 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_version(version: object, *, allow_latest: bool = False) -> str:
    """``version`` if valid (``latest`` only where ``allow_latest``), else a ValueError."""
    if not isinstance(version, str) or not VERSION_PATTERN.match(version):
        raise ValueError(
            f"asset version {version!r} is not valid: 1 to 100 letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit"
        )
    if version == LATEST and not allow_latest:
        raise ValueError(f"{LATEST!r} names the newest version; it cannot be a version itself")
    return version


def check_content_type(content_type: object) -> str:
    valid = isinstance(content_type, str) and len(content_type) <= 255
    if not valid or not CONTENT_TYPE_PATTERN.match(content_type):  # type: ignore[arg-type]
        raise ValueError(f"content type {content_type!r} is not a media type such as 'model/gltf-binary'")
    return content_type


Bytes = bytes | bytearray | memoryview
Content = AsyncIterable[Bytes] | Bytes | str | os.PathLike[str]


class AssetCatalog:
    """The catalog on one database and one chunk store (the service's default store).

    Args:
        database: aria_data's Database (after ``migrate("aria_storage", ...)``).
        store: Where asset chunks go and come from.
        sizes, digest, concurrency: The chunker's settings for puts.
        node: This node's name (recorded with each upload).
        upload_timeout: Seconds without a heartbeat after which an upload is considered dead.
    """

    def __init__(
        self,
        database: Any,
        store: Store,
        *,
        sizes: ChunkSizes,
        digest: Digest,
        concurrency: int | None,
        node: str,
        upload_timeout: float,
    ) -> None:
        self.db = database
        self.store = store
        self.sizes = sizes
        self.digest = digest
        self.concurrency = concurrency
        self.node = node
        self.upload_timeout = upload_timeout
        self.instance = f"{node}/{secrets.token_hex(6)}"
        self._statistics: dict[str, float] = {
            "assets": 0,
            "bytes": 0,
            "stored_bytes": 0,
            "chunks": 0,
            "chunk_refs": 0,
            "dedup_ratio": 1.0,
            "uploads": 0,
        }

    # put --------------------------------------------------------------------------------------

    async def put_asset(
        self,
        name: str,
        content: Content,
        *,
        version: str | None = None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> Asset:
        """Store ``content`` as a new asset version, streaming it through the chunker.

        Args:
            name: The asset's name (letters, digits, ``.``, ``_``, ``-``).
            content: An async iterable of byte pieces (an upload body), a file path, or bytes.
            version: Its version; None gives the next integer after the name's numeric versions
                (``"1"`` for a new name).
            content_type: A media type, recorded and served back.

        Returns:
            The cataloged asset. It became visible in one commit, after all its chunks were stored.

        Raises:
            ValueError: for an invalid name, version or content type.
            AssetExists: if that version exists (checked before reading ``content`` and again at
                the commit).
            UploadExpired: if a gc forgot this upload (no heartbeat for ``storage.upload_timeout``).
            StorageError: if the content or the store fails; nothing is cataloged.
        """
        check_name(name)
        check_content_type(content_type)
        if version is not None:
            check_version(version)
        blocks = _blocks(content)
        if version is not None and await self.db.fetchval(sql.VERSION_EXISTS, name, version):
            raise AssetExists(name, version)
        upload = uuid.uuid4()
        await self.db.execute(sql.INSERT_UPLOAD, upload, name, version, self.node)
        log.info("asset upload started", asset=name, version=version, upload=str(upload))
        try:
            with single_errors():
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._heartbeat, upload)
                    index, stats = await make_from_stream(
                        blocks,
                        self.store,
                        sizes=self.sizes,
                        digest=self.digest,
                        concurrency=self.concurrency,
                        content_sha256=True,
                        announce=lambda ids: self._announce(upload, ids),
                    )
                    nursery.cancel_scope.cancel()
            asset = await self.db.transact(
                self._commit, upload, name, version, content_type, index, stats.sha256
            )
        except BaseException:
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                try:
                    await self.db.execute(sql.FORGET_UPLOAD, upload)
                except DataError as exc:  # the upload then expires; gc forgets it
                    log.warning("could not forget a failed upload", upload=str(upload), error=str(exc))
            raise
        finally:
            blocks.close()
        UPLOADED.inc(asset.size)
        log.info(
            "asset stored",
            asset=name,
            version=asset.version,
            size=asset.size,
            chunks=asset.chunks,
            new_chunks=stats.written,
        )
        await self._refresh_quietly()
        return asset

    async def _heartbeat(self, upload: uuid.UUID) -> None:
        while True:
            await trio.sleep(self.upload_timeout / 4)
            try:
                await self.db.execute(sql.HEARTBEAT, upload)
            except DataError as exc:  # the next beat may pass; the commit checks the upload anyway
                log.warning("upload heartbeat failed", upload=str(upload), error=str(exc))

    async def _announce(self, upload: uuid.UUID, chunk_ids: list[bytes]) -> None:
        """Record chunk IDs for this upload before they are written, waiting out a running sweep."""
        while True:
            if await self.db.transact(self._announce_once, upload, chunk_ids):
                return
            await trio.sleep(SWEEP_WAIT)

    async def _announce_once(self, tx: Any, upload: uuid.UUID, chunk_ids: list[bytes]) -> bool:
        if await tx.fetchval(sql.LIVE_SWEEPER) is not None:
            return False
        if await tx.fetchval(sql.UPLOAD_STARTED, upload) is None:
            raise UploadExpired(
                f"upload {upload} was forgotten after {self.upload_timeout:g} s without a heartbeat"
            )
        await tx.executemany(sql.ANNOUNCE_CHUNK, [(upload, chunk_id) for chunk_id in chunk_ids])
        return True

    async def _commit(
        self,
        tx: Any,
        upload: uuid.UUID,
        name: str,
        version: str | None,
        content_type: str,
        index: Index,
        caid: str,
    ) -> Asset:
        started = await tx.fetchval(sql.UPLOAD_STARTED, upload)
        if started is None:
            raise UploadExpired(
                f"upload of asset {name!r} was forgotten after {self.upload_timeout:g} s without a "
                "heartbeat; nothing was cataloged"
            )
        if version is None:
            numbers = [int(v) for (v,) in await tx.fetch(sql.VERSIONS_OF, name) if v.isdigit()]
            version = str(max(numbers, default=0) + 1)
        sizes: dict[bytes, int] = {}
        for chunk in index.chunks:
            sizes.setdefault(chunk.id, chunk.size)
        try:
            row = await tx.fetchrow(
                sql.INSERT_ASSET,
                name,
                version,
                content_type,
                index.length,
                caid,
                index.to_bytes(),
                len(index.chunks),
                len(sizes),
                index.digest.value,
                self.store.location,
                started,
            )
        except UniqueViolation as exc:
            raise AssetExists(name, version) from exc
        assert row is not None
        await tx.executemany(
            sql.INSERT_ASSET_CHUNK, [(row["id"], chunk_id, size) for chunk_id, size in sizes.items()]
        )
        await tx.execute(sql.FORGET_UPLOAD, upload)
        return Asset.from_row(row)

    # read -------------------------------------------------------------------------------------

    async def get_asset(self, name: str, version: str | None = None) -> Asset:
        """The asset's description (the newest version when ``version`` is None or ``latest``).

        Raises:
            AssetNotFound: if there is no such asset or version.
        """
        asset, _ = await self._find(name, version)
        return asset

    async def open_asset(self, name: str, version: str | None = None) -> AssetReader:
        """A streaming reader of the asset's content (the newest version by default).

        Raises:
            AssetNotFound: if there is no such asset or version.
        """
        asset, index = await self._find(name, version)
        return AssetReader(asset, index, self.store)

    async def _find(self, name: str, version: str | None) -> tuple[Asset, Index]:
        check_name(name)
        if version is None or version == LATEST:
            row = await self.db.fetchrow(sql.GET_LATEST, name)
        else:
            row = await self.db.fetchrow(sql.GET_ASSET, name, check_version(version))
        if row is None:
            raise AssetNotFound(name, version if version != LATEST else None)
        asset = Asset.from_row(row)
        index = Index.from_bytes(bytes(row["chunk_index"]), f"the index of asset {name!r} {asset.version!r}")
        return asset, index

    async def list_assets(self, name: str | None = None, *, limit: int = 1000) -> list[Asset]:
        """Every asset version (of ``name`` if given), by name then age, at most ``limit``."""
        if not 1 <= limit <= 100_000:
            raise ValueError(f"limit {limit} must be from 1 to 100000")
        if name is None:
            rows = await self.db.fetch(sql.LIST_ASSETS, limit)
        else:
            rows = await self.db.fetch(sql.LIST_VERSIONS, check_name(name), limit)
        return [Asset.from_row(row) for row in rows]

    # delete and gc ----------------------------------------------------------------------------

    async def delete_asset(self, name: str, version: str) -> Asset:
        """Remove an asset version from the catalog; its chunks go at the next gc unless shared.

        Raises:
            AssetNotFound: if there is no such version.
        """
        check_name(name)
        check_version(version)
        row = await self.db.fetchrow(sql.DELETE_ASSET, name, version)
        if row is None:
            raise AssetNotFound(name, version)
        log.info("asset deleted", asset=name, version=version)
        await self._refresh_quietly()
        return Asset.from_row(row)

    async def gc(self, *, dry_run: bool = False, keep: Sequence[Index] = ()) -> GCReport:
        """Mark and sweep: delete every chunk of the store that no asset (nor upload) references.

        The catalog takes the default store as its own: chunks written there by other means (an
        ``aria storage make`` into it) are deleted too unless their indexes are passed in ``keep``.

        Args:
            dry_run: Count what would be deleted, delete nothing.
            keep: Indexes whose chunks are kept as well.

        Raises:
            SweepInProgress: if another gc holds the sweep lease.
            StorageError: if the lease is lost mid-sweep (the database was unreachable for longer
                than the lease); what was deleted until then was garbage.
        """
        began = time.perf_counter()
        report = GCReport(dry_run=dry_run)
        lease = _SweepLease(f"{self.instance}/{secrets.token_hex(4)}", trio.current_time())
        await self.db.transact(self._take_sweep, lease.holder)
        try:
            with single_errors():
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._keep_sweep, lease)
                    await self._sweep(lease, report, keep)
                    nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                try:
                    await self.db.execute(sql.RELEASE_SWEEP, lease.holder)
                except DataError as exc:  # the lease then expires by itself
                    log.warning("could not release the sweep lease", error=str(exc))
        report.seconds = round(time.perf_counter() - began, 3)
        log.info("gc finished", **report.to_json())
        await self._refresh_quietly()
        return report

    async def _sweep(self, lease: _SweepLease, report: GCReport, keep: Sequence[Index]) -> None:
        listed = [chunk_id async for chunk_id in self.store.list_chunks()]
        report.listed = len(listed)
        expired, marks = await self.db.transact(self._mark, lease.holder, report.dry_run)
        report.expired_uploads = expired
        for index in keep:
            marks.update(chunk.id for chunk in index.chunks)
        report.marked = len(marks)
        doomed = [chunk_id for chunk_id in listed if chunk_id not in marks]
        if report.dry_run:
            report.deleted = len(doomed)
            return
        for chunk_id in doomed:
            lease.check()
            await self.store.remove_chunk(chunk_id)
            report.deleted += 1
            SWEPT.inc()
        if isinstance(self.store, LocalStore):
            report.removed_temporaries = await self.store.remove_temporaries(older_than=self.upload_timeout)

    async def _keep_sweep(self, lease: _SweepLease) -> None:
        while True:
            await trio.sleep(SWEEP_RENEW)
            sent = trio.current_time()
            status = await self.db.execute(sql.RENEW_SWEEP, lease.holder, SWEEP_LEASE)
            if status != "UPDATE 1":
                raise StorageError("the gc lost its sweep lease (it expired); stopped before deleting more")
            lease.renewed = sent

    async def _take_sweep(self, tx: Any, holder: str) -> None:
        current = await tx.fetchval(sql.LIVE_SWEEPER)
        if current is not None:
            raise SweepInProgress(current)
        await tx.execute(sql.TAKE_SWEEP, holder, SWEEP_LEASE)

    async def _mark(self, tx: Any, holder: str, dry_run: bool) -> tuple[int, set[bytes]]:
        # Reading the lease here is what orders this read after every announcement that did not
        # see the lease (see the module docstring).
        if await tx.fetchval(sql.LIVE_SWEEPER) != holder:
            raise StorageError("the gc lost its sweep lease before marking; nothing was deleted")
        expired = 0
        if not dry_run:
            expired = len(await tx.fetch(sql.EXPIRE_UPLOADS, self.upload_timeout))
        marks = {bytes(row["chunk_id"]) for row in await tx.fetch(sql.MARKED_CHUNKS)}
        return expired, marks

    # statistics -------------------------------------------------------------------------------

    def statistics(self) -> dict[str, float]:
        """Numbers for dashboards, as of the last refresh (after each put, delete and gc, and every
        ``storage.statistics_interval``): ``assets``, ``bytes`` (their total size),
        ``stored_bytes`` (uncompressed bytes of the distinct chunks they use), ``chunks`` (distinct
        chunks), ``chunk_refs`` (chunks in all their indexes), ``dedup_ratio`` (bytes over
        stored_bytes), ``uploads`` (in progress)."""
        return dict(self._statistics)

    async def refresh_statistics(self) -> dict[str, float]:
        """Recompute :meth:`statistics` from the catalog."""
        assets = await self.db.fetchrow(sql.ASSET_TOTALS)
        distinct = await self.db.fetchrow(sql.DISTINCT_CHUNK_TOTALS)
        uploads = await self.db.fetchval(sql.COUNT_UPLOADS)
        assert assets is not None and distinct is not None
        logical, stored = int(assets["bytes"]), int(distinct["bytes"])
        self._statistics = {
            "assets": int(assets["assets"]),
            "bytes": logical,
            "stored_bytes": stored,
            "chunks": int(distinct["chunks"]),
            "chunk_refs": int(assets["chunk_refs"]),
            "dedup_ratio": round(logical / stored, 4) if stored else 1.0,
            "uploads": int(uploads),
        }
        ASSETS.set(self._statistics["assets"])
        LOGICAL_BYTES.set(logical)
        DISTINCT_BYTES.set(stored)
        DEDUP_RATIO.set(self._statistics["dedup_ratio"])
        return self.statistics()

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh_statistics()
        except DataError as exc:  # the numbers stay as they were; the next refresh catches up
            log.warning("could not refresh storage statistics", error=str(exc))

    async def keep_statistics_fresh(self, interval: float) -> None:
        """Refresh the statistics every ``interval`` seconds (other nodes put and delete too)."""
        while True:
            await trio.sleep(interval)
            await self._refresh_quietly()

    async def dedup_statistics(self, name: str | None = None) -> dict[str, Any]:
        """The catalog's dedup figures, and per asset version: its distinct bytes and the bytes no
        other asset shares (what deleting it, then a gc, would free)."""
        rows = await self.db.fetch(sql.DEDUP_BY_ASSET, None if name is None else check_name(name))
        totals = await self.refresh_statistics()
        return {
            **totals,
            "assets_detail": [
                {
                    "name": row["name"],
                    "version": row["version"],
                    "size": int(row["size"]),
                    "chunks": int(row["chunks"]),
                    "unique_chunks": int(row["unique_chunks"]),
                    "distinct_bytes": int(row["distinct_bytes"]),
                    "exclusive_bytes": int(row["exclusive_bytes"]),
                }
                for row in rows
            ],
        }


@dataclass
class _SweepLease:
    """The sweep lease a gc holds, and when its last renewal was sent (by this process's clock)."""

    holder: str
    renewed: float

    def check(self) -> None:
        """Raise unless the lease is surely still valid (a margin under its length since renewal)."""
        if trio.current_time() - self.renewed > SWEEP_LEASE - 2 * SWEEP_RENEW:
            raise StorageError(
                "the gc could not renew its sweep lease (the database is unreachable); "
                "stopped before deleting more"
            )


class AssetReader:
    """A streaming reader of one asset version: sequential reads, seeks, and range reads.

    Chunks are fetched from the store in batches of about 4 MiB and verified like every read, so
    memory stays small whatever the asset's size.
    """

    def __init__(self, asset: Asset, index: Index, store: Store) -> None:
        self.asset = asset
        self.index = index
        self.store = store
        self.size = index.length
        self._position = 0
        self._ends = [chunk.end for chunk in index.chunks]
        self._last: tuple[bytes, bytes] | None = None  # the last chunk fetched, for small reads

    async def __aenter__(self) -> AssetReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._last = None

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the read position (``whence`` as in :meth:`io.IOBase.seek`); returns it."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"cannot seek to {base + offset}: before the start of the asset")
        self._position = base + offset
        return self._position

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the position (to the end if negative); b"" at the end."""
        length = self.size - self._position if size < 0 else size
        data = await self.read_range(self._position, length)
        self._position += len(data)
        return data

    async def read_range(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer at the end, b"" past it) as one bytes object."""
        if offset < 0 or length < 0:
            raise ValueError(f"offset {offset} and length {length} must not be negative")
        return b"".join([piece async for piece in self.stream(offset, length)])

    def stream(self, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """The bytes ``[offset, offset + length)`` (to the end if None) as pieces of chunks."""
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"offset {offset} and length {length} must not be negative")
        stop = self.size if length is None else min(self.size, offset + length)
        return _RangeStream(self, offset, stop)

    async def _fetch(self, chunk_ids: list[bytes]) -> list[bytes]:
        if len(chunk_ids) == 1 and self._last is not None and self._last[0] == chunk_ids[0]:
            return [self._last[1]]
        results = await self.store.get_chunks(chunk_ids, self.index.digest)
        chunks = []
        for result in results:
            if isinstance(result, StorageProblem):
                raise result.error
            chunks.append(result)
        self._last = (chunk_ids[-1], chunks[-1])
        return chunks


class _RangeStream(AsyncIterator[bytes]):
    """Pieces of ``[offset, stop)``, fetched a batch at a time (a class: no async generator to
    finalise if the consumer stops early)."""

    def __init__(self, reader: AssetReader, offset: int, stop: int) -> None:
        self._reader = reader
        self._offset = offset
        self._stop = stop
        self._next = bisect.bisect_right(reader._ends, offset)
        self._pieces: deque[bytes] = deque()

    async def __anext__(self) -> bytes:
        if not self._pieces:
            await self._fill()
        if not self._pieces:
            raise StopAsyncIteration
        piece = self._pieces.popleft()
        DOWNLOADED.inc(len(piece))
        return piece

    async def _fill(self) -> None:
        chunks = self._reader.index.chunks
        batch = []
        total = 0
        while self._next < len(chunks) and chunks[self._next].start < self._stop and total < READ_AHEAD:
            batch.append(chunks[self._next])
            total += chunks[self._next].size
            self._next += 1
        if not batch:
            return
        datas = await self._reader._fetch([chunk.id for chunk in batch])
        for chunk, data in zip(batch, datas, strict=True):
            piece = data[max(self._offset - chunk.start, 0) : min(self._stop, chunk.end) - chunk.start]
            if piece:
                self._pieces.append(piece)


class _blocks(AsyncIterator[bytes]):
    """Content as pieces of about :data:`BLOCK` bytes, from an async iterable, a file or bytes."""

    def __init__(self, content: Content) -> None:
        self._file: Path | None = None
        self._fd: int | None = None
        self._bytes: memoryview | None = None
        self._source: AsyncIterator[Any] | None = None
        if isinstance(content, str | os.PathLike):
            self._file = Path(content)
        elif isinstance(content, bytes | bytearray | memoryview):
            self._bytes = memoryview(content).cast("B")
        elif hasattr(content, "__aiter__"):
            self._source = aiter(content)
        else:
            raise TypeError(
                f"asset content must be an async iterable of bytes, a file path or bytes, not "
                f"{type(content).__name__}"
            )
        self._buffer = bytearray()
        self._done = False

    async def __anext__(self) -> bytes:
        if self._bytes is not None:
            block, self._bytes = bytes(self._bytes[:BLOCK]), self._bytes[BLOCK:]
            if not block:
                raise StopAsyncIteration
            return block
        if self._file is not None:
            return await self._next_from_file()
        assert self._source is not None
        while not self._done and len(self._buffer) < BLOCK:
            try:
                piece = await anext(self._source)
            except StopAsyncIteration:
                self._done = True
                break
            if not isinstance(piece, bytes | bytearray | memoryview):
                raise TypeError(f"asset content yielded {type(piece).__name__}, not bytes")
            self._buffer += piece
        if not self._buffer:
            raise StopAsyncIteration
        block = bytes(self._buffer)
        self._buffer.clear()
        return block

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def _next_from_file(self) -> bytes:
        path = self._file
        assert path is not None

        def read() -> bytes:
            try:
                if self._fd is None:
                    self._fd = os.open(path, os.O_RDONLY)
                block = os.read(self._fd, BLOCK)
            except OSError as exc:
                raise StorageError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
            return block

        block = await trio.to_thread.run_sync(read)
        if not block:
            raise StopAsyncIteration
        return block


__all__ = [
    "LATEST",
    "Asset",
    "AssetCatalog",
    "AssetReader",
    "GCReport",
    "check_content_type",
    "check_name",
    "check_version",
]
