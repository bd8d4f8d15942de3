"""The index format read and written byte for byte, chunk IDs and chunk files, bad indexes."""

from __future__ import annotations

import hashlib
import random
import struct
from pathlib import Path

import pytest

from aria.apps.storage import format as storage_format
from aria.apps.storage.errors import InvalidIndex, StorageError
from aria.apps.storage.format import (
    BLOB_INDEX_FLAGS,
    Digest,
    Index,
    IndexChunk,
    chunk_relative_path,
    compress_chunk,
    decompress_chunk,
    parse_chunk_id,
    read_index,
)

BLOB1_SHA256 = "eb2fb317e36a1296ee6018371ca621017634f4a4790e4990846126b251147fca"
FIRST_ID = "686d5bf0fe02c431327829269ee90938d56921f01d0583f4fe94f1cd98c82cd8"
NULL_ID = "620797b6a249553166433873ead3ab6aadd24e1750b3e71edd642a91c006d1d0"


class TestBlob1Index:
    def test_header_table_and_tail_facts(self, desync_data: Path) -> None:
        """The README's facts about blob1.caibx, read through our parser."""
        index = read_index(desync_data / "blob1.caibx")
        assert index.flags == 0xA000000000000000 == BLOB_INDEX_FLAGS
        assert index.digest is Digest.SHA512_256
        assert (index.chunk_size_min, index.chunk_size_avg, index.chunk_size_max) == (2048, 8192, 32768)
        assert len(index.chunks) == 161
        assert len(index.unique_ids()) == 131
        assert index.length == 2097152
        assert index.dedup_size() == 1114112
        assert [(c.start, c.size, c.id.hex()) for c in index.chunks[:1]] == [(0, 3505, FIRST_ID)]
        assert [c.end for c in index.chunks[:3]] == [3505, 12998, 19082]
        last = index.chunks[-1]
        assert (last.start, last.size) == (2093043, 4109)
        assert sum(1 for c in index.chunks if c.id.hex() == NULL_ID) == 31

    def test_round_trip_is_byte_identical(self, desync_data: Path) -> None:
        for name in ("blob1.caibx", "blob2.caibx", "tree.caidx", "chunker.index"):
            data = (desync_data / name).read_bytes()
            assert Index.from_bytes(data, name).to_bytes() == data, name

    def test_chunk_ids_hash_the_uncompressed_bytes(self, desync_data: Path) -> None:
        """Every chunk of blob1 decompresses to its size and hashes to its name; SHA-256 does not."""
        index = read_index(desync_data / "blob1.caibx")
        blob = (desync_data / "blob1").read_bytes()
        assert hashlib.sha256(blob).hexdigest() == BLOB1_SHA256
        for chunk in index.chunks:
            assert Digest.SHA512_256.of(blob[chunk.start : chunk.end]) == chunk.id
        first = blob[:3505]
        assert Digest.SHA256.of(first).hex() == (
            "ea2bcfcec263e26a042e32bde98ab6e6e9eb041a9aa42ec03aae7810abfaf893"
        )
        stored = (desync_data / "blob1.store" / chunk_relative_path(bytes.fromhex(FIRST_ID))).read_bytes()
        assert stored[:4] == b"\x28\xb5\x2f\xfd"
        assert decompress_chunk(stored) == first


@pytest.fixture(params=["avx512", "hashlib"])
def hasher(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test using it runs with the eight-lane extension and with the hashlib fallback."""
    if request.param == "avx512":
        if storage_format._sha512_256_many is None:
            pytest.skip("the _sha512 extension is not built, or this CPU lacks AVX-512F/BW")
    else:
        monkeypatch.setattr(storage_format, "_sha512_256_many", None)
    return request.param


class TestManyAtOnce:
    def test_every_padding_case_and_buffer_kind_matches_hashlib(self, hasher: str) -> None:
        """Lengths 0..300 cross every block and padding boundary (111/112 bytes left need one or two
        padding blocks); large random chunks, memoryviews, bytearrays and slices mixed in one batch."""
        rng = random.Random(11)
        chunks: list[bytes | bytearray | memoryview] = [rng.randbytes(n) for n in range(301)]
        chunks += [rng.randbytes(rng.randint(16 << 10, 256 << 10)) for _ in range(40)]
        chunks += [memoryview(rng.randbytes(5000))[3:4099], bytearray(rng.randbytes(129)), b""]
        rng.shuffle(chunks)
        expected = [hashlib.new("sha512_256", chunk).digest() for chunk in chunks]
        assert Digest.SHA512_256.of_many(chunks) == expected
        for size in (1, 3, 4, 5, 8, 9):  # around the lane count and the one-at-a-time threshold
            assert Digest.SHA512_256.of_many(chunks[:size]) == expected[:size]
        assert Digest.SHA512_256.of_many([]) == []
        assert Digest.SHA256.of_many(chunks[:20]) == [hashlib.sha256(c).digest() for c in chunks[:20]]

    def test_blob1_chunks_hash_to_their_ids(self, desync_data: Path, hasher: str) -> None:
        index = read_index(desync_data / "blob1.caibx")
        blob = memoryview((desync_data / "blob1").read_bytes())
        assert Digest.SHA512_256.of_many([blob[c.start : c.end] for c in index.chunks]) == [
            c.id for c in index.chunks
        ]

    def test_the_extension_refuses_what_is_not_a_buffer(self) -> None:
        sha512_256_many = storage_format._sha512_256_many
        if sha512_256_many is None:
            pytest.skip("the _sha512 extension is not built, or this CPU lacks AVX-512F/BW")

        with pytest.raises(TypeError):
            sha512_256_many([b"a", b"b", "text", b"d"])
        with pytest.raises(TypeError, match="sequence of buffers"):
            sha512_256_many(5)


class TestWriting:
    def test_empty_blob_index_is_104_bytes(self) -> None:
        index = Index(BLOB_INDEX_FLAGS, 16384, 65536, 262144, [])
        data = index.to_bytes()
        assert len(data) == 104
        assert Index.from_bytes(data).chunks == []

    def test_sha256_mode_is_recorded_in_the_flags(self) -> None:
        chunk = b"x" * 100
        index = Index(0x8000000000000000, 64, 256, 1024, [IndexChunk(0, 100, Digest.SHA256.of(chunk))])
        parsed = Index.from_bytes(index.to_bytes())
        assert parsed.digest is Digest.SHA256
        assert parsed.chunks[0].id == hashlib.sha256(chunk).digest()

    def test_compressed_chunk_frames_record_their_size(self) -> None:
        data = bytes(range(256)) * 100
        frame = compress_chunk(data)
        # The frame header's content-size flag (desync writes it; readers rely on it).
        assert frame[:4] == b"\x28\xb5\x2f\xfd" and frame[4] & 0xC0
        assert decompress_chunk(frame) == data

    def test_frames_without_a_content_size_are_read_too(self) -> None:
        import zstandard

        data = b"abc" * 5000
        frame = zstandard.ZstdCompressor(write_content_size=False).compress(data)
        assert decompress_chunk(frame) == data

    def test_chunk_paths_and_ids(self) -> None:
        chunk_id = bytes.fromhex(FIRST_ID)
        assert chunk_relative_path(chunk_id) == f"686d/{FIRST_ID}.cacnk"
        assert chunk_relative_path(chunk_id, compressed=False) == f"686d/{FIRST_ID}"
        assert parse_chunk_id(FIRST_ID) == chunk_id
        with pytest.raises(ValueError, match="64 hex characters"):
            parse_chunk_id("abc")
        with pytest.raises(ValueError, match="not hexadecimal"):
            parse_chunk_id("z" * 64)
        assert Digest.parse("SHA512_256") is Digest.SHA512_256
        with pytest.raises(ValueError, match="unknown digest 'md5'"):
            Digest.parse("md5")


class TestBadIndexes:
    """Each fault names the file and what is wrong; nothing is guessed."""

    @pytest.fixture
    def good(self, desync_data: Path) -> bytes:
        return (desync_data / "blob1.caibx").read_bytes()

    def test_truncated_anywhere(self, good: bytes) -> None:
        with pytest.raises(InvalidIndex, match=r"^x.caibx is not a valid casync index: truncated: 10 bytes"):
            Index.from_bytes(good[:10], "x.caibx")
        with pytest.raises(InvalidIndex, match="truncated in the chunk table after 100 chunks"):
            Index.from_bytes(good[: 64 + 40 * 100 + 20], "x.caibx")
        with pytest.raises(InvalidIndex, match="truncated in the table tail after 161 chunks"):
            Index.from_bytes(good[:-8], "x.caibx")

    def test_wrong_magic_and_foreign_files(self, good: bytes) -> None:
        with pytest.raises(InvalidIndex, match="wrong magic"):
            Index.from_bytes(b"\x00" * 8 + good[8:], "x.caibx")
        with pytest.raises(InvalidIndex, match="wrong magic"):
            Index.from_bytes(b"PK\x03\x04" + bytes(200), "archive.zip")
        with pytest.raises(InvalidIndex, match="wrong magic"):
            Index.from_bytes(b"hello world, not an index", "notes.txt")
        bad_table = bytearray(good)
        bad_table[56:64] = struct.pack("<Q", 1234)
        with pytest.raises(InvalidIndex, match="wrong table type"):
            Index.from_bytes(bytes(bad_table))

    def test_inconsistent_tables(self, good: bytes) -> None:
        swapped = bytearray(good)
        # Make chunk 1 end before chunk 0.
        swapped[64 + 40 : 72 + 40] = struct.pack("<Q", 100)
        with pytest.raises(InvalidIndex, match="chunk 1 ends at 100, not after the previous end 3505"):
            Index.from_bytes(bytes(swapped))
        too_big = bytearray(good)
        too_big[24:48] = struct.pack("<3Q", 64, 128, 1024)
        with pytest.raises(InvalidIndex, match="chunk 0 is 3505 bytes, above the index's max 1024"):
            Index.from_bytes(bytes(too_big))
        with pytest.raises(InvalidIndex, match="8 unexpected bytes after the table"):
            Index.from_bytes(good + bytes(8))
        bad_tail = bytearray(good)
        bad_tail[-8:] = bytes(8)
        with pytest.raises(InvalidIndex, match="bad table tail marker"):
            Index.from_bytes(bytes(bad_tail))
        bad_size = bytearray(good)
        bad_size[-16:-8] = struct.pack("<Q", 99)
        with pytest.raises(InvalidIndex, match="table size 99; expected 48 and 6496"):
            Index.from_bytes(bytes(bad_size))

    def test_unreadable_file_names_the_path(self, tmp_path: Path) -> None:
        with pytest.raises(StorageError, match=r"cannot read index '.*nope.caibx': No such file"):
            read_index(tmp_path / "nope.caibx")
        (tmp_path / "dir.caibx").mkdir()
        with pytest.raises(StorageError, match="cannot read index"):
            read_index(tmp_path / "dir.caibx")
