"""The chunker cuts exactly where desync cuts: fixtures, test vectors and a reference implementation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from aria.apps.storage import chunker
from aria.apps.storage.chunker import (
    BUZHASH_TABLE,
    BoundaryWalker,
    ChunkSizes,
    buzhash,
    chunk_boundaries,
    discriminator,
    find_candidates,
)
from aria.apps.storage.format import BLOB_INDEX_FLAGS, Digest, Index, read_index
from tests.conftest import SHARED


@pytest.fixture(autouse=True, params=["c", "numpy"])
def scanner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with the C boundary scan and with the numpy fallback."""
    if request.param == "c":
        if chunker._c_find_candidates is None:
            pytest.skip("the C extension aria.apps.storage._buzhash is not built (no compiler at install)")
    else:
        monkeypatch.setattr(chunker, "_c_find_candidates", None)
    return str(request.param)


def reference_boundaries(data: bytes, sizes: ChunkSizes) -> list[int]:
    """The fact sheet's cutting rule, byte by byte with a true rolling hash (slow, obviously right)."""
    d = discriminator(sizes.avg)
    cuts = []
    start = 0
    while start < len(data):
        remaining = len(data) - start
        if remaining <= sizes.min:
            cuts.append(len(data))
            break
        limit = min(sizes.max, remaining)
        length = sizes.min + 1
        h = buzhash(data[start + length - 48 : start + length])
        while length < limit and h % d != d - 1:
            old, new = data[start + length - 48], data[start + length]
            h = ((h << 1 | h >> 31) & 0xFFFFFFFF) ^ _rotl16(BUZHASH_TABLE[old]) ^ BUZHASH_TABLE[new]
            length += 1
        start += length
        cuts.append(start)
    return cuts


def _rotl16(value: int) -> int:
    return ((value << 16) | (value >> 16)) & 0xFFFFFFFF


class TestDesyncFixtures:
    def test_blob1_reproduces_its_index_byte_for_byte(self, desync_data: Path) -> None:
        blob = (desync_data / "blob1").read_bytes()
        expected = (desync_data / "blob1.caibx").read_bytes()
        sizes = ChunkSizes(2048, 8192, 32768)
        ends = chunk_boundaries(blob, sizes)
        starts = [0, *ends[:-1]]
        ids = [Digest.SHA512_256.of(blob[s:e]) for s, e in zip(starts, ends, strict=True)]
        index = Index.from_ends(BLOB_INDEX_FLAGS, sizes.as_tuple(), ends, ids)
        assert index.to_bytes() == expected

    def test_chunker_vector_at_the_default_sizes(self, desync_data: Path) -> None:
        data = (desync_data / "chunker.input").read_bytes()
        expected = read_index(desync_data / "chunker.index")
        assert chunk_boundaries(data) == [chunk.end for chunk in expected.chunks]
        assert chunk_boundaries(data)[:3] == [81590, 128386, 164929]

    def test_rolling_hash_vectors(self, desync_data: Path) -> None:
        blob = (desync_data / "blob1").read_bytes()
        assert buzhash(blob[3457:3505]) == 1094169530
        assert 1094169530 % 6153 == 6152
        assert buzhash(blob[12950:12998]) == 3536252159
        assert buzhash(bytes(48)) == 2655559240
        assert buzhash(bytes(range(48))) == 1801969350
        # The vectorised scan finds the first two boundaries among its candidates.
        candidates = set(find_candidates(blob[:20000], 0, 6153))
        assert {3505, 12998} <= candidates

    def test_table_matches_the_fact_sheet(self) -> None:
        table_file = SHARED / "docs" / "buzhash-table.json"
        if not table_file.exists():
            pytest.skip(f"{table_file} is absent (the shared data folder beside the project)")
        assert list(BUZHASH_TABLE) == json.loads(table_file.read_text())
        assert BUZHASH_TABLE[0] == 0x458BE752 and BUZHASH_TABLE[255] == 0xD95DDF11


class TestRules:
    def test_discriminators(self) -> None:
        assert [discriminator(a) for a in (8192, 16384, 32768, 65536, 1048576)] == [
            6153,
            12318,
            24680,
            49535,
            886711,
        ]

    def test_zeros_empty_and_short_inputs(self) -> None:
        assert chunk_boundaries(bytes(1 << 20)) == [262144, 524288, 786432, 1048576]
        assert chunk_boundaries(b"") == []
        assert chunk_boundaries(b"x" * 16) == [16]

    @pytest.mark.parametrize("seed", range(6))
    def test_matches_the_reference_on_random_data(self, seed: int) -> None:
        """Random data and sizes (odd, even and power-of-two discriminators) against the slow rule."""
        rng = random.Random(seed)
        minimum = rng.choice([48, 64, 100, 256])
        average = rng.choice([minimum, minimum * 2, minimum * 4, 1000, 4096])
        average = max(average, minimum)
        sizes = ChunkSizes(minimum, average, average * rng.choice([2, 4, 8]))
        pattern = bytes(rng.randrange(256) for _ in range(2000))
        data = bytes(rng.randrange(256) for _ in range(30000)) + pattern * 5 + bytes(3000)
        assert chunk_boundaries(data, sizes) == reference_boundaries(data, sizes)

    def test_streaming_walker_agrees_with_one_shot(self) -> None:
        """Feeding candidates block by block decides the same cuts as seeing everything at once."""
        rng = random.Random(9)
        data = bytes(rng.randrange(256) for _ in range(200000))
        sizes = ChunkSizes(64, 512, 2048)
        walker = BoundaryWalker(sizes)
        cuts = []
        block = 7777
        for start in range(0, len(data), block):
            lookback = max(0, start - 47)
            found = find_candidates(data[lookback : start + block], lookback, sizes.discriminator)
            walker.add_candidates([position for position in found if position > start])
            end = min(start + block, len(data))
            cuts += walker.cuts(end, final=end == len(data))
        assert cuts == chunk_boundaries(data, sizes)

    @pytest.mark.parametrize("base", [0, 1, 17, 31, 32, 1000003])
    def test_candidates_do_not_depend_on_where_a_buffer_starts(self, base: int) -> None:
        """Any absolute offset and any length (beyond one internal sub-block) gives the same hits."""
        data = random.Random(base).randbytes(100_000)
        d = discriminator(1000)
        expected = []
        h = buzhash(data[:48])
        for p in range(48, len(data) + 1):
            if h % d == d - 1:
                expected.append(p)
            if p < len(data):
                old, new = data[p - 48], data[p]
                h = ((h << 1 | h >> 31) & 0xFFFFFFFF) ^ _rotl16(BUZHASH_TABLE[old]) ^ BUZHASH_TABLE[new]
        assert [position - base for position in find_candidates(data, base, d)] == expected

    def test_bad_sizes_are_refused(self) -> None:
        with pytest.raises(ValueError, match="below the rolling-hash window of 48"):
            ChunkSizes(16, 64, 256)
        with pytest.raises(ValueError, match="min <= avg <= max; got 100:50:200"):
            ChunkSizes(100, 50, 200)
        with pytest.raises(ValueError, match="min and max are both 4096"):
            ChunkSizes(4096, 4096, 4096)
        with pytest.raises(ValueError, match="must be min:avg:max in KiB"):
            ChunkSizes.parse("16:64")
        assert ChunkSizes.parse("2:8:32") == ChunkSizes(2048, 8192, 32768)
        with pytest.raises(ValueError, match="a window is 48 bytes"):
            buzhash(b"short")


class TestScanners:
    """The C scan and the numpy scan find the same candidates, so they cut in the same places."""

    @pytest.mark.parametrize("d", [2, 3, 6153, 49535, 65536, 886711, 0x80000000, 0xFFFFFFFF])
    def test_same_candidates_for_any_discriminator_length_and_offset(self, scanner: str, d: int) -> None:
        from aria.apps.storage._buzhash import find_candidates as in_c

        from aria.apps.storage.chunker_numpy import find_candidates as in_numpy

        rng = random.Random(d)
        data = rng.randbytes(300_000) + bytes(5000) + b"ab" * 3000
        view = memoryview(data)
        for start, stop, base in [
            (0, len(data), 0),
            (3, 70_001, 5),
            (0, 47, 0),
            (1, 49, 7),
            (11, len(data), 2**40),
        ]:
            c = memoryview(in_c(view[start:stop], base, d)).cast("q").tolist()
            assert c == in_numpy(view[start:stop], base, d).tolist(), (start, stop, base)

    async def test_make_gives_the_same_index_with_either_scan(self, scanner: str, tmp_path: Path) -> None:
        from aria.apps.storage.operations import make

        data = random.Random(4).randbytes(3 << 20)
        data += data[: 1 << 20]  # repeated content: shared chunks
        path = tmp_path / "blob"
        path.write_bytes(data)
        index, _ = await make(path, None)
        reference = chunk_boundaries(data)
        assert [chunk.end for chunk in index.chunks] == reference
        assert len(reference) > 20
