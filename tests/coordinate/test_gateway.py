"""The gateway and the monitor over real HTTPS (hypercorn on loopback), with every app running."""

from __future__ import annotations

import ssl
import time
import uuid
from pathlib import Path

import httpx
import pyotp
import pytest
import trio

import aria
from aria.errors import ConfigError
from tests.conftest import eventually
from tests.coordinate.conftest import PASSWORD, Node, node_config
from tests.websocket import WebSocket, WebSocketRefused


class TestAuthentication:
    async def test_every_api_path_needs_credentials_even_unknown_ones(self, node: Node) -> None:
        async with node.client() as client:
            for path in (
                "/api/v1/monitor/tree",
                "/api/v1/queue/jobs",
                "/api/v1/does-not-exist",
                "/api/anything",
            ):
                response = await client.get(path)
                assert response.status_code == 401, path
                assert response.json()["error"] == "unauthorized"
                assert response.headers["WWW-Authenticate"] == "Bearer"
            forged = await client.get("/api/v1/monitor/tree", headers={"Authorization": "Bearer not.a.jwt"})
            assert forged.status_code == 401

    async def test_public_routes_answer_without_credentials(self, node: Node) -> None:
        async with node.client() as client:
            assert (await client.get("/health/live")).json() == {"live": True}
            assert (await client.get("/api/openapi.json")).json()["openapi"] == "3.1.0"
            discovery = await client.get("/api/v1/auth/.well-known/openid-configuration")
            assert discovery.status_code == 200 and "token_endpoint" in discovery.json()
            assert (await client.get("/api/v1/auth/jwks.json")).json()["keys"]

    async def test_a_token_reaches_the_api_and_request_ids_travel(self, node: Node) -> None:
        async with node.client(await node.token()) as client:
            response = await client.get("/api/v1/monitor/tree", headers={"X-Request-ID": "trace-me-42"})
            assert response.status_code == 200
            assert response.headers["X-Request-ID"] == "trace-me-42"
            assert [c["id"] for c in response.json()["root"]["children"]][-1] == "aria_coordinate"
            made = await client.get("/api/v1/monitor/home")
            assert len(made.headers["X-Request-ID"]) == 32
            missing = await client.get("/api/v1/does-not-exist")
            assert missing.status_code == 404 and missing.json()["error"] == "not_found"

    async def test_authorisation_is_per_route(self, node: Node) -> None:
        async with node.client(await node.token("reader")) as client:
            assert (await client.get("/api/v1/monitor/home")).status_code == 200
            denied = await client.post("/api/v1/monitor/tree/aria_tune/restart")
            assert denied.status_code == 403
            assert denied.json()["error_description"].startswith("aria.supervisor:write is not allowed")

    async def test_dashboard_pages_redirect_to_login_and_login_sets_a_session(self, node: Node) -> None:
        async with node.client(follow_redirects=False) as client:
            redirect = await client.get("/queue")
            assert redirect.status_code == 302 and redirect.headers["location"] == "/login?next=/queue"
            wrong = await client.post(
                "/login", data={"username": "oper", "password": "nope", "next": "/queue"}
            )
            assert wrong.status_code == 401 and "wrong user name, password or code" in wrong.text
            good = await client.post(
                "/login", data={"username": "oper", "password": PASSWORD, "next": "/queue"}
            )
            assert good.status_code == 302 and good.headers["location"] == "/queue"
            assert "aria_access" in good.cookies
            page = await client.get("/queue")
            assert page.status_code == 200 and "<h1>Queue</h1>" in page.text
            # The queue page's buttons call aria_queue's own route with the session cookie.
            unknown = await client.post(f"/api/v1/queue/jobs/{uuid.uuid4()}/cancel")
            assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
            evil = await client.post(
                "/login", data={"username": "oper", "password": PASSWORD, "next": "//evil.example"}
            )
            assert evil.headers["location"] == "/"


class TestProtection:
    async def test_rate_limit_headers_and_429(self, node_dir: Path) -> None:
        async with aria.running(config=node_config(node_dir, rate_limit=0.5, rate_burst=3)):
            gateway = aria.whereis("aria_coordinate")
            node = Node(aria.current_system(), gateway.url, gateway.ca_file)
            async with node.client(await node.token()) as client:
                statuses = []
                for _ in range(4):
                    response = await client.get("/api/v1/monitor/home")
                    statuses.append(response.status_code)
                assert statuses == [200, 200, 200, 429]
                assert response.headers["Retry-After"] == "2"
                first = await client.get("/api/v1/monitor/os")
                assert first.headers["X-RateLimit-Limit"] == "3"
                assert first.headers["X-RateLimit-Remaining"] == "2"  # another route, another bucket

    async def test_a_stopped_app_answers_503_at_once(self, node: Node) -> None:
        token = await node.token()
        await node.system.terminate_child("aria_queue")
        async with node.client(token) as client:
            began = time.monotonic()
            response = await client.get("/api/v1/monitor/queue")
            assert response.status_code in (200, 404)  # the monitor itself is up
            jobs = await client.get("/api/v1/queue/jobs")
            assert jobs.status_code == 503
            assert jobs.headers["Retry-After"] == "2"
            assert time.monotonic() - began < 5

    async def test_bodies_beyond_the_limit_are_refused(self, node_dir: Path) -> None:
        async with aria.running(config=node_config(node_dir, max_body_bytes=2048)):
            gateway = aria.whereis("aria_coordinate")
            node = Node(aria.current_system(), gateway.url, gateway.ca_file)
            async with node.client(await node.token()) as client:
                response = await client.post("/api/v1/monitor/tree/aria_tune/restart", content=b"x" * 5000)
                assert response.status_code == 413

    async def test_cors_for_configured_origins(self, node_dir: Path) -> None:
        config = node_config(node_dir, cors_origins=["https://studio.example"])
        async with aria.running(config=config):
            gateway = aria.whereis("aria_coordinate")
            node = Node(aria.current_system(), gateway.url, gateway.ca_file)
            async with node.client() as client:
                preflight = await client.options(
                    "/api/v1/monitor/tree",
                    headers={"Origin": "https://studio.example", "Access-Control-Request-Method": "GET"},
                )
                assert preflight.status_code == 204
                assert preflight.headers["Access-Control-Allow-Origin"] == "https://studio.example"
                other = await client.get("/health/live", headers={"Origin": "https://elsewhere.example"})
                assert "Access-Control-Allow-Origin" not in other.headers

    def test_plain_http_is_only_for_loopback(self) -> None:
        from aria.config import load

        with pytest.raises(ConfigError, match="tls = false is only allowed on a loopback host"):
            load(environ={"ARIA_COORDINATE__TLS": "false", "ARIA_COORDINATE__HOST": "0.0.0.0"})


class TestTransport:
    async def test_http2_over_tls(self, node: Node) -> None:
        async with node.client(http2=True) as client:
            response = await client.get("/health/live")
            assert response.http_version == "HTTP/2"

    async def test_websockets_pass_through_to_the_apps(self, node: Node) -> None:
        # aria_auth's WebRTC signalling room, reached through the gateway over TLS.
        port = int(node.url.rsplit(":", 1)[1])
        context = ssl.create_default_context(cafile=node.ca_file)
        headers = [("Authorization", f"Bearer {await node.token()}"), ("X-Request-ID", "ws-test-1")]
        path = "/api/v1/auth/webrtc/lobby"
        first = await WebSocket.connect(port, path, headers, ssl_context=context)
        second = await WebSocket.connect(port, path, headers, ssl_context=context)
        try:
            welcome_first = await first.receive()
            welcome_second = await second.receive()
            assert welcome_first and welcome_second
            assert welcome_first["type"] == welcome_second["type"] == "welcome"
            assert [peer["peer"] for peer in welcome_second["peers"]] == [welcome_first["peer"]]
            joined = await first.receive()
            assert joined == {"type": "peer-joined", "peer": welcome_second["peer"], "name": "oper"}
            await second.send({"type": "signal", "to": welcome_first["peer"], "data": {"sdp": "x"}})
            signal = await first.receive()
            assert signal and signal["data"] == {"sdp": "x"} and signal["from"] == welcome_second["peer"]
        finally:
            await first.close()
            await second.close()

    async def test_websockets_to_a_stopped_app_are_refused_with_503(self, node: Node) -> None:
        port = int(node.url.rsplit(":", 1)[1])
        context = ssl.create_default_context(cafile=node.ca_file)
        await node.system.terminate_child("aria_auth")
        with pytest.raises(WebSocketRefused) as refused:
            await WebSocket.connect(port, "/api/v1/auth/webrtc/lobby", ssl_context=context)
        assert refused.value.status == 503

    async def test_plain_http_on_loopback_when_configured(self, node_dir: Path) -> None:
        async with aria.running(config=node_config(node_dir, tls=False)):
            url = aria.whereis("aria_coordinate").url
            assert url.startswith("http://127.0.0.1:")
            async with httpx.AsyncClient(base_url=url) as client:
                assert (await client.get("/health/live")).status_code == 200


class TestMonitor:
    async def test_metrics_in_prometheus_format(self, node: Node) -> None:
        async with node.client() as client:
            await client.get("/health/live")
            text = (await client.get("/metrics")).text
        assert 'aria_child_up{kind="process",path="root/aria_security/bao"} 1.0' in text
        assert "aria_http_requests_total{" in text
        assert "aria_http_request_duration_seconds_bucket{" in text
        assert "aria_openbao_sealed 0.0" in text
        assert "aria_db_pool_connections{" in text
        assert "process_resident_memory_bytes" in text
        assert 'aria_storage_bytes{kind="stored_bytes"}' in text
        assert "aria_storage_dedup_ratio " in text
        assert "aria_queue_job_duration_seconds" in text
        assert "aria_queue_depth{" in text or "# TYPE aria_queue_depth gauge" in text

    async def test_readiness_names_what_is_not_ready(self, node: Node) -> None:
        async with node.client() as client:
            assert (await client.get("/health/ready")).status_code == 200
            await node.system.terminate_child("aria_tune/api")
            response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.json() == {"ready": False, "not_ready": ["root/aria_tune/api"]}

    async def test_history_is_kept_in_the_database(self, node: Node) -> None:
        monitor = await aria.whereis("aria_monitor").get()
        await monitor.sample()
        await monitor.sample()
        async with node.client(await node.token()) as client:
            history = (await client.get("/api/v1/monitor/history/memory_rss_bytes?seconds=600")).json()
            assert history["resolution"] == 0
            assert len(history["points"]) >= 2 and history["points"][-1][1] > 1e6
            await monitor.roll_up()
            bad = await client.get("/api/v1/monitor/history/nonsense")
            assert bad.status_code == 404
            out_of_range = await client.get("/api/v1/monitor/history/cpu_percent?seconds=-5")
            assert out_of_range.status_code == 400

    async def test_kill_from_the_api_and_watch_it_come_back(self, node: Node) -> None:
        async with node.client(await node.token()) as client:
            response = await client.post("/api/v1/monitor/tree/aria_interpret/api/kill")
            assert response.status_code == 200

            def restarted() -> bool:
                tree = node.system.tree()["root"]["children"]
                interpret = next(c for c in tree if c["id"] == "aria_interpret")
                return (
                    interpret["children"][0]["restarts"] == 1
                    and interpret["children"][0]["state"] == "running"
                )

            with trio.fail_after(10):
                await eventually(restarted)


class TestFirstStart:
    async def test_the_one_time_setup_link_creates_an_administrator(self, node_dir: Path) -> None:
        """On a node with no users the banner carries a link; it creates the admin (with TOTP), once."""
        fresh = node_dir.parent / "fresh"
        fresh.mkdir()
        async with aria.running(config=node_config(fresh)) as system:
            link = next(line for line in system.banner_lines if "setup?token=" in line).split()[-1]
            gateway = aria.whereis("aria_coordinate")
            node = Node(system, gateway.url, gateway.ca_file)
            async with node.client() as client:
                path = link.removeprefix(gateway.url)
                assert (await client.get(path)).status_code == 200
                token = path.split("token=")[1]
                step = await client.post(
                    "/setup", data={"token": token, "username": "root", "password": "a long admin password"}
                )
                secret = step.text.split("<code id=totp-secret>")[1].split("</code>")[0]
                done = await client.post(
                    "/setup", data={"token": token, "username": "root", "code": pyotp.TOTP(secret).now()}
                )
                assert "recovery codes" in done.text
                assert (await client.get(path)).status_code == 404  # used up
            auth = await aria.whereis("aria_auth").get()
            principal = await auth.principal("root")
            assert "admin" in principal["roles"]
