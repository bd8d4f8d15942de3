"""catar archives and caidx indexes of them: reading desync's tree fixture and unpacking it."""

from __future__ import annotations

import hashlib
import io
import os
import struct
from pathlib import Path

import pytest

from aria.apps.storage import operations
from aria.apps.storage.catar import (
    ARCHIVE_FLAGS,
    FILENAME,
    GOODBYE,
    _complete_bst,
    read_catar,
    siphash24,
    untar,
    write_catar,
)
from aria.apps.storage.errors import InvalidArchive, StorageError
from aria.apps.storage.format import Digest, read_index
from aria.apps.storage.stores import LocalStore

TREE_SHA256 = "e41d6b051bee0e3a0a3335d3ce977d15c81a53e1fdf5917124df192c94065049"


def check_tree(root: Path) -> None:
    assert (root / "subdir1" / "f1").read_text() == "file in subdir1\n"
    assert (root / "subdir2" / "f2").read_text() == "file in subdir2\n"
    assert (root / "subdir3" / "f3").read_text() == "file in subdir3\n"
    assert (root / "nested1" / "nested2" / "f").read_bytes() == b""
    assert os.readlink(root / "symlink-dir") == "subdir1"
    assert os.readlink(root / "symlink-file") == "subdir1/f1"
    assert oct((root / "subdir1").stat().st_mode & 0o777) == "0o775"
    assert oct((root / "subdir1" / "f1").stat().st_mode & 0o777) == "0o664"


def build_tree(root: Path) -> Path:
    """Directories, many files (a deep GOODBYE tree), unicode names, symlinks, a FIFO, an empty file."""
    (root / "d" / "deeper").mkdir(parents=True)
    for number in range(37):
        (root / f"f{number}").write_text(f"file {number}\n")
    for number in range(5):
        (root / "d" / f"é{number} ü").write_bytes(bytes(range(number * 10)))
    (root / "d" / "deeper" / "empty").write_bytes(b"")
    (root / "big").write_bytes(bytes(range(256)) * 4000)
    (root / "link").symlink_to("f1")
    (root / "dangling").symlink_to("/nonexistent")
    os.mkfifo(root / "fifo")
    (root / "f3").chmod(0o600)
    return root


def tree_listing(root: Path) -> list[tuple[str, int, bytes]]:
    listing = []
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            content = os.readlink(path).encode()
        elif path.is_file():
            content = path.read_bytes()
        else:
            content = b""
        listing.append((str(path.relative_to(root)), info.st_mode, content))
    return listing


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


class TestTree:
    def test_reading_the_fixture(self, desync_data: Path) -> None:
        data = (desync_data / "tree.catar").read_bytes()
        assert hashlib.sha256(data).hexdigest() == TREE_SHA256
        entries = list(read_catar(io.BytesIO(data), "tree.catar"))
        assert [e.path for e in entries] == [
            ".",
            "nested1",
            "nested1/nested2",
            "nested1/nested2/f",
            "subdir1",
            "subdir1/f1",
            "subdir2",
            "subdir2/f2",
            "subdir3",
            "subdir3/f3",
            "symlink-dir",
            "symlink-file",
        ]
        assert {e.uid for e in entries} == {1000} and {e.gid for e in entries} == {1000}
        assert [e.kind for e in entries].count("file") == 4
        assert entries[0].feature_flags == 0xA000000000001F22

    def test_unpack_the_catar(self, desync_data: Path, tmp_path: Path) -> None:
        with open(desync_data / "tree.catar", "rb") as stream:
            assert untar(stream, tmp_path / "tree") == 12
        check_tree(tmp_path / "tree")

    async def test_unpack_through_the_caidx_and_its_store(self, desync_data: Path, tmp_path: Path) -> None:
        index = read_index(desync_data / "tree.caidx")
        assert index.chunks[0].id.hex() == "0589328ff916d08f5fe59a9aa0731571448e91341f37ca5484a85b9f0af14de3"
        assert index.digest is Digest.SHA512_256
        created = await operations.untar(
            desync_data / "tree.caidx", tmp_path / "tree", LocalStore(desync_data / "tree.store")
        )
        assert created == 12
        check_tree(tmp_path / "tree")
        assert names_in(tmp_path) == ["tree"]  # the temporary catar is gone
        with pytest.raises(ValueError, match="is an index: unpacking it needs a store"):
            await operations.untar(desync_data / "tree.caidx", tmp_path / "other")


class TestWriting:
    def test_siphash_vectors_of_the_fixture(self) -> None:
        assert siphash24(b"f") == 0x61CFFDBFF93EC8E0
        assert siphash24(b"nested1") == 0x8F34AB73DBD29662
        assert siphash24(b"subdir1") == 0xAEAB7AD312D52AB3
        assert siphash24(b"symlink-file") == 0x2E852C826879D9A6

    def test_goodbye_items_form_a_complete_search_tree(self) -> None:
        for count in range(1, 40):
            layout = [item[2] for item in _complete_bst([(i, 1, i) for i in range(count)])]
            for slot, value in enumerate(layout):  # the search-tree property, slot by slot
                for child, is_left in ((2 * slot + 1, True), (2 * slot + 2, False)):
                    if child < count:
                        assert (layout[child] < value) is is_left
        assert [item[2] for item in _complete_bst([(i, 1, i) for i in range(6)])] == [3, 1, 5, 0, 2, 4]

    def test_round_trip_through_our_reader(self, tmp_path: Path) -> None:
        tree = build_tree(tmp_path / "tree")
        archive = io.BytesIO()
        write_catar(tree, archive)
        entries = list(read_catar(io.BytesIO(archive.getvalue())))
        assert entries[0].feature_flags == ARCHIVE_FLAGS
        archive.seek(0)
        untar(archive, tmp_path / "copy")
        assert tree_listing(tmp_path / "copy") == tree_listing(tree)
        assert (tmp_path / "copy" / "big").stat().st_mtime_ns == (tree / "big").stat().st_mtime_ns

    async def test_tar_into_a_store_and_back(self, tmp_path: Path) -> None:
        tree = build_tree(tmp_path / "tree")
        store = LocalStore(tmp_path / "store")
        index = await operations.tar(tree, None, store, concurrency=2)
        assert index is not None and index.flags == ARCHIVE_FLAGS
        (tmp_path / "tree.caidx").write_bytes(index.to_bytes())
        await operations.untar(tmp_path / "tree.caidx", tmp_path / "copy", store)
        assert tree_listing(tmp_path / "copy") == tree_listing(tree)
        await operations.tar(tree, tmp_path / "tree.catar")
        archive = io.BytesIO()
        write_catar(tree, archive)
        assert (tmp_path / "tree.catar").read_bytes() == archive.getvalue()

    async def test_a_missing_source(self, tmp_path: Path) -> None:
        with pytest.raises(StorageError, match=r"cannot archive .*nothing: No such file"):
            await operations.tar(tmp_path / "nothing", tmp_path / "x.catar")
        assert names_in(tmp_path) == []


class TestBadArchives:
    def tree(self, desync_data: Path) -> bytes:
        return (desync_data / "tree.catar").read_bytes()

    def test_truncated(self, desync_data: Path) -> None:
        with pytest.raises(
            InvalidArchive, match=r"^cut.catar is not a valid catar archive at byte \d+: truncated"
        ):
            list(read_catar(io.BytesIO(self.tree(desync_data)[:900]), "cut.catar"))

    def test_not_an_archive(self) -> None:
        with pytest.raises(InvalidArchive, match="at byte 0: expected an ENTRY record"):
            list(read_catar(io.BytesIO(b"hello there, this is text" * 4), "x.catar"))

    def test_names_that_escape_are_refused(self, desync_data: Path, tmp_path: Path) -> None:
        data = bytearray(self.tree(desync_data))
        position = data.find(struct.pack("<Q", FILENAME)) - 8
        size = struct.unpack_from("<Q", data, position)[0]
        name = bytes(data[position + 16 : position + size])
        assert name == b"nested1\0"
        data[position + 16 : position + size] = b"../../x"[: size - 17].ljust(size - 17, b"/") + b"\0"
        with pytest.raises(InvalidArchive, match="unsafe file name"):
            untar(io.BytesIO(bytes(data)), tmp_path / "out", "evil.catar")
        assert not (tmp_path / "x").exists()

    def test_a_broken_goodbye(self, desync_data: Path) -> None:
        data = bytearray(self.tree(desync_data))
        last = data.rfind(struct.pack("<Q", GOODBYE)) - 8
        data[-8:] = bytes(8)
        assert last > 0
        with pytest.raises(InvalidArchive, match=r"GOODBYE record of \. has no valid tail"):
            list(read_catar(io.BytesIO(bytes(data)), "tree.catar"))

    def test_untar_never_writes_through_an_existing_symlink(self, desync_data: Path, tmp_path: Path) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        target = tmp_path / "tree"
        target.mkdir()
        (target / "subdir1").symlink_to(outside)
        with open(desync_data / "tree.catar", "rb") as stream:
            untar(stream, target)
        assert list(outside.iterdir()) == []
        check_tree(target)
