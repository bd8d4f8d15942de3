"""aria_auth's routes behind the real gateway (aria_coordinate) of a whole node over HTTPS: what each
route declares is what the gateway enforces, and the OAuth flows work through it with the issuer
derived from the gateway's own URL."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.jwk import KeySet
from quart_trio import QuartTrio

import aria
from aria.apps.auth.api import create_blueprint
from aria.http import AUTHENTICATED_ONLY, PERMISSION_ATTRIBUTE, is_public
from tests.auth.test_http import pkce

# The coordinate tests' whole node: a session template (node_template), copied for each test (node_dir).
from tests.coordinate.conftest import PASSWORD, Node, node_config, node_dir, node_template  # noqa: F401
from tests.websocket import WebSocket

REDIRECT = "https://app.example/callback"
PUBLIC = "public"
PRINCIPAL = AUTHENTICATED_ONLY


def test_every_route_declares_who_may_call_it() -> None:
    """No route falls back to the gateway's default (auth:read / auth:write) by accident."""
    app = QuartTrio("declarations")
    app.register_blueprint(create_blueprint(object()), url_prefix="/api/v1/auth")
    declared = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("aria_auth."):
            view = app.view_functions[rule.endpoint]
            declared[rule.rule] = PUBLIC if is_public(view) else getattr(view, PERMISSION_ATTRIBUTE, None)
    base = "/api/v1/auth"
    assert declared == {
        f"{base}/.well-known/openid-configuration": PUBLIC,
        f"{base}/.well-known/oauth-authorization-server": PUBLIC,
        f"{base}/jwks.json": PUBLIC,
        f"{base}/login": PUBLIC,
        f"{base}/refresh": PUBLIC,
        f"{base}/logout": PRINCIPAL,
        f"{base}/authorize": PUBLIC,
        f"{base}/token": PUBLIC,
        f"{base}/introspect": PUBLIC,
        f"{base}/revoke": PUBLIC,
        f"{base}/userinfo": PRINCIPAL,
        f"{base}/me": PRINCIPAL,
        f"{base}/mfa/totp/enrol": PRINCIPAL,
        f"{base}/mfa/totp/confirm": PRINCIPAL,
        f"{base}/turn": PRINCIPAL,
        f"{base}/audit": "auth.audit:read",
        f"{base}/federation/<provider>/login": PUBLIC,
        f"{base}/federation/<provider>/callback": PUBLIC,
        f"{base}/webrtc/<room>": PUBLIC,
    }


@pytest.fixture
async def gateway(node_dir: Path) -> AsyncIterator[Node]:  # noqa: F811 (the imported fixture)
    """A whole node with the gateway on a port picked at start, and [auth] issuer left empty."""
    async with aria.running(config=node_config(node_dir)) as system:
        service = aria.whereis("aria_coordinate")
        yield Node(system, service.url, service.ca_file)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_code_flow_with_pkce_a_user_without_roles_and_the_audit_log(gateway: Node) -> None:
    auth = await aria.whereis("aria_auth").get()
    await auth.add_user("alice", PASSWORD)  # no roles at all
    await auth.register_client("spa", redirect_uris=[REDIRECT], public=True)
    issuer = f"{gateway.url}/api/v1/auth"
    verifier, challenge = pkce()
    async with gateway.client() as http:
        # Discovery, without credentials, names this gateway's URL (its port was picked at start).
        response = await http.get("/api/v1/auth/.well-known/openid-configuration")
        assert response.status_code == 200, response.text
        document = response.json()
        OpenIDProviderMetadata(document).validate()
        assert document["issuer"] == issuer == auth.issuer
        assert document["token_endpoint"] == f"{issuer}/token"
        assert document["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]
        keys = KeySet.import_key_set((await http.get(document["jwks_uri"])).json())

        params = {
            "response_type": "code",
            "client_id": "spa",
            "redirect_uri": REDIRECT,
            "scope": "openid profile",
            "state": "st-1",
            "nonce": "n-1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        page = await http.get(document["authorization_endpoint"], params=params)
        assert page.status_code == 200 and '<form method="post" action="/api/v1/auth/authorize">' in page.text
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
        consent = await http.post(
            document["authorization_endpoint"], data={**fields, "username": "alice", "password": PASSWORD}
        )
        assert consent.status_code == 302, consent.text
        location = urlsplit(consent.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
        query = parse_qs(location.query)
        assert query["state"] == ["st-1"]
        exchange = {
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": REDIRECT,
            "client_id": "spa",
        }
        wrong = await http.post(document["token_endpoint"], data={**exchange, "code_verifier": pkce()[0]})
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
        consent = await http.post(
            document["authorization_endpoint"], data={**fields, "username": "alice", "password": PASSWORD}
        )
        exchange["code"] = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
        tokens = await http.post(document["token_endpoint"], data={**exchange, "code_verifier": verifier})
        assert tokens.status_code == 200, tokens.text
        id_token = jwt.decode(tokens.json()["id_token"], keys, algorithms=["RS256"])
        assert id_token.claims["iss"] == issuer and id_token.claims["nonce"] == "n-1"
        access = tokens.json()["access_token"]
        assert jwt.decode(access, keys, algorithms=["ES256"]).claims["iss"] == issuer

        # A principal's own things need a login and no permission.
        me = await http.get("/api/v1/auth/me", headers=bearer(access))
        assert me.status_code == 200, me.text
        assert me.json()["name"] == "alice" and me.json()["roles"] == []
        userinfo = await http.get(document["userinfo_endpoint"], headers=bearer(access))
        assert userinfo.json()["sub"] == id_token.claims["sub"]
        assert (await http.post("/api/v1/auth/turn", headers=bearer(access))).status_code == 200
        assert (await http.get("/api/v1/auth/me")).status_code == 401
        # The audit log needs auth.audit:read: 401 without credentials, 403 without the permission.
        anonymous = await http.get("/api/v1/auth/audit")
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
        forbidden = await http.get("/api/v1/auth/audit", headers=bearer(access))
        assert forbidden.status_code == 403 and "auth.audit:read is not allowed" in forbidden.text
        admin = await gateway.token("oper")
        records = await http.get("/api/v1/auth/audit", params={"principal": "alice"}, headers=bearer(admin))
        assert records.status_code == 200
        assert any(
            r["kind"] == "authz" and r["result"] == "deny" and r["resource"].startswith("auth.audit")
            for r in records.json()["records"]
        )

        # Logout is the principal's own: the gateway asks for a login first.
        assert (await http.post("/api/v1/auth/logout")).status_code == 401
        assert (await http.post("/api/v1/auth/logout", headers=bearer(access))).status_code == 200
        assert (await http.get("/api/v1/auth/me", headers=bearer(access))).status_code == 401


async def test_client_credentials_introspection_login_and_signalling(gateway: Node) -> None:
    auth = await aria.whereis("aria_auth").get()
    await auth.put_role("indexer", ["search:*", "webrtc.room:join"])
    await auth.add_service("indexer", roles=["indexer"])
    secret = await auth.register_client(
        "indexer-client", grant_types=["client_credentials"], service="indexer", scope="search"
    )
    resource_server = await auth.register_client(
        "resource-server", grant_types=["client_credentials"], service="indexer"
    )
    async with gateway.client() as http:
        issued = await http.post(
            "/api/v1/auth/token",
            data={"grant_type": "client_credentials", "scope": "search"},
            auth=("indexer-client", secret),
        )
        assert issued.status_code == 200, issued.text
        token = issued.json()["access_token"]
        me = (await http.get("/api/v1/auth/me", headers=bearer(token))).json()
        assert (me["name"], me["kind"], me["amr"]) == ("indexer", "service", ["client"])

        async def introspect(value: str, who: tuple[str, Any]) -> Any:
            return await http.post("/api/v1/auth/introspect", data={"token": value}, auth=who)

        info = (await introspect(token, ("resource-server", resource_server))).json()
        assert info["active"] and info["client_id"] == "indexer-client"
        assert info["iss"] == f"{gateway.url}/api/v1/auth"
        assert (await http.post("/api/v1/auth/introspect", data={"token": token})).status_code == 401
        revoked = await http.post(
            "/api/v1/auth/revoke", data={"token": token}, auth=("indexer-client", secret)
        )
        assert revoked.status_code == 200
        assert (await introspect(token, ("resource-server", resource_server))).json() == {"active": False}

        # First-party login and refresh are public; their tokens work at the gateway.
        tokens = await http.post("/api/v1/auth/login", json={"username": "reader", "password": PASSWORD})
        assert tokens.status_code == 200, tokens.text
        renewed = await http.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens.json()["refresh_token"]}
        )
        assert renewed.status_code == 200
        user_token = renewed.json()["access_token"]
        assert (await http.get("/api/v1/auth/me", headers=bearer(user_token))).json()["name"] == "reader"

    # The signalling socket is public at the gateway and authenticates inside its protocol.
    port = urlsplit(gateway.url).port
    assert port is not None
    context = ssl.create_default_context(cafile=gateway.ca_file)
    service_token = (await auth.issue_service_token("indexer")).access_token
    peer = await WebSocket.connect(port, "/api/v1/auth/webrtc/room-1", ssl_context=context)
    try:
        await peer.send({"type": "auth", "token": service_token})
        welcome = await peer.receive()
        assert welcome is not None and welcome["type"] == "welcome" and welcome["name"] == "indexer"
    finally:
        await peer.close()
    stranger = await WebSocket.connect(port, "/api/v1/auth/webrtc/room-1", ssl_context=context)
    try:
        await stranger.send({"type": "auth", "token": "not a token"})
        assert await stranger.receive() == {"type": "error", "error": "unauthenticated"}
        assert await stranger.receive() is None and stranger.close_code == 4401
    finally:
        await stranger.close()


async def test_the_issuer_follows_the_gateway_and_earlier_tokens_stay_valid(gateway: Node) -> None:
    """The gateway restarts on another picked port: discovery names the new URL, new tokens carry
    it, and tokens issued under the old one keep working until they expire."""
    async with gateway.client() as http:
        tokens = await http.post("/api/v1/auth/login", json={"username": "reader", "password": PASSWORD})
        before = tokens.json()["access_token"]
    keys = KeySet.import_key_set((await aria.whereis("aria_auth").get()).jwks())
    assert jwt.decode(before, keys, algorithms=["ES256"]).claims["iss"] == f"{gateway.url}/api/v1/auth"

    await gateway.system.restart_child("aria_coordinate/gateway")
    moved = await aria.whereis("aria_coordinate").get()
    assert moved.url != gateway.url  # port 0: a new port picked at the restart
    restarted = Node(gateway.system, moved.url, moved.ca_file)
    async with restarted.client() as http:
        document = (await http.get("/api/v1/auth/.well-known/openid-configuration")).json()
        assert document["issuer"] == f"{moved.url}/api/v1/auth"
        me = await http.get("/api/v1/auth/me", headers=bearer(before))
        assert me.status_code == 200 and me.json()["name"] == "reader"
        tokens = await http.post("/api/v1/auth/login", json={"username": "reader", "password": PASSWORD})
        after = tokens.json()["access_token"]
        assert jwt.decode(after, keys, algorithms=["ES256"]).claims["iss"] == document["issuer"]
        assert (await http.get("/api/v1/auth/me", headers=bearer(after))).status_code == 200
