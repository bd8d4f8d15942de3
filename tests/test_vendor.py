"""`make vendor`'s download, checksum and extraction logic, against a local HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aria.vendor import Artifact, VendorError, fetch, read_sums


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def deb(files: dict[str, bytes]) -> bytes:
    """A minimal Debian package: an ar archive with debian-binary, control and data members."""

    def member(name: str, content: bytes) -> bytes:
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(content):<10}`\n".encode()
        return header + content + (b"\n" if len(content) % 2 else b"")

    return (
        b"!<arch>\n"
        + member("debian-binary", b"2.0\n")
        + member("control.tar.gz", tar_gz({"./control": b"Package: x\n"}))
        + member("data.tar.gz", tar_gz({f"./{k}": v for k, v in files.items()}))
    )


@pytest.fixture
def release_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "releases"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def artifact(base: str, filename: str, members: dict[str, str]) -> Artifact:
    return Artifact(
        name=filename, url=f"{base}/{filename}", checksums_url=f"{base}/{filename}.sha256sum", members=members
    )


class TestVendor:
    def test_a_pinned_deb_is_verified_and_its_binary_extracted(
        self, release_server: tuple[str, Path], tmp_path: Path
    ) -> None:
        base, root = release_server
        package = deb({"usr/bin/bao": b"#!/bin/sh\necho bao\n"})
        (root / "bao.deb").write_bytes(package)
        sums = tmp_path / "SHA256SUMS"
        sums.write_text(f"{hashlib.sha256(package).hexdigest()}  bao.deb\n")
        target = tmp_path / "vendor_bin"
        target.mkdir()
        [binary] = fetch(artifact(base, "bao.deb", {"usr/bin/bao": "bao"}), target, sums)
        assert binary.read_bytes() == b"#!/bin/sh\necho bao\n"
        assert binary.stat().st_mode & 0o111

    def test_an_unpinned_tgz_is_checked_upstream_and_pinned(
        self, release_server: tuple[str, Path], tmp_path: Path
    ) -> None:
        base, root = release_server
        archive = tar_gz({"cockroach-v22/cockroach": b"ELF..."})
        digest = hashlib.sha256(archive).hexdigest()
        (root / "c.tgz").write_bytes(archive)
        (root / "c.tgz.sha256sum").write_text(f"{digest}  c.tgz\n")
        sums = tmp_path / "SHA256SUMS"
        sums.write_text("# pins\nUNPINNED  c.tgz\n")
        fetch(artifact(base, "c.tgz", {"cockroach-v22/cockroach": "cockroach"}), tmp_path, sums)
        assert (tmp_path / "cockroach").read_bytes() == b"ELF..."
        assert read_sums(sums) == {"c.tgz": digest}
        assert sums.read_text().startswith("# pins\n")

    def test_a_checksum_mismatch_stops_and_extracts_nothing(
        self, release_server: tuple[str, Path], tmp_path: Path
    ) -> None:
        base, root = release_server
        (root / "x.tgz").write_bytes(tar_gz({"x": b"tampered"}))
        sums = tmp_path / "SHA256SUMS"
        sums.write_text(f"{'0' * 64}  x.tgz\n")
        with pytest.raises(VendorError, match=r"checksum mismatch for x\.tgz: expected 0000"):
            fetch(artifact(base, "x.tgz", {"x": "x"}), tmp_path, sums)
        assert not (tmp_path / "x").exists()

    def test_offline_gives_one_clear_line(self, tmp_path: Path) -> None:
        sums = tmp_path / "SHA256SUMS"
        sums.write_text(f"{'0' * 64}  y.tgz\n")
        with pytest.raises(VendorError) as info:
            fetch(artifact("http://127.0.0.1:9", "y.tgz", {"y": "y"}), tmp_path, sums)
        message = str(info.value)
        assert message.startswith("could not download http://127.0.0.1:9/y.tgz (")
        assert "Aria still runs on its packaged defaults" in message
        assert "\n" not in message

    def test_the_shipped_pins_cover_every_artifact(self) -> None:
        from aria.vendor import ARTIFACTS, SUMS_FILE

        assert set(read_sums(SUMS_FILE)) == {a.filename for a in ARTIFACTS}
