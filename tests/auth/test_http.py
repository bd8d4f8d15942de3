"""aria_auth's routes served by hypercorn (trio worker) on loopback: OAuth 2.0 / OIDC flows and the
attacks against them, driven over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from aria.apps.auth.api import InvalidToken
from tests.auth.conftest import PASSWORD, Node, serving

REDIRECT = "http://127.0.0.1:9/callback"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(client_id: str, challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "state": "st-123",
        "nonce": "n-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


async def get_code(http: httpx.AsyncClient, client_id: str, challenge: str, **extra: str) -> str:
    params = authorize_params(client_id, challenge, **extra)
    response = await http.post("/authorize", data={**params, "username": "alice", "password": PASSWORD})
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["st-123"]
    return query["code"][0]


class TestDiscoveryAndLogin:
    async def test_discovery_jwks_login_and_bearer_routes(self, node: Node) -> None:
        await node.auth.add_user("alice", PASSWORD)
        async with serving(node) as http:
            document = (await http.get("/.well-known/openid-configuration")).json()
            metadata = OpenIDProviderMetadata(document)
            metadata.validate()  # every OpenID Connect discovery rule, RS256 for ID tokens included
            assert document["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]
            AuthorizationServerMetadata(
                (await http.get("/.well-known/oauth-authorization-server")).json()
            ).validate()
            assert document["issuer"] == node.issuer
            assert document["jwks_uri"] == f"{node.issuer}/jwks.json"
            keys = (await http.get("/jwks.json")).json()
            assert [(k["kid"], k["alg"], k["kty"]) for k in keys["keys"]] == [
                ("1", "ES256", "EC"),
                ("rsa-1", "RS256", "RSA"),
            ]

            response = await http.post("/login", json={"username": "alice", "password": PASSWORD})
            assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
            tokens = response.json()
            claims = jwt.decode(
                tokens["access_token"], KeySet.import_key_set(keys), algorithms=["ES256"]
            ).claims
            assert claims["name"] == "alice"
            me = await http.get("/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
            assert me.json()["name"] == "alice" and me.json()["amr"] == ["pwd"]
            assert (await http.get("/me")).status_code == 401
            bad = await http.get(
                "/me", headers={"Authorization": "Bearer " + tokens["access_token"][:-4] + "AAAA"}
            )
            assert bad.status_code == 401 and bad.json()["error"] == "invalid_token"

            turn = await http.post("/turn", headers={"Authorization": f"Bearer {tokens['access_token']}"})
            assert turn.status_code == 200 and turn.json()["username"].endswith(f":{claims['sub']}")

            refreshed = await http.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
            assert refreshed.status_code == 200
            replay = await http.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
            assert replay.status_code == 401
            bearer = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
            assert (await http.get("/me", headers=bearer)).status_code == 401  # the family was revoked

            wrong = await http.post("/login", json={"username": "alice", "password": "nope nope nope"})
            unknown = await http.post("/login", json={"username": "zed", "password": "nope nope nope"})
            assert wrong.status_code == unknown.status_code == 401
            assert (
                wrong.json()
                == unknown.json()
                == {
                    "error": "invalid_credentials",
                    "error_description": "invalid user name or password",
                }
            )
            for _ in range(4):
                await http.post("/login", json={"username": "alice", "password": "nope nope nope"})
            locked = await http.post("/login", json={"username": "alice", "password": PASSWORD})
            assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 800
            assert (await http.post("/login", content=b"not json")).status_code == 400


class TestAuthorizationCode:
    async def test_code_flow_with_pkce_id_token_refresh_and_revocation(self, node: Node) -> None:
        await node.auth.add_user("alice", PASSWORD)
        assert await node.auth.register_client("spa", redirect_uris=[REDIRECT], public=True) is None
        verifier, challenge = pkce()
        async with serving(node) as http:
            page = await http.get("/authorize", params=authorize_params("spa", challenge))
            assert page.status_code == 200 and 'name="password"' in page.text
            assert 'name="code_challenge" value="' + challenge in page.text
            assert '<form method="post" action="/authorize">' in page.text
            # What a browser sends back: the form's fields (OAuth parameters once, as hidden fields).
            fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
            assert fields == authorize_params("spa", challenge)

            code = await get_code(http, "spa", challenge)
            response = await http.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT,
                    "client_id": "spa",
                    "code_verifier": verifier,
                },
            )
            assert response.status_code == 200, response.text
            tokens = response.json()
            assert tokens["token_type"] == "Bearer" and tokens["scope"] == "openid profile"
            keys = KeySet.import_key_set((await http.get("/jwks.json")).json())
            id_token = jwt.decode(tokens["id_token"], keys, algorithms=["RS256"])  # OIDC's default
            assert id_token.header == {"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}
            assert jwt.decode(tokens["access_token"], keys, algorithms=["ES256"]).header["alg"] == "ES256"
            assert id_token.claims["aud"] == "spa" and id_token.claims["nonce"] == "n-456"
            assert id_token.claims["iss"] == node.issuer and id_token.claims["preferred_username"] == "alice"
            principal = await node.auth.verify_token(tokens["access_token"])
            assert principal.name == "alice" and principal.claims["client_id"] == "spa"
            with pytest.raises(InvalidToken, match="algorithm 'RS256' is not allowed"):
                await node.auth.verify_token(tokens["id_token"])  # an ID token is not an access token
            userinfo = await http.get(
                "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
            )
            assert userinfo.json()["sub"] == principal.id

            again = await http.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT,
                    "client_id": "spa",
                    "code_verifier": verifier,
                },
            )
            assert (
                again.status_code == 400 and again.json()["error"] == "invalid_grant"
            )  # codes are single-use

            refresh = {
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": "spa",
            }
            renewed = await http.post("/token", data=refresh)
            assert renewed.status_code == 200, renewed.text
            assert renewed.json()["refresh_token"] != tokens["refresh_token"]
            assert jwt.decode(renewed.json()["id_token"], keys, algorithms=["RS256"]).claims["aud"] == "spa"
            replayed = await http.post("/token", data=refresh)
            assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"
            with pytest.raises(InvalidToken, match="revoked"):  # reuse revoked the family's access token
                await node.auth.verify_token(renewed.json()["access_token"])

            second = await get_code(http, "spa", challenge)
            fresh = (
                await http.post(
                    "/token",
                    data={
                        "grant_type": "authorization_code",
                        "code": second,
                        "redirect_uri": REDIRECT,
                        "client_id": "spa",
                        "code_verifier": verifier,
                    },
                )
            ).json()
            revoked = await http.post("/revoke", data={"token": fresh["access_token"], "client_id": "spa"})
            assert revoked.status_code == 200
            with pytest.raises(InvalidToken, match="revoked"):
                await node.auth.verify_token(fresh["access_token"])

            # A bearer token (an existing session) authorises without the password form.
            login = await node.auth.login("alice", PASSWORD)
            third = await http.get(
                "/authorize",
                params=authorize_params("spa", challenge),
                headers={"Authorization": f"Bearer {login.access_token}"},
            )
            assert third.status_code == 302 and "code=" in third.headers["location"]

    async def test_a_client_may_prefer_es256_id_tokens(self, node: Node) -> None:
        await node.auth.add_user("alice", PASSWORD)
        with pytest.raises(
            ValueError, match=r"ID tokens are signed with one of \['RS256', 'ES256'\], not 'HS256'"
        ):
            await node.auth.register_client(
                "bad", redirect_uris=[REDIRECT], id_token_signed_response_alg="HS256"
            )
        secret = await node.auth.register_client(
            "compact", redirect_uris=[REDIRECT], id_token_signed_response_alg="ES256"
        )
        verifier, challenge = pkce()
        async with serving(node) as http:
            code = await get_code(http, "compact", challenge)
            response = await http.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT,
                    "code_verifier": verifier,
                },
                auth=("compact", secret),
            )
            assert response.status_code == 200, response.text
            keys = KeySet.import_key_set((await http.get("/jwks.json")).json())
            id_token = jwt.decode(response.json()["id_token"], keys, algorithms=["ES256"])
            assert id_token.header == {"alg": "ES256", "kid": "1", "typ": "JWT"}
            assert id_token.claims["nonce"] == "n-456" and id_token.claims["aud"] == "compact"
            with pytest.raises(JoseError):  # not what an RS256-only relying party accepts
                jwt.decode(response.json()["id_token"], keys, algorithms=["RS256"])
            with pytest.raises(InvalidToken, match=r"token type 'JWT' is not 'at\+jwt'"):
                await node.auth.verify_token(response.json()["id_token"])

    async def test_attacks_on_the_code_flow(self, node: Node) -> None:
        await node.auth.add_user("alice", PASSWORD)
        await node.auth.register_client("spa", redirect_uris=[REDIRECT], public=True)
        web_secret = await node.auth.register_client("web", redirect_uris=[REDIRECT])
        verifier, challenge = pkce()
        async with serving(node) as http:
            # Unregistered redirect URIs are refused without redirecting anywhere.
            for uri in (
                "https://evil.test/cb",
                REDIRECT + "/../evil",
                REDIRECT + "?x=1",
                "http://127.0.0.1:9/callbac",
            ):
                response = await http.post(
                    "/authorize",
                    data={
                        **authorize_params("spa", challenge, redirect_uri=uri),
                        "username": "alice",
                        "password": PASSWORD,
                    },
                )
                assert response.status_code == 400, uri
                assert "location" not in response.headers
                assert response.json()["error"] == "invalid_request"
            unknown_client = await http.get("/authorize", params=authorize_params("nobody", challenge))
            assert unknown_client.status_code == 400 and "location" not in unknown_client.headers

            # A public client must use PKCE, with S256.
            no_pkce = {
                k: v for k, v in authorize_params("spa", challenge).items() if not k.startswith("code_")
            }
            code = await http.post("/authorize", data={**no_pkce, "username": "alice", "password": PASSWORD})
            code_value = parse_qs(urlsplit(code.headers["location"]).query)["code"][0]
            missing = await http.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code_value,
                    "redirect_uri": REDIRECT,
                    "client_id": "spa",
                },
            )
            assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
            plain = await http.get(
                "/authorize", params=authorize_params("spa", verifier, code_challenge_method="plain")
            )
            assert plain.status_code == 302 and "error=invalid_request" in plain.headers["location"]

            # PKCE mismatch: a stolen code is useless without the verifier.
            code_value = await get_code(http, "spa", challenge)
            mismatch = await http.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code_value,
                    "redirect_uri": REDIRECT,
                    "client_id": "spa",
                    "code_verifier": pkce()[0],
                },
            )
            assert mismatch.status_code == 400 and mismatch.json() == {
                "error": "invalid_grant",
                "error_description": "Code challenge failed.",
            }
            retry = await http.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code_value,
                    "redirect_uri": REDIRECT,
                    "client_id": "spa",
                    "code_verifier": verifier,
                },
            )
            assert retry.status_code == 400  # the failed attempt used the code up

            # A code issued to one client cannot be redeemed by another, nor with a wrong secret.
            code_value = await get_code(http, "spa", challenge)
            stolen = await http.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code_value,
                    "redirect_uri": REDIRECT,
                    "code_verifier": verifier,
                },
                auth=("web", web_secret),
            )
            assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
            wrong_secret = await http.post(
                "/token",
                data={"grant_type": "client_credentials"},
                auth=("web", "not the secret"),
            )
            assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
            # Wrong user credentials at the authorization endpoint: the generic answer.
            failed = await http.post(
                "/authorize",
                data={
                    **authorize_params("spa", challenge),
                    "username": "alice",
                    "password": "wrong password!",
                },
                headers={"Accept": "application/json"},
            )
            assert failed.status_code == 401 and failed.json()["error"] == "invalid_credentials"


class TestServiceClients:
    async def test_client_credentials_introspection_and_revocation(self, node: Node) -> None:
        auth = node.auth
        await auth.put_role("indexer", ["search:*"])
        await auth.add_service("indexer", roles=["indexer"])
        secret = await auth.register_client(
            "indexer-client", grant_types=["client_credentials"], service="indexer", scope="search"
        )
        resource_server = await auth.register_client(
            "api-gateway", grant_types=["client_credentials"], service="indexer"
        )
        with pytest.raises(ValueError, match="client_credentials needs service="):
            await auth.register_client("broken", grant_types=["client_credentials"])
        with pytest.raises(ValueError, match="must be absolute http"):
            await auth.register_client("broken", redirect_uris=["javascript:alert(1)"])
        async with serving(node) as http:
            issued = await http.post(
                "/token",
                data={"grant_type": "client_credentials", "scope": "search"},
                auth=("indexer-client", secret),
            )
            assert issued.status_code == 200, issued.text
            token = issued.json()
            assert "refresh_token" not in token and token["scope"] == "search"
            principal = await auth.verify_token(token["access_token"])
            assert (principal.name, principal.kind, principal.amr) == ("indexer", "service", ("client",))
            assert await auth.authorize(principal, "query", "search/docs")

            async def introspect(value: str, who: tuple[str, Any] = ("api-gateway", resource_server)) -> Any:
                return await http.post("/introspect", data={"token": value}, auth=who)

            info = (await introspect(token["access_token"])).json()
            assert info["active"] and info["client_id"] == "indexer-client" and info["username"] == "indexer"
            assert (await introspect("garbage")).json() == {"active": False}
            assert (await http.post("/introspect", data={"token": token["access_token"]})).status_code == 401
            # RFC 7009: only the client the token was issued to may revoke it.
            other = await http.post(
                "/revoke", data={"token": token["access_token"]}, auth=("api-gateway", resource_server)
            )
            assert other.status_code == 400
            assert (await introspect(token["access_token"])).json()["active"]
            own = await http.post(
                "/revoke", data={"token": token["access_token"]}, auth=("indexer-client", secret)
            )
            assert own.status_code == 200
            assert (await introspect(token["access_token"])).json() == {"active": False}
            unknown = await http.post("/revoke", data={"token": "whatever"}, auth=("indexer-client", secret))
            assert unknown.status_code == 200  # RFC 7009: no error for tokens that are not valid
