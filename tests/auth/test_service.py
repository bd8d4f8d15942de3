"""aria_auth's service on a real node: OpenBao signs the tokens, PostgreSQL keeps the state."""

from __future__ import annotations

import base64
import json
from typing import Any

import pyotp
import pytest
import trio
from click.testing import CliRunner
from joserfc import jwt
from joserfc.jwk import KeySet

from aria.apps.auth.api import (
    InvalidCredentials,
    InvalidToken,
    MfaRequired,
    RefreshTokenReused,
    Resource,
    TooManyAttempts,
    UnknownRole,
)
from aria.apps.auth.cli import cli
from aria.apps.security.api import AppSecrets
from tests.auth.conftest import PASSWORD, Node

NOW = 1_900_000_000.0


def header(token: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))


async def audit(node: Node, **filters: Any) -> list[dict[str, Any]]:
    return await node.auth.audit(**filters)


class TestLogin:
    async def test_login_verify_and_one_generic_error_for_every_failure(self, node: Node) -> None:
        auth = node.auth
        await auth.put_role("reader", ["notes:read"])
        await auth.add_user("alice", PASSWORD, tenant="t1", roles=["reader"])
        await auth.add_user("dora", PASSWORD)
        await auth.disable("dora")
        tokens = await auth.login("alice", PASSWORD, ip="192.0.2.1", request_id="req-ok")
        principal = await auth.verify_token(tokens.access_token)
        assert (principal.name, principal.tenant, principal.roles, principal.amr) == (
            "alice",
            "t1",
            ("reader",),
            ("pwd",),
        )
        assert tokens.refresh_token and tokens.refresh_token.startswith("aria_rt_")
        messages = set()
        for name, password, rid in [
            ("alice", "wrong password!!", "req-1"),
            ("nobody", PASSWORD, "req-2"),
            ("dora", PASSWORD, "req-3"),
            ("bad name with spaces", PASSWORD, "req-4"),
        ]:
            with pytest.raises(InvalidCredentials) as failure:
                await auth.login(name, password, ip="192.0.2.1", request_id=rid)
            messages.add(str(failure.value))
        assert messages == {"invalid user name or password"}
        reasons = {r["request_id"]: r["reason"] for r in await audit(node, kind="authn", limit=20)}
        assert reasons["req-ok"] == "pwd"
        assert reasons["req-1"] == "wrong password"
        assert reasons["req-2"] == "unknown user"
        assert reasons["req-3"] == "account disabled"
        with pytest.raises(ValueError, match="at least 12 characters"):
            await auth.add_user("eve", "short")
        with pytest.raises(ValueError, match="exists already"):
            await auth.add_user("alice", PASSWORD)
        with pytest.raises(UnknownRole, match="no role named 'ghost'"):
            await auth.add_user("frank", PASSWORD, roles=["ghost"])
        assert (await auth.principal("alice"))["roles"] == ["reader"]  # nothing half-created

    async def test_account_lockout_then_release(self, node: Node) -> None:
        auth = node.auth
        auth.clock = lambda: NOW
        await auth.add_user("alice", PASSWORD)
        for _ in range(5):
            with pytest.raises(InvalidCredentials):
                await auth.login("alice", "wrong password!!", ip=f"198.51.100.{_}")
        with pytest.raises(TooManyAttempts) as locked:
            await auth.login("alice", PASSWORD, ip="198.51.100.99")  # even the right password
        assert locked.value.retry_after == pytest.approx(900)
        # An unknown name locks the same way, so lockouts do not reveal which accounts exist.
        for _ in range(5):
            with pytest.raises(InvalidCredentials):
                await auth.login("ghost", "wrong password!!")
        with pytest.raises(TooManyAttempts):
            await auth.login("ghost", "wrong password!!")
        auth.clock = lambda: NOW + 901
        assert (await auth.login("alice", PASSWORD)).access_token
        reasons = [r["reason"] for r in await audit(node, principal="alice", kind="authn", limit=20)]
        assert "wrong password; account locked for 900 s" in reasons and "account locked out" in reasons

    async def test_per_address_throttling(self, node: Node) -> None:
        auth = node.auth
        auth.clock = lambda: NOW
        await auth.add_user("alice", PASSWORD)
        for n in range(20):  # spraying many names from one address
            with pytest.raises(InvalidCredentials):
                await auth.login(f"user{n}", "wrong password!!", ip="203.0.113.5")
        with pytest.raises(TooManyAttempts):
            await auth.login("alice", PASSWORD, ip="203.0.113.5")
        assert (await auth.login("alice", PASSWORD, ip="203.0.113.6")).access_token
        auth.clock = lambda: NOW + 901
        assert (await auth.login("alice", PASSWORD, ip="203.0.113.5")).access_token


class TestTokens:
    async def test_openbao_signs_and_rotation_keeps_old_tokens_valid(self, node: Node) -> None:
        auth = node.auth
        await auth.add_user("alice", PASSWORD)
        first = (await auth.login("alice", PASSWORD)).access_token
        assert header(first) == {"alg": "ES256", "kid": "1", "typ": "at+jwt"}
        # The published key verifies it with plain joserfc; OpenBao agrees it signed it.
        claims = jwt.decode(first, KeySet.import_key_set(auth.jwks()), algorithms=["ES256"]).claims
        assert claims["iss"] == node.issuer and claims["aud"] == "aria"
        signing_input, signature = first.rsplit(".", 1)
        secrets = AppSecrets(node.system.whereis("aria_security"), "aria_auth")
        assert await secrets.verify("jwt", signing_input.encode(), f"vault:v1:{signature}")
        assert "private" not in json.dumps(await secrets.read_key("jwt")).lower()

        assert await auth.rotate_signing_key() == 2
        second = (await auth.login("alice", PASSWORD)).access_token
        assert header(second)["kid"] == "2"
        assert [k["kid"] for k in auth.jwks()["keys"]] == ["2", "1", "rsa-2", "rsa-1"]
        assert (await auth.verify_token(first)).name == "alice"  # no downtime for tokens in flight
        assert (await auth.verify_token(second)).name == "alice"

        await auth.rotate_signing_key()
        assert [k["kid"] for k in auth.jwks()["keys"]] == ["3", "2", "rsa-3", "rsa-2"]
        with pytest.raises(InvalidToken, match="unknown key id '1'"):
            await auth.verify_token(first)
        assert (await auth.verify_token(second)).name == "alice"

    async def test_a_replayed_refresh_token_revokes_its_family(self, node: Node) -> None:
        auth = node.auth
        await auth.add_user("alice", PASSWORD)
        first = await auth.login("alice", PASSWORD)
        second = await auth.refresh(first.refresh_token)
        third = await auth.refresh(second.refresh_token)
        assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
        assert (await auth.verify_token(third.access_token)).name == "alice"
        other_session = await auth.login("alice", PASSWORD)

        with pytest.raises(RefreshTokenReused):
            await auth.refresh(first.refresh_token)  # stolen and replayed
        with pytest.raises(InvalidToken, match="refresh token revoked"):
            await auth.refresh(third.refresh_token)  # the legitimate holder's is dead too
        with pytest.raises(InvalidToken, match="revoked"):
            await auth.verify_token(third.access_token)  # and its latest access token
        assert (await auth.refresh(other_session.refresh_token)).access_token  # other families live on
        with pytest.raises(InvalidToken, match="unknown refresh token"):
            await auth.refresh("aria_rt_" + "A" * 43)
        with pytest.raises(InvalidToken, match="not a refresh token"):
            await auth.refresh(third.access_token)
        reasons = [r["reason"] for r in await audit(node, kind="token", result="failure")]
        assert any(r.startswith("refresh token reused: family") for r in reasons)

    async def test_revocation_list_is_checked_and_shared_through_the_database(self, node: Node) -> None:
        auth = node.auth
        auth.clock = lambda: NOW
        await auth.add_user("alice", PASSWORD)
        tokens = await auth.login("alice", PASSWORD)
        keep = await auth.login("alice", PASSWORD)
        assert await auth.revoke_token(tokens.access_token)
        with pytest.raises(InvalidToken, match="revoked"):
            await auth.verify_token(tokens.access_token)
        auth.verifier.revoked_jtis.clear()  # what another node starts with
        await auth.reload()
        with pytest.raises(InvalidToken, match="revoked"):
            await auth.verify_token(tokens.access_token)
        assert (await auth.verify_token(keep.access_token)).name == "alice"
        assert not await auth.revoke_token("not a token")

        await auth.disable("alice")
        with pytest.raises(InvalidToken, match="revoked"):
            await auth.verify_token(keep.access_token)
        with pytest.raises(InvalidToken, match="revoked"):
            await auth.refresh(keep.refresh_token)
        await auth.enable("alice")
        auth.clock = lambda: NOW + 1  # a token issued after the cutoff is good again
        fresh = await auth.login("alice", PASSWORD)
        assert (await auth.verify_token(fresh.access_token)).name == "alice"

    async def test_introspection_view(self, node: Node) -> None:
        auth = node.auth
        await auth.add_user("alice", PASSWORD)
        tokens = await auth.login("alice", PASSWORD)
        info = await auth.introspect(tokens.access_token)
        assert info["active"] and info["username"] == "alice" and info["iss"] == node.issuer
        refresh_info = await auth.introspect(tokens.refresh_token)
        assert refresh_info["active"] and refresh_info["token_type"] == "refresh_token"
        await auth.refresh(tokens.refresh_token)
        assert await auth.introspect(tokens.refresh_token) == {"active": False}
        assert await auth.introspect("garbage") == {"active": False}


class TestMfa:
    async def test_totp_enrolment_adaptive_policy_replay_and_recovery(self, node: Node) -> None:
        auth = node.auth
        auth.clock = lambda: NOW
        await auth.add_user("root", PASSWORD, roles=["admin"])
        with pytest.raises(MfaRequired) as needed:
            await auth.login("root", PASSWORD)  # admin roles require a second factor
        assert needed.value.enrolment
        enrolment = await auth.enrol_totp("root")
        assert enrolment["uri"].startswith("otpauth://totp/Aria:root?secret=")
        totp = pyotp.TOTP(enrolment["secret"])
        with pytest.raises(InvalidCredentials):
            await auth.confirm_totp("root", "000000" if totp.at(NOW) != "000000" else "111111")
        recovery = await auth.confirm_totp("root", totp.at(NOW))
        assert len(recovery) == 10

        with pytest.raises(MfaRequired) as needed:
            await auth.login("root", PASSWORD)
        assert not needed.value.enrolment
        with pytest.raises(InvalidCredentials, match="invalid one-time code"):
            await auth.login("root", PASSWORD, otp=totp.at(NOW))  # used for the confirmation: replay
        auth.clock = lambda: NOW + 30
        tokens = await auth.login("root", PASSWORD, otp=totp.at(NOW + 30))
        principal = await auth.verify_token(tokens.access_token)
        assert principal.amr == ("pwd", "otp") and principal.mfa
        with pytest.raises(InvalidCredentials, match="invalid one-time code"):
            await auth.login("root", PASSWORD, otp=totp.at(NOW + 30))  # replay within the same step
        assert await auth.authorize(principal, "delete", Resource("storage", "x"))

        auth.clock = lambda: NOW + 60
        by_recovery = await auth.login("root", PASSWORD, otp=recovery[0])
        assert (await auth.verify_token(by_recovery.access_token)).amr == ("pwd", "otp", "recovery")
        with pytest.raises(InvalidCredentials):
            await auth.login("root", PASSWORD, otp=recovery[0])
        assert await auth.recovery_codes_left("root") == 9
        # A wrong password never reaches the second factor, and says nothing about it.
        with pytest.raises(InvalidCredentials, match="invalid user name or password"):
            await auth.login("root", "wrong password!!", otp=totp.at(NOW + 60))
        # The secret is stored encrypted by aria_security, never in plain text.
        stored = await node.system.whereis("aria_data").fetchval(
            "SELECT totp_secret FROM auth_principals WHERE name = 'root'"
        )
        assert stored.startswith("vault:v1:") and enrolment["secret"] not in stored


class TestAuthorisation:
    async def test_groups_roles_abac_and_the_audit_trail(self, node: Node) -> None:
        auth = node.auth
        await auth.put_role(
            "editor",
            ["notes:read", {"permission": "notes:write", "when": {"owner": True, "ip": ["10.0.0.0/8"]}}],
        )
        await auth.add_group("writers")
        bob = await auth.add_user("bob", PASSWORD, tenant="t1")
        await auth.add_to_group("writers", "bob")
        await auth.grant_role("editor", group="writers")
        assert (await auth.principal("bob"))["roles"] == ["editor"]
        principal = await auth.verify_token((await auth.login("bob", PASSWORD)).access_token)
        own = Resource("notes", "n1", owner=bob["id"])
        decision = await auth.authorize(principal, "write", own, {"ip": "10.2.3.4", "request_id": "rq-1"})
        assert decision.allowed and decision.role == "editor"
        decision = await auth.authorize(principal, "write", own, {"ip": "192.0.2.1", "request_id": "rq-2"})
        assert not decision and "the request comes from 10.0.0.0/8" in decision.reason
        decision = await auth.authorize(principal, "delete", "notes/n1", {"request_id": "rq-3"})
        assert not decision and "deny by default" in decision.reason
        records = await audit(node, request_id="rq-2")
        assert len(records) == 1
        assert records[0]["kind"] == "authz" and records[0]["result"] == "deny"
        assert (records[0]["principal"], records[0]["action"], records[0]["resource"]) == (
            "bob",
            "write",
            "notes/n1",
        )
        assert records[0]["ip"] == "192.0.2.1" and "10.0.0.0/8" in records[0]["reason"]
        assert [r["result"] for r in await audit(node, principal="bob", kind="authz")] == [
            "deny",
            "deny",
            "allow",
        ]

        await auth.remove_from_group("writers", "bob")
        assert (await auth.principal("bob"))["roles"] == []
        with pytest.raises(ValueError, match="give exactly one"):
            await auth.grant_role("editor")
        with pytest.raises(TypeError, match="must be a Principal"):
            await auth.authorize({"sub": "bob"}, "read", "notes")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="audit query limit"):
            await auth.audit(limit=0)

    async def test_api_tokens_and_service_identities(self, node: Node) -> None:
        auth = node.auth
        await auth.put_role("reporter", ["reports:read"])
        await auth.add_service("reporting", roles=["reporter"])
        token, token_id = await auth.create_api_token("reporting", "nightly")
        principal = await auth.verify_api_token(token)
        assert (principal.name, principal.kind, principal.amr) == ("reporting", "service", ("api_token",))
        assert await auth.authorize(principal, "read", Resource("reports"))
        stored = await node.system.whereis("aria_data").fetchval("SELECT token_hash FROM auth_api_tokens")
        assert token not in stored and len(stored) == 64
        await auth.revoke_api_token(token_id)
        with pytest.raises(InvalidToken, match="API token revoked"):
            await auth.verify_api_token(token)
        with pytest.raises(InvalidToken, match="unknown API token"):
            await auth.verify_api_token("aria_pat_" + "x" * 43)
        # Every app has its service identity and can get a token for it.
        names = {p["name"] for p in await auth.principals("service")}
        assert {"aria_data", "aria_storage", "aria_coordinate"} <= names
        service_token = await auth.issue_service_token("aria_queue")
        assert service_token.refresh_token is None
        assert (await auth.verify_token(service_token.access_token)).kind == "service"
        await auth.add_user("alice", PASSWORD)
        with pytest.raises(ValueError, match="'alice' is not an enabled service identity"):
            await auth.issue_service_token("alice")


class TestCommands:
    async def test_aria_auth_commands_act_on_the_running_node(self, node: Node) -> None:
        config = node.system.config
        socket_path = str(config.control_socket)

        def invoke(*args: str, stdin: str | None = None) -> Any:
            runner = CliRunner()
            return runner.invoke(
                cli,
                list(args),
                input=stdin,
                env={"ARIA_CONTROL__SOCKET": socket_path},
                catch_exceptions=False,
            )

        async def run(*args: str, stdin: str | None = None) -> Any:
            return await trio.to_thread.run_sync(lambda: invoke(*args, stdin=stdin))

        result = await run(
            "role",
            "put",
            "editor",
            "--permission",
            "notes:*",
            "--permission",
            '{"permission": "files:write", "when": {"owner": true}}',
        )
        assert result.exit_code == 0, result.output
        result = await run(
            "user", "add", "carol", "--password-stdin", "--role", "editor", stdin=f"{PASSWORD}\n"
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["roles"] == ["editor"]
        assert (await node.auth.login("carol", PASSWORD)).access_token
        result = await run("user", "passwd", "carol", "--password-stdin", stdin="another long password\n")
        assert result.exit_code == 0, result.output
        with pytest.raises(InvalidCredentials):
            await node.auth.login("carol", PASSWORD)
        assert (await node.auth.login("carol", "another long password")).access_token
        result = await run("user", "disable", "carol")
        assert result.exit_code == 0 and "carol disabled" in result.output
        with pytest.raises(InvalidCredentials):
            await node.auth.login("carol", "another long password")
        result = await run("role", "list")
        assert 'editor: notes:*, {"permission": "files:write", "when": {"owner": true}}' in result.output
        result = await run("user", "add", "dave", "--password-stdin", stdin="short\n")
        assert result.exit_code == 1 and "must have at least 12 characters" in result.output
        result = await run("audit", "--principal", "carol", "--kind", "authn")
        assert result.exit_code == 0 and "account disabled" in result.output
        result = await run("key", "rotate")
        assert result.exit_code == 0 and "version 2" in result.output


class TestRecovery:
    async def test_verification_and_authorisation_outlive_a_database_outage(self, node: Node) -> None:
        auth = node.auth
        await auth.put_role("reader", ["notes:read"])
        await auth.add_user("alice", PASSWORD, roles=["reader"])
        tokens = await auth.login("alice", PASSWORD)
        await node.system.terminate_child("aria_data/postgres")
        principal = await auth.verify_token(tokens.access_token)  # cached keys and revocation list
        decision = await auth.authorize(principal, "read", "notes/n1", {"request_id": "during-outage"})
        assert decision.allowed
        assert auth.audit_log.pending >= 1  # kept for later, not lost and not blocking
        await node.system.restart_child("aria_data/postgres")
        with trio.fail_after(60):
            records = await auth.audit(request_id="during-outage")
        assert [(r["principal"], r["result"]) for r in records] == [("alice", "allow")]

    async def test_a_crashed_service_restarts_with_its_state(self, node: Node) -> None:
        await node.auth.add_user("alice", PASSWORD)
        tokens = await node.auth.login("alice", PASSWORD)
        await node.auth.revoke_token(tokens.access_token)
        await node.system.kill_child("aria_auth/service")
        with trio.fail_after(60):
            restarted = await node.system.whereis("aria_auth").get()
        assert restarted is not node.auth
        with pytest.raises(InvalidToken, match="revoked"):
            await restarted.verify_token(tokens.access_token)  # the revocation list came back
        fresh = await restarted.login("alice", PASSWORD)
        assert (await restarted.verify_token(fresh.access_token)).name == "alice"
        assert (await restarted.health())["ok"]


async def test_audit_records_older_than_the_retention_are_pruned(node: Node) -> None:
    auth = node.auth
    auth.clock = lambda: NOW - 100 * 86400
    auth.audit_log.record("admin", "success", action="old")
    auth.clock = lambda: NOW
    auth.audit_log.record("admin", "success", action="recent")
    await auth.audit_log.flush()
    await auth.store.prune(NOW, auth.settings.audit_retention_days * 86400)
    assert [r["action"] for r in await auth.audit(kind="admin") if r["action"] in ("old", "recent")] == [
        "recent"
    ]
