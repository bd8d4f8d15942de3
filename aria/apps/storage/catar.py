"""``.catar`` archives (casync's directory-tree format): writing, reading and unpacking.

A catar is the root directory's *entry*: an ENTRY record (feature flags, mode, chattr flags, uid,
gid, mtime in ns), optional metadata records (user and group names, xattrs, ACLs, fcaps, SELinux
label), then exactly one of a PAYLOAD (a regular file), a SYMLINK, a DEVICE, or, for a directory,
its children in name order (each a FILENAME record then the child's own entry) ended by a GOODBYE
lookup table. Every record starts with ``(u64 size, u64 type)``; ``size`` includes those 16 bytes.

:func:`read_catar` walks an archive from a binary file object without loading payloads;
:func:`untar` recreates the tree on disk; :func:`write_catar` archives a tree, byte-identical to
``casync make`` with the same features (:data:`ARCHIVE_FLAGS`). Names that would escape the target
(``..``, ``/``) are refused, as is any record out of place; each error names the archive and the
byte offset.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from aria.apps.storage.errors import InvalidArchive

ENTRY = 0x1396FABCEA5BBB51
USER = 0xF453131AAEEACCB3
GROUP = 0x25EB6AC969396A52
XATTR = 0xB8157091F80BC486
ACL_USER = 0x297DC88B2EF12FAF
ACL_GROUP = 0x36F2ACB56CB3DD0B
ACL_GROUP_OBJ = 0x23047110441F38F3
ACL_DEFAULT = 0xFE3EEDA6823C8CD0
ACL_DEFAULT_USER = 0xBDF03DF9BD010A91
ACL_DEFAULT_GROUP = 0xA0CB1168782D1F51
FCAPS = 0xF7267DB0AFED0629
QUOTA_PROJID = 0x161BAF2D8772A72B
SELINUX = 0x46FAF0602FD26C59
SYMLINK = 0x664A6FB6830E0D6C
DEVICE = 0xAC3DACE369DFE643
PAYLOAD = 0x8B9E1D93D6DCFFC9
FILENAME = 0x6DBB6EBCB3161F0B
GOODBYE = 0xDFD35C5E8327C403
GOODBYE_TAIL_MARKER = 0x57446FA533702943

_METADATA = {USER, GROUP, XATTR, ACL_USER, ACL_GROUP, ACL_GROUP_OBJ, ACL_DEFAULT, ACL_DEFAULT_USER}
_METADATA |= {ACL_DEFAULT_GROUP, FCAPS, QUOTA_PROJID, SELINUX}
_HEADER = struct.Struct("<QQ")
_ENTRY_BODY = struct.Struct("<6Q")
_COPY_BLOCK = 1 << 20
#: Bounds for records that are read into memory (names, metadata, GOODBYE tables).
_MAX_SMALL_RECORD = 16 << 20


@dataclass
class Entry:
    """One file system object of an archive, as read (payloads are not loaded: see ``payload_*``)."""

    path: str
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    feature_flags: int = 0
    user: str = ""
    group: str = ""
    xattrs: dict[bytes, bytes] = field(default_factory=dict)
    symlink_target: str | None = None
    device: tuple[int, int] | None = None
    payload_offset: int = 0
    payload_size: int = 0

    @property
    def kind(self) -> str:
        if stat.S_ISDIR(self.mode):
            return "directory"
        if stat.S_ISREG(self.mode):
            return "file"
        if stat.S_ISLNK(self.mode):
            return "symlink"
        return "special"


class _Reader:
    def __init__(self, stream: BinaryIO, source: str) -> None:
        self.stream = stream
        self.source = source
        self.offset = 0

    def fail(self, problem: str, offset: int | None = None) -> InvalidArchive:
        return InvalidArchive(self.source, self.offset if offset is None else offset, problem)

    def exact(self, size: int) -> bytes:
        data = self.stream.read(size)
        if len(data) != size:
            raise self.fail(f"truncated: wanted {size} bytes, the archive ends after {len(data)}")
        self.offset += size
        return data

    def header(self) -> tuple[int, int, int]:
        start = self.offset
        size, kind = _HEADER.unpack(self.exact(16))
        if size < 16:
            raise self.fail(f"record size {size} is smaller than its header", start)
        return start, size, kind

    def body(self, size: int, start: int) -> bytes:
        if size - 16 > _MAX_SMALL_RECORD:
            raise self.fail(f"record of {size} bytes is implausibly large", start)
        return self.exact(size - 16)

    def skip(self, count: int) -> None:
        self.stream.seek(count, os.SEEK_CUR)
        self.offset += count

    def unread_header(self) -> None:
        self.skip(-16)


def _text(data: bytes, reader: _Reader, start: int) -> str:
    if not data.endswith(b"\0"):
        raise reader.fail("a name is not NUL-terminated", start)
    try:
        return data[:-1].decode()
    except UnicodeDecodeError:
        return data[:-1].decode("utf-8", "surrogateescape")


def read_catar(stream: BinaryIO, source: str = "archive") -> Iterator[Entry]:
    """Every entry of the archive in archive order (a directory before its children).

    The stream must be seekable; payloads are skipped, their offset and size recorded.

    Raises:
        InvalidArchive: for truncation, unknown or misplaced records, bad names or a bad GOODBYE.
    """
    reader = _Reader(stream, source)
    yield from _entry(reader, "")
    trailing = stream.read(1)
    if trailing:
        raise reader.fail("unexpected bytes after the root directory's GOODBYE")


def _entry(reader: _Reader, path: str) -> Iterator[Entry]:
    start, size, kind = reader.header()
    if kind != ENTRY:
        raise reader.fail(f"expected an ENTRY record, found type {kind:#018x}", start)
    if size != 16 + _ENTRY_BODY.size:
        raise reader.fail(f"an ENTRY record is {16 + _ENTRY_BODY.size} bytes, this one says {size}", start)
    flags, mode, _chattr, uid, gid, mtime = _ENTRY_BODY.unpack(reader.exact(_ENTRY_BODY.size))
    entry = Entry(path or ".", mode, uid, gid, mtime, feature_flags=flags)
    while True:
        start, size, kind = reader.header()
        if kind in _METADATA:
            body = reader.body(size, start)
            if kind == USER:
                entry.user = _text(body, reader, start)
            elif kind == GROUP:
                entry.group = _text(body, reader, start)
            elif kind == XATTR:
                name, _, value = body.partition(b"\0")
                entry.xattrs[name] = value[:-1] if value.endswith(b"\0") else value
            continue
        break
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        reader.unread_header()  # a FIFO or socket is its ENTRY alone: that header is the parent's
        yield entry
    elif kind == PAYLOAD:
        if not stat.S_ISREG(mode):
            raise reader.fail("a PAYLOAD record for an entry that is not a regular file", start)
        entry.payload_offset = reader.offset
        entry.payload_size = size - 16
        reader.skip(size - 16)
        yield entry
    elif kind == SYMLINK:
        entry.symlink_target = _text(reader.body(size, start), reader, start)
        yield entry
    elif kind == DEVICE:
        major, minor = struct.unpack("<QQ", reader.body(size, start))
        entry.device = (major, minor)
        yield entry
    elif kind in (FILENAME, GOODBYE):
        if not stat.S_ISDIR(mode):
            raise reader.fail(f"children under {entry.path}, which is not a directory", start)
        yield entry
        previous = ""
        while kind == FILENAME:
            name = _text(reader.body(size, start), reader, start)
            if not name or name in (".", "..") or "/" in name:
                raise reader.fail(f"unsafe file name {name!r}", start)
            if previous and name.encode("utf-8", "surrogateescape") <= previous.encode(
                "utf-8", "surrogateescape"
            ):
                raise reader.fail(f"file name {name!r} in {entry.path} is out of order or repeated", start)
            previous = name
            yield from _entry(reader, f"{path}/{name}" if path else name)
            start, size, kind = reader.header()
        if kind != GOODBYE:
            raise reader.fail(f"expected FILENAME or GOODBYE in {entry.path}, found type {kind:#018x}", start)
        table = reader.body(size, start)
        if (
            len(table) < 24
            or len(table) % 24
            or struct.unpack_from("<Q", table, len(table) - 8)[0] != (GOODBYE_TAIL_MARKER)
        ):
            raise reader.fail(f"the GOODBYE record of {entry.path} has no valid tail", start)
    else:
        raise reader.fail(f"unexpected record type {kind:#018x} in {entry.path}", start)


def untar(stream: BinaryIO, target: str | os.PathLike[str], source: str = "archive") -> int:
    """Recreate the archive's tree under ``target`` (created if missing). Blocking.

    Regular files, directories, symlinks and FIFOs are created with their mode (and files and
    directories with their mtime); ownership is applied, and device nodes created, only when
    running as root. Sockets are skipped: they mean nothing without their process.

    Returns:
        The number of entries created.

    Raises:
        InvalidArchive: as :func:`read_catar`; what was written before the fault stays.
    """
    root = Path(target)
    root.mkdir(parents=True, exist_ok=True)
    directories: list[tuple[Path, Entry]] = []
    created = 0
    as_root = os.geteuid() == 0
    for entry in list(read_catar(stream, source)):
        path = root if entry.path == "." else root / entry.path
        if path != root and path.is_symlink():
            path.unlink()  # never write through a link, whatever was there before
        if entry.kind == "directory":
            path.mkdir(exist_ok=True)
            directories.append((path, entry))
        elif entry.kind == "file":
            with open(path, "wb") as out:
                stream.seek(entry.payload_offset)
                remaining = entry.payload_size
                while remaining:
                    block = stream.read(min(_COPY_BLOCK, remaining))
                    if not block:
                        raise InvalidArchive(
                            source, entry.payload_offset, f"payload of {entry.path} is truncated"
                        )
                    out.write(block)
                    remaining -= len(block)
            os.chmod(path, stat.S_IMODE(entry.mode))
            os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))
        elif entry.kind == "symlink":
            assert entry.symlink_target is not None
            if path.exists():
                path.unlink()
            os.symlink(entry.symlink_target, path)
            os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
        elif stat.S_ISFIFO(entry.mode):
            if path.exists():
                path.unlink()
            os.mkfifo(path, stat.S_IMODE(entry.mode))
        elif entry.device is not None and as_root:
            if path.exists():
                path.unlink()
            os.mknod(path, entry.mode, os.makedev(*entry.device))
        else:
            continue  # sockets (meaningless once their process is gone); devices need root
        if as_root:
            os.lchown(path, entry.uid, entry.gid)
        created += 1
    for path, entry in reversed(directories):  # after their children, which touch their mtimes
        os.chmod(path, stat.S_IMODE(entry.mode))
        os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))
    return created


# Writing ---------------------------------------------------------------------------------------

#: The archive features aria writes: 32-bit uids, ns times, permissions, symlinks, device nodes,
#: FIFOs and sockets, plus the SHA-512/256 and exclusion flags. That is desync's ``tar`` set without
#: xattrs, and what ``casync make --with=unix --without=16bit-uids --with=32bit-uids
#: --without=sec-time --with=nsec-time`` writes, byte for byte.
ARCHIVE_FLAGS = 0xB000000000001F22
_SIPHASH_KEY = (0x8574442B0F1D84B3, 0x2736ED30D1C22EC1)
_MASK = 0xFFFFFFFFFFFFFFFF


def siphash24(data: bytes, key: tuple[int, int] = _SIPHASH_KEY) -> int:
    """SipHash-2-4 of ``data``: the GOODBYE table's hash of a file name (without its NUL)."""
    k0, k1 = key
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def rotl(x: int, b: int) -> int:
        return ((x << b) | (x >> (64 - b))) & _MASK

    def rounds(v0: int, v1: int, v2: int, v3: int, count: int) -> tuple[int, int, int, int]:
        for _ in range(count):
            v0 = (v0 + v1) & _MASK
            v1 = rotl(v1, 13) ^ v0
            v0 = rotl(v0, 32)
            v2 = (v2 + v3) & _MASK
            v3 = rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _MASK
            v3 = rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _MASK
            v1 = rotl(v1, 17) ^ v2
            v2 = rotl(v2, 32)
        return v0, v1, v2, v3

    tail_start = len(data) - len(data) % 8
    for position in range(0, tail_start, 8):
        m = int.from_bytes(data[position : position + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 2)
        v0 ^= m
    last = int.from_bytes(data[tail_start:], "little") | ((len(data) & 0xFF) << 56)
    v3 ^= last
    v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 2)
    v0 ^= last
    v2 ^= 0xFF
    v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 4)
    return v0 ^ v1 ^ v2 ^ v3


def _complete_bst(items: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Items sorted by (hash, offset) laid out as a complete binary search tree in level order."""
    ordered = sorted(items, key=lambda item: (item[2], item[0]))
    out: list[tuple[int, int, int]] = [(0, 0, 0)] * len(ordered)

    def place(low: int, count: int, slot: int) -> None:
        if count == 0:
            return
        height = count.bit_length() - 1  # levels below the root
        last_level = count - ((1 << height) - 1)
        left = ((1 << height) - 1) // 2 + min(last_level, 1 << max(height - 1, 0)) if height else 0
        out[slot] = ordered[low + left]
        place(low, left, 2 * slot + 1)
        place(low + left + 1, count - left - 1, 2 * slot + 2)

    place(0, len(ordered), 0)
    return out


class _Writer:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.offset = 0

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.offset += len(data)

    def record(self, kind: int, body: bytes) -> None:
        self.write(_HEADER.pack(16 + len(body), kind) + body)


def write_catar(source: str | os.PathLike[str], out: BinaryIO, *, flags: int = ARCHIVE_FLAGS) -> None:
    """Write the tree under ``source`` as a catar to ``out`` (blocking; file contents streamed).

    Directories, regular files, symlinks, device nodes, FIFOs and sockets are archived with their
    mode, uid, gid and mtime; children in byte order of their names; hard links become copies.

    Raises:
        StorageError: if a file cannot be read, or changes size while it is archived.
    """
    from aria.apps.storage.errors import StorageError

    writer = _Writer(out)
    root = Path(source)

    def entry(path: Path, info: os.stat_result) -> None:
        writer.record(
            ENTRY,
            _ENTRY_BODY.pack(flags, info.st_mode, 0, info.st_uid, info.st_gid, info.st_mtime_ns),
        )
        mode = info.st_mode
        if stat.S_ISREG(mode):
            payload(path, info.st_size)
        elif stat.S_ISLNK(mode):
            writer.record(SYMLINK, os.fsencode(os.readlink(path)) + b"\0")
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            writer.record(DEVICE, struct.pack("<QQ", os.major(info.st_rdev), os.minor(info.st_rdev)))
        elif stat.S_ISDIR(mode):
            directory(path)

    def payload(path: Path, size: int) -> None:
        writer.write(_HEADER.pack(16 + size, PAYLOAD))
        try:
            with open(path, "rb") as handle:
                remaining = size
                while remaining:
                    block = handle.read(min(_COPY_BLOCK, remaining))
                    if not block:
                        raise StorageError(f"{path} shrank while it was archived")
                    writer.write(block)
                    remaining -= len(block)
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def directory(path: Path) -> None:
        start = writer.offset - _HEADER.size - _ENTRY_BODY.size
        items: list[tuple[int, int, int]] = []
        try:
            names = sorted(os.listdir(path), key=os.fsencode)
        except OSError as exc:
            raise StorageError(f"cannot list {path}: {exc.strerror or exc}") from exc
        for name in names:
            child = path / name
            try:
                info = os.lstat(child)
            except FileNotFoundError:
                continue  # removed meanwhile
            begin = writer.offset
            encoded = os.fsencode(name)
            writer.record(FILENAME, encoded + b"\0")
            entry(child, info)
            items.append((begin, writer.offset - begin, siphash24(encoded)))
        goodbye_start = writer.offset
        table = [(goodbye_start - begin, size, digest) for begin, size, digest in _complete_bst(items)]
        body = b"".join(struct.pack("<3Q", *item) for item in table)
        total = 16 + 24 * (len(table) + 1)
        body += struct.pack("<3Q", goodbye_start - start, total, GOODBYE_TAIL_MARKER)
        writer.record(GOODBYE, body)

    try:
        info = os.lstat(root)
    except OSError as exc:
        raise StorageError(f"cannot archive {root}: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise StorageError(f"cannot archive {root}: not a directory")
    entry(root, info)
