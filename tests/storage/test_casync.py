"""Interop with Debian's ``casync`` (a real peer): each side extracts what the other made.

These tests skip with a reason when ``casync`` is not installed (``apt-get install casync``).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import trio

from aria.apps.storage import operations
from aria.apps.storage.format import read_index
from aria.apps.storage.stores import LocalStore

pytestmark = pytest.mark.skipif(
    shutil.which("casync") is None, reason="casync is not installed (Debian package casync)"
)


def sample(path: Path) -> bytes:
    """A 3 MiB file with random stretches, repeats and a zero run: every chunker path."""
    rng = random.Random(11)
    piece = rng.randbytes(100_000)
    data = rng.randbytes(1_200_000) + piece * 5 + bytes(600_000) + rng.randbytes(300_001)
    path.write_bytes(data)
    return data


async def casync(*args: str) -> None:
    result = await trio.run_process(["casync", *args], capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr.decode()


class TestCasync:
    async def test_casync_extracts_what_aria_made(self, tmp_path: Path) -> None:
        data = sample(tmp_path / "data")
        index, _ = await operations.make(tmp_path / "data", LocalStore(tmp_path / "store"))
        (tmp_path / "data.caibx").write_bytes(index.to_bytes())
        await casync(
            "extract", f"--store={tmp_path / 'store'}", str(tmp_path / "data.caibx"), str(tmp_path / "out")
        )
        assert (tmp_path / "out").read_bytes() == data

    async def test_aria_extracts_what_casync_made(self, tmp_path: Path) -> None:
        data = sample(tmp_path / "data")
        await casync(
            "make", f"--store={tmp_path / 'store'}", str(tmp_path / "data.caibx"), str(tmp_path / "data")
        )
        index = read_index(tmp_path / "data.caibx")
        store = LocalStore(tmp_path / "store")
        await operations.extract(index, tmp_path / "out", store)
        assert (tmp_path / "out").read_bytes() == data
        assert (await operations.verify(store)).invalid == []

    async def test_both_chunkers_cut_at_the_same_places(self, tmp_path: Path) -> None:
        """casync's index of the same file has the same table; only the feature flags differ."""
        sample(tmp_path / "data")
        await casync("make", str(tmp_path / "casync.caibx"), str(tmp_path / "data"))
        ours, _ = await operations.make(tmp_path / "data", None)
        theirs = read_index(tmp_path / "casync.caibx")
        assert [(c.start, c.size, c.id) for c in ours.chunks] == [
            (c.start, c.size, c.id) for c in theirs.chunks
        ]
        assert ours.to_bytes()[24:] == (tmp_path / "casync.caibx").read_bytes()[24:]

    async def test_casync_reads_an_aria_chunk_server(self, tmp_path: Path) -> None:
        """casync's HTTP store speaks the same protocol as desync's: it extracts through aria's server."""
        from aria.apps.storage.chunk_server import serve_chunks

        data = sample(tmp_path / "data")
        store = LocalStore(tmp_path / "store")
        index, _ = await operations.make(tmp_path / "data", store)
        (tmp_path / "data.caibx").write_bytes(index.to_bytes())
        async with trio.open_nursery() as nursery:
            address = await nursery.start(serve_chunks, store, "127.0.0.1:0")
            await casync(
                "extract", f"--store=http://{address}/", str(tmp_path / "data.caibx"), str(tmp_path / "out")
            )
            nursery.cancel_scope.cancel()
        assert (tmp_path / "out").read_bytes() == data


class TestArchives:
    CASYNC_FEATURES = ("--with=unix", "--without=16bit-uids", "--with=32bit-uids", "--without=sec-time")

    async def test_our_catar_and_caidx_are_casyncs_byte_for_byte(self, tmp_path: Path) -> None:
        from tests.storage.test_catar import build_tree

        tree = build_tree(tmp_path / "tree")
        features = [*self.CASYNC_FEATURES, "--with=nsec-time"]
        await casync("make", *features, str(tmp_path / "casync.catar"), str(tree))
        await operations.tar(tree, tmp_path / "aria.catar")
        assert (tmp_path / "aria.catar").read_bytes() == (tmp_path / "casync.catar").read_bytes()
        await casync(
            "make", *features, f"--store={tmp_path / 'cstore'}", str(tmp_path / "casync.caidx"), str(tree)
        )
        index = await operations.tar(tree, None, LocalStore(tmp_path / "store"))
        assert index is not None
        assert index.to_bytes() == (tmp_path / "casync.caidx").read_bytes()

    async def test_casync_unpacks_what_aria_archived(self, tmp_path: Path) -> None:
        from tests.storage.test_catar import build_tree, tree_listing

        tree = build_tree(tmp_path / "tree")
        index = await operations.tar(tree, None, LocalStore(tmp_path / "store"))
        assert index is not None
        (tmp_path / "tree.caidx").write_bytes(index.to_bytes())
        await casync(
            "extract", f"--store={tmp_path / 'store'}", str(tmp_path / "tree.caidx"), str(tmp_path / "out")
        )
        assert tree_listing(tmp_path / "out") == tree_listing(tree)
