"""catar archives and caidx indexes of them: reading desync's tree fixture and unpacking it."""

from __future__ import annotations

import hashlib
import io
import os
import struct
from pathlib import Path

import pytest

from aria.apps.storage import operations
from aria.apps.storage.catar import FILENAME, GOODBYE, read_catar, untar
from aria.apps.storage.errors import InvalidArchive
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
