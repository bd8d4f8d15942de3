"""Federation: log in to one aria node through another acting as the external OIDC provider (each
with its own OpenBao, database and signing key, serving its routes on its own loopback port)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from aria.apps.auth.api import InvalidCredentials
from tests.auth.conftest import PASSWORD, running_node, serving


async def test_login_through_an_external_oidc_provider(auth_dir: Path, upstream_dir: Path) -> None:
    async with running_node(upstream_dir) as upstream, running_node(auth_dir) as local:
        callback = f"{local.issuer}/federation/upstream/callback"
        await upstream.auth.add_user("alice", PASSWORD)
        secret = await upstream.auth.register_client("downstream", redirect_uris=[callback])
        assert secret is not None
        await local.auth.add_federation_provider(
            "upstream", issuer=upstream.issuer, client_id="downstream", client_secret=secret
        )
        async with serving(upstream) as provider, serving(local) as here:

            async def federated_login() -> tuple[str, dict[str, str]]:
                start = await here.get("/federation/upstream/login")
                assert start.status_code == 302
                location = urlsplit(start.headers["location"])
                assert f"{location.scheme}://{location.netloc}" == upstream.issuer
                query = {k: v[0] for k, v in parse_qs(location.query).items()}
                assert query["code_challenge_method"] == "S256" and query["redirect_uri"] == callback
                consent = await provider.post(
                    location.path, data={**query, "username": "alice", "password": PASSWORD}
                )
                assert consent.status_code == 302, consent.text
                back = urlsplit(consent.headers["location"])
                assert f"{back.scheme}://{back.netloc}{back.path}" == callback
                return f"{back.path}?{back.query}", query

            path, _ = await federated_login()
            finished = await here.get(path)
            assert finished.status_code == 200, finished.text
            principal = await local.auth.verify_token(finished.json()["access_token"])
            assert principal.name == "upstream:alice" and principal.amr == ("fed",)
            # The upstream's tokens mean nothing here: different issuer, different keys.
            upstream_tokens = await upstream.auth.login("alice", PASSWORD)
            assert (
                await here.get("/me", headers={"Authorization": f"Bearer {upstream_tokens.access_token}"})
            ).status_code == 401

            replayed = await here.get(path)  # the state is single-use
            assert replayed.status_code == 401

            path, _ = await federated_login()
            again = await here.get(path)
            assert (await local.auth.verify_token(again.json()["access_token"])).id == principal.id  # linked
            names = [p["name"] for p in await local.auth.principals("user")]
            assert names.count("upstream:alice") == 1

            path, _ = await federated_login()
            forged_state = path.replace("state=", "state=x")
            assert (await here.get(forged_state)).status_code == 401
            denied = await here.get("/federation/upstream/callback", params={"error": "access_denied"})
            assert denied.status_code == 401
            assert (await here.get("/federation/nowhere/login")).status_code == 404

        reasons = [r["reason"] for r in await local.auth.audit(kind="authn", result="failure")]
        assert "unknown or expired state" in reasons
        with pytest.raises(InvalidCredentials):
            await local.auth.login("upstream:alice", PASSWORD)  # a federated user has no local password
