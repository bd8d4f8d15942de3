"""The casync/desync on-disk formats: chunk IDs, chunk files and ``.caibx``/``.caidx`` indexes.

Byte-compatible with desync v0.9.6 and casync. An index is a 48-byte header (size, type, feature
flags, min/avg/max chunk size), a table header, one 40-byte item per chunk (the end offset of the
chunk in the blob, then its 32-byte ID) and a 40-byte tail; every integer is an unsigned 64-bit
little-endian value. A chunk's ID is the SHA-512/256 (or, by index flag, SHA-256) of its
uncompressed bytes; a chunk file is ``<id[:4]>/<id>.cacnk`` holding one zstd frame, or the bare ID
holding the raw bytes in an uncompressed store.
"""

from __future__ import annotations

import bisect
import enum
import hashlib
import struct
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from aria.apps.storage.errors import InvalidIndex, StorageError

try:
    from aria.apps.storage._sha512 import sha512_256_many as _sha512_256_many
except ImportError:  # not built (no compiler at install time), or a CPU without AVX-512: hashlib
    _sha512_256_many = None

CHUNK_ID_SIZE = 32
CHUNK_EXTENSION = ".cacnk"

INDEX_HEADER_SIZE = 48
INDEX_TYPE = 0x96824D9C7B129FF9
TABLE_TYPE = 0xE75B9E112F17417D
TABLE_SIZE_UNKNOWN = 0xFFFFFFFFFFFFFFFF
TABLE_TAIL_MARKER = 0x4B4F050E5549ECD1
TABLE_HEADER_SIZE = 16
ITEM_SIZE = 40
TAIL_SIZE = 40

FLAG_SHA512_256 = 0x2000000000000000
FLAG_EXCLUDE_NODUMP = 0x8000000000000000
#: What desync ``make`` writes for a blob index in SHA-512/256 mode.
BLOB_INDEX_FLAGS = FLAG_SHA512_256 | FLAG_EXCLUDE_NODUMP

_HEADER = struct.Struct("<6Q")
_TABLE_HEADER = struct.Struct("<2Q")
_ITEM = struct.Struct("<Q32s")
_TAIL = struct.Struct("<5Q")
_U64 = struct.Struct("<Q")

#: The largest chunk a reader accepts when a zstd frame does not state its size (desync's own bound
#: is the index's max; stores see chunks of any index, so they use a generous fixed bound).
MAX_CHUNK_SIZE = 64 << 20

#: From this many chunks on, :meth:`Digest.of_many` hashes them side by side (measured on 16-256 KiB
#: chunks: 4 at once already beat hashlib one at a time, 8 and more run 3 to 4 times its speed).
MANY_AT_ONCE = 4
#: Whether SHA-512/256 runs eight chunks at once (the ``_sha512`` extension) or hashlib.
SHA512_256_MANY = "avx512" if _sha512_256_many is not None else "hashlib"


class Digest(enum.Enum):
    """The hash that turns a chunk's uncompressed bytes into its ID."""

    SHA512_256 = "sha512-256"
    SHA256 = "sha256"

    def of(self, data: bytes | memoryview) -> bytes:
        """The 32-byte ID of ``data``."""
        if self is Digest.SHA512_256:
            return hashlib.new("sha512_256", data).digest()
        return hashlib.sha256(data).digest()

    def of_many(self, chunks: Sequence[bytes | memoryview]) -> list[bytes]:
        """The IDs of many chunks, in order: what :meth:`of` gives for each.

        SHA-512/256 hashes eight chunks at once where the ``_sha512`` extension runs (AVX-512),
        about three times OpenSSL's speed on one core, with the GIL released for the whole batch;
        below :data:`MANY_AT_ONCE` chunks, or without the extension, hashlib hashes one at a time.
        """
        if self is Digest.SHA512_256 and _sha512_256_many is not None and len(chunks) >= MANY_AT_ONCE:
            return _sha512_256_many(chunks)
        return [self.of(chunk) for chunk in chunks]

    @property
    def index_flag(self) -> int:
        """The feature flag an index carries for this digest (SHA-256 has none)."""
        return FLAG_SHA512_256 if self is Digest.SHA512_256 else 0

    @classmethod
    def from_flags(cls, flags: int) -> Digest:
        return cls.SHA512_256 if flags & FLAG_SHA512_256 else cls.SHA256

    @classmethod
    def parse(cls, name: str) -> Digest:
        """``sha512-256`` or ``sha256`` (case-insensitive; ``sha512_256`` also accepted).

        Raises:
            ValueError: for any other name.
        """
        normal = name.strip().lower().replace("_", "-")
        for digest in cls:
            if digest.value == normal:
                return digest
        raise ValueError(f"unknown digest {name!r}; use sha512-256 or sha256")


def parse_chunk_id(text: str) -> bytes:
    """The 32 raw bytes of a 64-character hex chunk ID.

    Raises:
        ValueError: if ``text`` is not 64 hex characters.
    """
    if len(text) != 2 * CHUNK_ID_SIZE:
        raise ValueError(f"chunk ID {text!r} must be {2 * CHUNK_ID_SIZE} hex characters")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"chunk ID {text!r} is not hexadecimal") from None


def chunk_relative_path(chunk_id: bytes, *, compressed: bool = True) -> str:
    """``<id[:4]>/<id>.cacnk`` (or without the extension for an uncompressed store)."""
    hex_id = chunk_id.hex()
    return f"{hex_id[:4]}/{hex_id}{CHUNK_EXTENSION if compressed else ''}"


_codecs = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    # zstandard contexts are not thread-safe: one per thread.
    compressor = getattr(_codecs, "compressor", None)
    if compressor is None:
        compressor = _codecs.compressor = zstandard.ZstdCompressor(level=3, write_content_size=True)
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor = getattr(_codecs, "decompressor", None)
    if decompressor is None:
        decompressor = _codecs.decompressor = zstandard.ZstdDecompressor()
    return decompressor


def compress_chunk(data: bytes | memoryview) -> bytes:
    """One zstd frame with the content size in its header, as desync writes (level 3)."""
    return _compressor().compress(data)


def decompress_chunk(data: bytes) -> bytes:
    """The content of one zstd chunk frame, whether or not it records its size.

    Raises:
        zstandard.ZstdError: if ``data`` is not a valid zstd frame.
    """
    try:
        return _decompressor().decompress(data, max_output_size=MAX_CHUNK_SIZE)
    except zstandard.ZstdError:
        # Frames without a content size (other encoders) need the streaming decoder.
        decoder = _decompressor().decompressobj()
        out = decoder.decompress(data)
        if not decoder.eof:
            raise zstandard.ZstdError("truncated zstd frame") from None
        return out


@dataclass(frozen=True, slots=True)
class IndexChunk:
    """One chunk of an indexed blob: where it starts, how long it is, its ID."""

    start: int
    size: int
    id: bytes

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass
class Index:
    """A parsed ``.caibx``/``.caidx``: feature flags, the chunker's sizes and the chunk table.

    ``to_bytes`` writes it back exactly as desync does, so ``Index.from_bytes(b).to_bytes() == b``.
    """

    flags: int
    chunk_size_min: int
    chunk_size_avg: int
    chunk_size_max: int
    chunks: list[IndexChunk] = field(default_factory=list)

    @property
    def digest(self) -> Digest:
        return Digest.from_flags(self.flags)

    @property
    def length(self) -> int:
        """The blob's size in bytes."""
        return self.chunks[-1].end if self.chunks else 0

    def unique_ids(self) -> list[bytes]:
        """Each distinct chunk ID once, in order of first appearance."""
        return list(dict.fromkeys(chunk.id for chunk in self.chunks))

    def dedup_size(self) -> int:
        """The total size of the distinct chunks."""
        sizes: dict[bytes, int] = {}
        for chunk in self.chunks:
            sizes.setdefault(chunk.id, chunk.size)
        return sum(sizes.values())

    def chunks_in_range(self, offset: int, length: int) -> Iterator[IndexChunk]:
        """The chunks that overlap ``[offset, offset + length)``, in order."""
        ends = [chunk.end for chunk in self.chunks]
        first = bisect.bisect_right(ends, offset)
        stop = offset + length
        for chunk in self.chunks[first:]:
            if chunk.start >= stop:
                break
            yield chunk

    def to_bytes(self) -> bytes:
        """The index file's bytes (104 + 40 per chunk)."""
        count = len(self.chunks)
        parts = [
            _HEADER.pack(
                INDEX_HEADER_SIZE,
                INDEX_TYPE,
                self.flags,
                self.chunk_size_min,
                self.chunk_size_avg,
                self.chunk_size_max,
            ),
            _TABLE_HEADER.pack(TABLE_SIZE_UNKNOWN, TABLE_TYPE),
        ]
        parts.extend(_ITEM.pack(chunk.end, chunk.id) for chunk in self.chunks)
        table_size = TABLE_HEADER_SIZE + ITEM_SIZE * count + TAIL_SIZE
        parts.append(_TAIL.pack(0, 0, INDEX_HEADER_SIZE, table_size, TABLE_TAIL_MARKER))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "index") -> Index:
        """Parse an index, checking every field desync checks (and the tail, which it does not).

        Args:
            data: The whole file.
            source: How to name the file in errors (usually its path).

        Raises:
            InvalidIndex: naming ``source`` and the fault: too short or truncated, wrong magic,
                zero or non-increasing offsets, a chunk above the header's max, a bad tail, or bytes
                after the tail.
        """
        if len(data) < INDEX_HEADER_SIZE + TABLE_HEADER_SIZE + TAIL_SIZE:
            if len(data) >= 16 and not _has_index_magic(data):
                raise InvalidIndex(source, "wrong magic: not a casync index header")
            raise InvalidIndex(source, f"truncated: {len(data)} bytes, an index has at least 104")
        size, kind, flags, minimum, average, maximum = _HEADER.unpack_from(data, 0)
        if size != INDEX_HEADER_SIZE or kind != INDEX_TYPE:
            raise InvalidIndex(
                source,
                f"wrong magic: header size {size} type {kind:#018x} "
                f"(expected {INDEX_HEADER_SIZE} and {INDEX_TYPE:#018x})",
            )
        if not 0 < minimum <= average <= maximum:
            raise InvalidIndex(source, f"impossible chunk sizes min {minimum} avg {average} max {maximum}")
        table_size, table_kind = _TABLE_HEADER.unpack_from(data, INDEX_HEADER_SIZE)
        if table_kind != TABLE_TYPE:
            raise InvalidIndex(source, f"wrong table type {table_kind:#018x} (expected {TABLE_TYPE:#018x})")
        chunks: list[IndexChunk] = []
        position = INDEX_HEADER_SIZE + TABLE_HEADER_SIZE
        previous_end = 0
        view = memoryview(data)
        while True:
            if position + _U64.size > len(data):
                raise InvalidIndex(source, f"truncated in the chunk table after {len(chunks)} chunks")
            (end,) = _U64.unpack_from(data, position)
            if end == 0:
                break
            if position + ITEM_SIZE > len(data):
                raise InvalidIndex(source, f"truncated in the chunk table after {len(chunks)} chunks")
            if end <= previous_end:
                raise InvalidIndex(
                    source, f"chunk {len(chunks)} ends at {end}, not after the previous end {previous_end}"
                )
            if end - previous_end > maximum:
                raise InvalidIndex(
                    source,
                    f"chunk {len(chunks)} is {end - previous_end} bytes, above the index's max {maximum}",
                )
            chunk_id = bytes(view[position + 8 : position + ITEM_SIZE])
            chunks.append(IndexChunk(previous_end, end - previous_end, chunk_id))
            previous_end = end
            position += ITEM_SIZE
        if position + TAIL_SIZE > len(data):
            raise InvalidIndex(source, f"truncated in the table tail after {len(chunks)} chunks")
        _zero, second_zero, index_offset, tail_table_size, marker = _TAIL.unpack_from(data, position)
        expected_table = TABLE_HEADER_SIZE + ITEM_SIZE * len(chunks) + TAIL_SIZE
        if marker != TABLE_TAIL_MARKER or second_zero != 0:
            raise InvalidIndex(source, f"bad table tail marker {marker:#018x}")
        if index_offset != INDEX_HEADER_SIZE or tail_table_size != expected_table:
            raise InvalidIndex(
                source,
                f"table tail says index offset {index_offset} and table size {tail_table_size}; "
                f"expected {INDEX_HEADER_SIZE} and {expected_table} for {len(chunks)} chunks",
            )
        if table_size not in (TABLE_SIZE_UNKNOWN, expected_table):
            raise InvalidIndex(source, f"table header size {table_size} does not match {expected_table}")
        if position + TAIL_SIZE != len(data):
            raise InvalidIndex(source, f"{len(data) - position - TAIL_SIZE} unexpected bytes after the table")
        return cls(flags, minimum, average, maximum, chunks)

    @classmethod
    def from_ends(
        cls, flags: int, sizes: tuple[int, int, int], ends: Sequence[int], ids: Sequence[bytes]
    ) -> Index:
        """An index from chunk end offsets and IDs (as a chunker produces them)."""
        chunks = []
        start = 0
        for end, chunk_id in zip(ends, ids, strict=True):
            chunks.append(IndexChunk(start, end - start, chunk_id))
            start = end
        return cls(flags, sizes[0], sizes[1], sizes[2], chunks)


def _has_index_magic(data: bytes) -> bool:
    size, kind = _TABLE_HEADER.unpack_from(data, 0)
    return size == INDEX_HEADER_SIZE and kind == INDEX_TYPE


def read_index(path: str | Path) -> Index:
    """Read and parse an index file.

    Raises:
        InvalidIndex: if the file is not a valid index (see :meth:`Index.from_bytes`).
        StorageError: if the file cannot be read (names the path and the OS error).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise StorageError(f"cannot read index {str(path)!r}: {exc.strerror or exc}") from exc
    return Index.from_bytes(data, str(path))
