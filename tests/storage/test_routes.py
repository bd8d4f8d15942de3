"""aria_storage's routes through the real gateway (HTTPS, authentication, permissions), every app up."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

import aria
from tests.coordinate import conftest as coordinate
from tests.coordinate.conftest import Node

# The gateway tests' fixtures: a whole node (every app, HTTPS gateway) copied from a session template.
node_template = coordinate.node_template
node_dir = coordinate.node_dir
node = coordinate.node

MIB = 1 << 20
ASSETS = "/api/v1/storage/assets"


async def pieces(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A request body sent with chunked transfer encoding (no Content-Length), piece by piece."""
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


class TestAssetRoutes:
    async def test_upload_list_download_with_ranges_and_delete(self, node: Node) -> None:
        data = random.Random(1).randbytes(3 * MIB) + b"tail" * 1000
        caid = hashlib.sha256(data).hexdigest()
        async with node.client(await node.token()) as client:
            created = await client.post(
                f"{ASSETS}/hero.glb", content=pieces(data), headers={"Content-Type": "model/gltf-binary"}
            )
            assert created.status_code == 201, created.text
            asset = created.json()
            assert (asset["name"], asset["version"], asset["size"]) == ("hero.glb", "1", len(data))
            assert asset["caid"] == caid and asset["content_type"] == "model/gltf-binary"
            assert created.headers["Location"] == f"{ASSETS}/hero.glb/1"
            second = await client.post(f"{ASSETS}/hero.glb?version=2.0", content=b"second")
            assert second.status_code == 201 and second.json()["content_type"] == "application/octet-stream"

            listed = (await client.get(ASSETS)).json()
            assert [(a["name"], a["version"]) for a in listed] == [("hero.glb", "1"), ("hero.glb", "2.0")]
            assert [a["version"] for a in (await client.get(f"{ASSETS}/hero.glb")).json()] == ["1", "2.0"]
            assert (await client.get(f"{ASSETS}/hero.glb/latest")).json()["version"] == "2.0"
            assert (await client.get(f"{ASSETS}/hero.glb/1")).json()["caid"] == caid

            content = f"{ASSETS}/hero.glb/1/content"
            whole = await client.get(content)
            assert whole.status_code == 200 and whole.content == data
            assert whole.headers["ETag"] == f'"{caid}"'
            assert whole.headers["Accept-Ranges"] == "bytes"
            assert whole.headers["Content-Type"] == "model/gltf-binary"
            assert whole.headers["Content-Length"] == str(len(data))

            for header, start, stop in [
                ("bytes=100-199", 100, 200),
                ("bytes=1048000-2100000", 1048000, 2100001),
                ("bytes=-50", len(data) - 50, len(data)),
                (f"bytes={len(data) - 10}-", len(data) - 10, len(data)),
                (f"bytes=5-{len(data) * 2}", 5, len(data)),
            ]:
                part = await client.get(content, headers={"Range": header})
                assert part.status_code == 206, header
                assert part.content == data[start:stop], header
                assert part.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{len(data)}"
            beyond = await client.get(content, headers={"Range": f"bytes={len(data)}-"})
            assert beyond.status_code == 416
            assert beyond.headers["Content-Range"] == f"bytes */{len(data)}"
            several = await client.get(content, headers={"Range": "bytes=0-1,5-6"})
            assert several.status_code == 200 and several.content == data
            stale = await client.get(content, headers={"Range": "bytes=0-1", "If-Range": '"other"'})
            assert stale.status_code == 200 and len(stale.content) == len(data)
            fresh = await client.get(content, headers={"Range": "bytes=0-1", "If-Range": f'"{caid}"'})
            assert fresh.status_code == 206 and fresh.content == data[:2]
            cached = await client.get(content, headers={"If-None-Match": f'"{caid}"'})
            assert cached.status_code == 304 and cached.content == b""
            head = await client.head(content)
            assert head.status_code == 200 and head.content == b""
            assert head.headers["Content-Length"] == str(len(data))

            deleted = await client.delete(f"{ASSETS}/hero.glb/1")
            assert deleted.status_code == 200 and deleted.json()["caid"] == caid
            gone = await client.get(content)
            assert gone.status_code == 404
            assert gone.json()["error_description"] == "asset 'hero.glb' version '1' is not in the catalog"

    async def test_bad_requests_conflicts_and_statistics(self, node: Node) -> None:
        async with node.client(await node.token()) as client:
            assert (await client.post(f"{ASSETS}/model?version=1", content=b"a" * 1000)).status_code == 201
            again = await client.post(f"{ASSETS}/model?version=1", content=b"b")
            assert again.status_code == 409 and "already exists" in again.json()["error_description"]
            bad_name = await client.post(f"{ASSETS}/.hidden", content=b"x")
            assert (
                bad_name.status_code == 400 and "asset name '.hidden'" in bad_name.json()["error_description"]
            )
            bad_type = await client.post(
                f"{ASSETS}/model", content=b"x", headers={"Content-Type": "nonsense"}
            )
            assert bad_type.status_code == 400
            assert (await client.get(f"{ASSETS}/nothing")).status_code == 404
            assert (await client.get(f"{ASSETS}/model/9")).status_code == 404
            assert (await client.delete(f"{ASSETS}/model/9")).status_code == 404
            assert (await client.get(f"{ASSETS}?limit=0")).status_code == 400

            stats = (await client.get("/api/v1/storage/statistics")).json()
            assert stats["assets"] == 1 and stats["bytes"] == 1000
            detail = (await client.get("/api/v1/storage/statistics?detail=1")).json()
            assert detail["assets_detail"][0]["exclusive_bytes"] == 1000

            assert (await client.delete(f"{ASSETS}/model/1")).status_code == 200
            dry = (await client.post("/api/v1/storage/gc?dry_run=1")).json()
            assert dry["dry_run"] is True and dry["deleted"] == 1
            swept = (await client.post("/api/v1/storage/gc")).json()
            assert swept["deleted"] == 1 and swept["listed"] == 1

    async def test_permissions(self, node: Node) -> None:
        async with node.client() as anonymous:
            assert (await anonymous.get(ASSETS)).status_code == 401
            assert (await anonymous.post(f"{ASSETS}/x", content=b"x")).status_code == 401
        async with node.client(await node.token("reader")) as reader:
            for method, path in [
                ("GET", ASSETS),
                ("POST", f"{ASSETS}/x"),
                ("GET", f"{ASSETS}/x/1/content"),
                ("DELETE", f"{ASSETS}/x/1"),
                ("GET", "/api/v1/storage/statistics"),
                ("POST", "/api/v1/storage/gc"),
            ]:
                response = await reader.request(method, path)
                assert response.status_code == 403, (method, path)
                assert "aria_storage." in response.json()["error_description"]

    async def test_uploads_are_not_bound_by_the_gateways_body_limit(self, node_dir: Path) -> None:
        """With max_body_bytes = 4 KiB everywhere else, an 8 MiB streamed upload goes through (the
        upload view lifts the limit), while a chunked body without Content-Length beyond 4 KiB to
        another view is refused: the gateway counts what it receives, not what is declared."""
        data = random.Random(2).randbytes(8 * MIB)
        async with aria.running(config=coordinate.node_config(node_dir, max_body_bytes=4096)) as system:
            gateway = aria.whereis("aria_coordinate")
            started = Node(system, gateway.url, gateway.ca_file)
            async with started.client(await started.token()) as client:
                created = await client.post(f"{ASSETS}/big.bin", content=pieces(data, 256 * 1024))
                assert created.status_code == 201, created.text
                assert created.json()["size"] == len(data)
                back = await client.get(f"{ASSETS}/big.bin/1/content")
                assert hashlib.sha256(back.content).digest() == hashlib.sha256(data).digest()
                # One chunk, so the client has sent it all before the refusal closes the connection.
                oversized = b"{" + b" " * 8192 + b"}"
                other = await client.post(
                    "/api/v1/queue/jobs",
                    content=pieces(oversized, len(oversized)),
                    headers={"Content-Type": "application/json"},
                )
                assert other.status_code == 413, other.text
