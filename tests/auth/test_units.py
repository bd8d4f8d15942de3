"""aria_auth's parts that need no node: the policy, token verification against forged tokens,
password hashing and throttling, TOTP and TURN credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pyotp
import pytest
import trio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from aria.apps.auth import mfa
from aria.apps.auth.errors import InvalidToken
from aria.apps.auth.issuer import issuer_source
from aria.apps.auth.passwords import Argon2Parameters, Passwords, Throttle
from aria.apps.auth.policy import Grant, Policy, Principal, Resource, Role
from aria.apps.auth.tokens import ID_TYPE, KeyRing, TokenMinter, TokenVerifier, b64url
from aria.apps.auth.turn import check_turn_credentials, turn_credentials

ISSUER = "https://aria.test/api/v1/auth"
NOW = 1_800_000_000.0


# ---- policy ----------------------------------------------------------------------------------


def alice(*roles: str, amr: tuple[str, ...] = ("pwd",), tenant: str = "t1") -> Principal:
    return Principal(id="u-alice", name="alice", tenant=tenant, roles=roles, amr=amr)


POLICY = Policy(
    [
        Role.build("reader", ["notes:read", "storage.*:read"]),
        Role.build("editor", [{"permission": "notes:write", "when": {"owner": True}}]),
        Role.build("tenant-admin", [{"permission": "*:*", "when": {"tenant": True}}]),
        Role.build("office", [{"permission": "reports:*", "when": {"ip": ["10.0.0.0/8"], "hours": [8, 18]}}]),
        Role.build("weekday", [{"permission": "payroll:run", "when": {"weekdays": [0, 1, 2, 3, 4]}}]),
        Role.build("admin", ["*:*"], require_mfa=True),
    ]
)


class TestPolicy:
    def test_deny_by_default(self) -> None:
        decision = POLICY.decide(alice(), "read", Resource("notes", "n1"))
        assert not decision
        assert decision.reason == "denied: alice has no roles (deny by default)"
        decision = POLICY.decide(alice("reader"), "delete", Resource("notes", "n1"))
        assert not decision
        assert decision.reason == "denied: no role of alice grants notes:delete (deny by default)"

    def test_rbac_permissions_with_wildcards(self) -> None:
        decision = POLICY.decide(alice("reader"), "read", Resource("notes"))
        assert decision.allowed and decision.role == "reader" and decision.permission == "notes:read"
        assert POLICY.decide(alice("reader"), "read", Resource("storage.chunks", "c1"))
        assert not POLICY.decide(alice("reader"), "write", Resource("storage.chunks", "c1"))
        assert not POLICY.decide(alice("reader"), "read", Resource("storagex"))

    def test_owner_condition(self) -> None:
        mine = Resource("notes", "n1", owner="u-alice")
        theirs = Resource("notes", "n2", owner="u-bob")
        assert POLICY.decide(alice("editor"), "write", mine)
        decision = POLICY.decide(alice("editor"), "write", theirs)
        assert not decision
        assert "grants notes:write only when the subject owns the resource" in decision.reason
        assert not POLICY.decide(alice("editor"), "write", Resource("notes", "n3"))  # no owner: no

    def test_tenant_condition(self) -> None:
        assert POLICY.decide(alice("tenant-admin"), "delete", Resource("notes", "x", tenant="t1"))
        decision = POLICY.decide(alice("tenant-admin"), "delete", Resource("notes", "x", tenant="t2"))
        assert not decision and "the resource is in the subject's tenant" in decision.reason
        # A subject without a tenant does not match resources without one either.
        assert not POLICY.decide(alice("tenant-admin", tenant=""), "delete", Resource("notes", "x"))

    def test_ip_and_time_conditions(self) -> None:
        office_hours = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
        night = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
        report = Resource("reports", "q3")
        assert POLICY.decide(alice("office"), "view", report, {"ip": "10.1.2.3", "time": office_hours})
        outside = POLICY.decide(alice("office"), "view", report, {"ip": "192.0.2.7", "time": office_hours})
        assert not outside and "the request comes from 10.0.0.0/8" in outside.reason
        late = POLICY.decide(alice("office"), "view", report, {"ip": "10.1.2.3", "time": night})
        assert not late and "between 08:00 and 18:00 UTC" in late.reason
        assert not POLICY.decide(alice("office"), "view", report, {"time": office_hours})  # no ip: no
        assert not POLICY.decide(alice("office"), "view", report, {"ip": "not-an-ip", "time": office_hours})
        saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()
        assert not POLICY.decide(alice("weekday"), "run", Resource("payroll"), {"time": saturday})
        assert POLICY.decide(alice("weekday"), "run", Resource("payroll"), {"time": saturday - 86400 * 2})

    def test_admin_grants_need_a_second_factor(self) -> None:
        decision = POLICY.decide(alice("admin"), "delete", Resource("storage"))
        assert not decision and "only to sessions that used a second factor" in decision.reason
        assert POLICY.decide(alice("admin", amr=("pwd", "otp")), "delete", Resource("storage"))

    def test_malformed_roles_are_refused_with_their_name(self) -> None:
        with pytest.raises(ValueError, match=r"role 'bad': permission 'notes' must be 'resource:action'"):
            Role.build("bad", ["notes"])
        with pytest.raises(ValueError, match=r"unknown condition\(s\) \['colour'\]"):
            Role.build("bad", [{"permission": "a:b", "when": {"colour": "red"}}])
        with pytest.raises(ValueError, match=r"ip condition '10\.0\.0\.0/33' is not an address"):
            Role.build("bad", [{"permission": "a:b", "when": {"ip": ["10.0.0.0/33"]}}])
        with pytest.raises(ValueError, match="hours must be"):
            Role.build("bad", [{"permission": "a:b", "when": {"hours": [8]}}])
        with pytest.raises(ValueError, match="may use only letters"):
            Role.build("bad", ["no tes:read"])
        with pytest.raises(ValueError, match="role name"):
            Role.build("", ["a:b"])

    def test_grants_round_trip_through_json(self) -> None:
        grant = Grant.parse({"permission": "a:*", "when": {"owner": True, "ip": ["10.0.0.0/8"]}})
        assert Grant.parse(grant.to_json()) == grant
        assert Grant.parse("a:b").to_json() == "a:b"


# ---- tokens ----------------------------------------------------------------------------------


class LocalKey:
    """An EC P-256 key standing in for OpenBao's transit key: same signature form (vault:v1:r||s)."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.pem = (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def raw_sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    async def sign(self, data: bytes, version: int) -> str:
        return f"vault:v{version}:{b64url(self.raw_sign(data))}"


class RsaKey:
    """An RSA 2048 key standing in for OpenBao's RS256 transit key (PKCS#1 v1.5, vault:v1:...)."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    async def sign(self, data: bytes, version: int) -> str:
        return f"vault:v{version}:{b64url(self.private.sign(data, padding.PKCS1v15(), hashes.SHA256()))}"


def segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value).encode())


@pytest.fixture
def key() -> LocalKey:
    return LocalKey()


@pytest.fixture
def verifier(key: LocalKey) -> TokenVerifier:
    verifier = TokenVerifier(ISSUER, "aria", leeway=30, clock=lambda: NOW)
    verifier.ring = KeyRing.from_transit({"latest_version": 1, "keys": {"1": {"public_key": key.pem}}})
    return verifier


def mint(key: LocalKey, ttl: float = 900, now: float = NOW, **claims: Any) -> str:
    minter = TokenMinter(key.sign, ISSUER, clock=lambda: now)
    token, _ = trio.run(lambda: minter.mint({"sub": "u1", "aud": "aria", **claims}, key_version=1, ttl=ttl))
    return token


class TestTokenVerification:
    def test_a_good_token_verifies(self, key: LocalKey, verifier: TokenVerifier) -> None:
        claims = verifier.verify(mint(key, name="alice"))
        assert claims["sub"] == "u1" and claims["iss"] == ISSUER and claims["name"] == "alice"

    def test_forged_and_tampered_tokens(self, key: LocalKey, verifier: TokenVerifier) -> None:
        forged = mint(LocalKey())  # the attacker's own key, claiming kid 1
        with pytest.raises(InvalidToken, match="bad signature"):
            verifier.verify(forged)
        header, _, signature = mint(key).split(".")
        tampered = f"{header}.{segment({'sub': 'admin', 'aud': 'aria', 'iss': ISSUER})}.{signature}"
        with pytest.raises(InvalidToken, match="bad signature"):
            verifier.verify(tampered)

    def test_expired_and_not_yet_valid(self, key: LocalKey, verifier: TokenVerifier) -> None:
        with pytest.raises(InvalidToken, match="expired"):
            verifier.verify(mint(key, ttl=60, now=NOW - 100))
        verifier.verify(mint(key, ttl=60, now=NOW - 80))  # 20 s late: within the 30 s leeway
        with pytest.raises(InvalidToken, match="not yet valid"):
            verifier.verify(mint(key, now=NOW + 120))
        with pytest.raises(InvalidToken, match="not yet valid"):
            verifier.verify(mint(key, nbf=int(NOW) + 600))

    def test_wrong_audience_issuer_and_type(self, key: LocalKey, verifier: TokenVerifier) -> None:
        with pytest.raises(InvalidToken, match=r"audience 'other' does not include 'aria'"):
            verifier.verify(mint(key, aud="other"))
        assert verifier.verify(mint(key, aud=["other", "aria"]))
        assert verifier.verify(mint(key, aud="other"), audience="other")
        with pytest.raises(InvalidToken, match="issuer"):
            verifier.verify(mint(key, iss="https://evil.test"))
        minter = TokenMinter(key.sign, ISSUER, clock=lambda: NOW)
        id_token, _ = trio.run(
            lambda: minter.mint({"sub": "u1", "aud": "aria"}, key_version=1, ttl=60, token_type=ID_TYPE)
        )
        with pytest.raises(InvalidToken, match=r"token type 'JWT' is not 'at\+jwt'"):
            verifier.verify(id_token)  # an ID token is not an access token

    def test_alg_none_is_refused(self, key: LocalKey, verifier: TokenVerifier) -> None:
        claims = json.loads(base64.urlsafe_b64decode(mint(key).split(".")[1] + "=="))
        for alg in ("none", "None", "NONE"):
            token = f"{segment({'alg': alg, 'typ': 'at+jwt', 'kid': '1'})}.{segment(claims)}."
            with pytest.raises(InvalidToken, match=f"algorithm '{alg}' is not allowed"):
                verifier.verify(token)

    def test_key_confusion_hmac_with_the_public_key_is_refused(
        self, key: LocalKey, verifier: TokenVerifier
    ) -> None:
        """The classic attack: sign with HS256 using the published public key as the HMAC secret."""
        claims = json.loads(base64.urlsafe_b64decode(mint(key).split(".")[1] + "=="))
        signing_input = f"{segment({'alg': 'HS256', 'typ': 'at+jwt', 'kid': '1'})}.{segment(claims)}"
        for secret in (key.pem.encode(), json.dumps(ECKey.import_key(key.pem).as_dict()).encode()):
            mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
            with pytest.raises(InvalidToken, match="algorithm 'HS256' is not allowed"):
                verifier.verify(f"{signing_input}.{b64url(mac)}")

    def test_rsa_signed_and_embedded_keys_are_refused(self, key: LocalKey, verifier: TokenVerifier) -> None:
        claims = json.loads(base64.urlsafe_b64decode(mint(key).split(".")[1] + "=="))
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signing_input = f"{segment({'alg': 'RS256', 'typ': 'at+jwt', 'kid': '1'})}.{segment(claims)}"
        signature = rsa_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        with pytest.raises(InvalidToken, match="algorithm 'RS256' is not allowed"):
            verifier.verify(f"{signing_input}.{b64url(signature)}")
        attacker = LocalKey()
        header = {
            "alg": "ES256",
            "typ": "at+jwt",
            "kid": "1",
            "jwk": ECKey.import_key(attacker.pem).as_dict(),
        }
        signing_input = f"{segment(header)}.{segment(claims)}"
        with pytest.raises(InvalidToken, match="header names keys"):
            verifier.verify(f"{signing_input}.{b64url(attacker.raw_sign(signing_input.encode()))}")

    def test_unknown_kid_and_malformed_tokens(self, key: LocalKey, verifier: TokenVerifier) -> None:
        claims = json.loads(base64.urlsafe_b64decode(mint(key).split(".")[1] + "=="))
        signing_input = f"{segment({'alg': 'ES256', 'typ': 'at+jwt', 'kid': '7'})}.{segment(claims)}"
        with pytest.raises(InvalidToken, match="unknown key id '7'"):
            verifier.verify(f"{signing_input}.{b64url(key.raw_sign(signing_input.encode()))}")
        for bad, reason in [
            ("", "no token"),
            (None, "no token"),
            ("abc", "three dot-separated parts"),
            ("a.b.c.d", "three dot-separated parts"),
            ("!!!.b.c", "malformed header"),
            (f"{b64url(b'[1]')}.b.c", "malformed header"),
            ("x" * 9000, "longer than 8192"),
        ]:
            with pytest.raises(InvalidToken, match=reason):
                verifier.verify(bad)

    def test_revoked_tokens_and_ended_sessions(self, key: LocalKey, verifier: TokenVerifier) -> None:
        token = mint(key)
        claims = verifier.verify(token)
        verifier.revoked_jtis.add(claims["jti"])
        with pytest.raises(InvalidToken, match="revoked"):
            verifier.verify(token)
        verifier.not_before["u1"] = NOW + 1
        with pytest.raises(InvalidToken, match="sessions were ended"):
            verifier.verify(mint(key))

    def test_a_token_seen_before_has_every_claim_checked_again(self, key: LocalKey) -> None:
        now = [NOW]
        verifier = TokenVerifier(ISSUER, "aria", leeway=30, clock=lambda: now[0])
        verifier.ring = KeyRing.from_transit({"latest_version": 1, "keys": {"1": {"public_key": key.pem}}})
        token = mint(key, ttl=60, aud=["aria", "other"])
        assert verifier.verify(token)["sub"] == "u1"
        assert verifier.verify(token, audience="other")["sub"] == "u1"
        with pytest.raises(InvalidToken, match="audience"):
            verifier.verify(token, audience="third")
        with pytest.raises(InvalidToken, match="token type"):
            verifier.verify(token, token_type=ID_TYPE)  # remembered as an access token only
        now[0] = NOW + 120
        with pytest.raises(InvalidToken, match="expired"):
            verifier.verify(token)
        now[0] = NOW
        assert verifier.verify(token)["sub"] == "u1"
        # The key it was checked under is gone (rotated out, or replaced by a different key of
        # the same version): the signature is checked again, against what the ring holds now.
        verifier.ring = KeyRing.from_transit(
            {"latest_version": 1, "keys": {"1": {"public_key": LocalKey().pem}}}
        )
        with pytest.raises(InvalidToken, match="bad signature"):
            verifier.verify(token)

    def test_jwks_publishes_current_and_previous_versions(self, key: LocalKey) -> None:
        keys = {str(v): {"public_key": LocalKey().pem} for v in (1, 2, 3)}
        rsa_keys = {str(v): {"public_key": RsaKey().pem} for v in (1, 2)}
        ring = KeyRing.from_transit(
            {"latest_version": 3, "keys": keys},
            keep_previous=1,
            rsa_info={"latest_version": 2, "keys": rsa_keys},
        )
        published = ring.jwks()["keys"]
        assert [(k["kid"], k["alg"], k["kty"]) for k in published] == [
            ("3", "ES256", "EC"),
            ("2", "ES256", "EC"),
            ("rsa-2", "RS256", "RSA"),
            ("rsa-1", "RS256", "RSA"),
        ]
        assert all(k["use"] == "sig" and "d" not in k and "p" not in k for k in published)
        assert (ring.signing_version("ES256"), ring.signing_version("RS256")) == (3, 2)
        with pytest.raises(InvalidToken, match="no PS256 signing key"):
            ring.signing_version("PS256")
        with pytest.raises(InvalidToken, match="version 4 has no public key"):
            KeyRing.from_transit({"latest_version": 4, "keys": keys})

    def test_rs256_id_tokens_verify_with_the_published_key_and_never_pass_as_access_tokens(
        self, key: LocalKey, verifier: TokenVerifier
    ) -> None:
        rsa_key = RsaKey()
        verifier.ring = KeyRing.from_transit(
            {"latest_version": 1, "keys": {"1": {"public_key": key.pem}}},
            rsa_info={"latest_version": 1, "keys": {"1": {"public_key": rsa_key.pem}}},
        )
        minter = TokenMinter(key.sign, ISSUER, clock=lambda: NOW, rs256_sign=rsa_key.sign)

        def mint_with(**options: Any) -> str:
            claims = {"sub": "u1", "aud": "aria", "name": "alice"}
            return trio.run(lambda: minter.mint(claims, key_version=1, ttl=60, **options))[0]

        id_token = mint_with(token_type=ID_TYPE, algorithm="RS256")
        decoded = jwt.decode(id_token, KeySet.import_key_set(verifier.ring.jwks()), algorithms=["RS256"])
        assert decoded.header == {"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}
        assert decoded.claims["iss"] == ISSUER and decoded.claims["name"] == "alice"
        # Our own RSA key, our own claims, typed as an access token: still not an access token.
        with pytest.raises(InvalidToken, match="algorithm 'RS256' is not allowed"):
            verifier.verify(mint_with(algorithm="RS256"))
        # An ES256 header naming the RSA key's kid finds no ES256 key.
        claims = json.loads(base64.urlsafe_b64decode(mint(key).split(".")[1] + "=="))
        signing_input = f"{segment({'alg': 'ES256', 'typ': 'at+jwt', 'kid': 'rsa-1'})}.{segment(claims)}"
        with pytest.raises(InvalidToken, match="unknown key id 'rsa-1'"):
            verifier.verify(f"{signing_input}.{b64url(key.raw_sign(signing_input.encode()))}")
        with pytest.raises(ValueError, match="no signer for 'PS256'"):
            mint_with(algorithm="PS256")

    def test_every_issuer_name_of_the_node_is_accepted_and_no_other(
        self, key: LocalKey, verifier: TokenVerifier
    ) -> None:
        names = iter(["https://127.0.0.1:8443/api/v1/auth", "https://127.0.0.1:40123/api/v1/auth"])
        current = next(names)
        minter = TokenMinter(key.sign, lambda: current, clock=lambda: NOW)
        verifier.issuers = {current}
        before = trio.run(lambda: minter.mint({"sub": "u1", "aud": "aria"}, key_version=1, ttl=60))[0]
        current = next(names)  # the gateway started listening on a port picked at start
        verifier.issuers.add(current)
        after, claims = trio.run(lambda: minter.mint({"sub": "u1", "aud": "aria"}, key_version=1, ttl=60))
        assert claims["iss"] == "https://127.0.0.1:40123/api/v1/auth"
        assert verifier.verify(before)["iss"] == "https://127.0.0.1:8443/api/v1/auth"
        assert verifier.verify(after)["iss"] == current
        with pytest.raises(InvalidToken, match=r"issuer 'https://evil\.test' is not"):
            verifier.verify(mint(key, iss="https://evil.test"))
        with pytest.raises(InvalidToken, match=r"issuer \['x'\] is not"):
            verifier.verify(mint(key, iss=["x"]))

    def test_the_minter_refuses_a_signature_from_another_key_version(self, key: LocalKey) -> None:
        async def wrong_version(data: bytes, version: int) -> str:
            return f"vault:v{version + 1}:{b64url(key.raw_sign(data))}"

        minter = TokenMinter(wrong_version, ISSUER, clock=lambda: NOW)
        with pytest.raises(InvalidToken, match="not v1"):
            trio.run(lambda: minter.mint({"sub": "u"}, key_version=1, ttl=60))


class TestIssuer:
    """Where the issuer comes from when ``[auth] issuer`` is empty (see aria/apps/auth/issuer.py)."""

    @staticmethod
    def coordinate(**values: Any) -> SimpleNamespace:
        return SimpleNamespace(**{"public_url": "", "host": "127.0.0.1", "port": 8443, "tls": True, **values})

    def test_configured_then_public_url_win(self) -> None:
        gateway = SimpleNamespace(url="https://127.0.0.1:40123")
        source = issuer_source("https://id.example.org/api/v1/auth/", self.coordinate(), lambda: gateway)
        assert source() == "https://id.example.org/api/v1/auth"
        source = issuer_source("", self.coordinate(public_url="https://aria.example.org/"), lambda: gateway)
        assert source() == "https://aria.example.org/api/v1/auth"

    def test_the_running_gateway_then_the_configured_address(self) -> None:
        running: list[Any] = [None]
        source = issuer_source("", self.coordinate(port=0), lambda: running[0])
        assert source() == "https://127.0.0.1:8443/api/v1/auth"  # not listening yet: the default port
        running[0] = SimpleNamespace(url="https://127.0.0.1:40123")
        assert source() == "https://127.0.0.1:40123/api/v1/auth"
        plain = issuer_source("", self.coordinate(host="::1", port=9000, tls=False), lambda: None)
        assert plain() == "http://[::1]:9000/api/v1/auth"
        assert issuer_source("", None, lambda: None)() == "https://localhost:8443/api/v1/auth"


# ---- passwords and throttling ----------------------------------------------------------------


class TestPasswords:
    async def test_argon2id_hash_and_verify(self) -> None:
        passwords = Passwords(Argon2Parameters(1, 8192, 1))
        stored = await passwords.hash("correct horse battery")
        assert stored.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
        assert await passwords.verify(stored, "correct horse battery")
        assert not await passwords.verify(stored, "correct horse batterY")
        assert not await passwords.verify(None, "correct horse battery")
        assert not await passwords.verify("not a hash", "x")
        assert not await passwords.verify(stored, "x" * 5000)
        assert Passwords(Argon2Parameters(2, 8192, 1)).needs_rehash(stored)

    async def test_unknown_users_cost_as_much_as_known_ones(self) -> None:
        """No timing oracle for user enumeration: a missing hash is checked against a dummy one."""
        passwords = Passwords(Argon2Parameters(2, 32768, 1))
        stored = await passwords.hash("correct horse battery")
        cpu = {}
        for label, target in (("known", stored), ("unknown", None)):
            began = time.process_time()
            for _ in range(3):
                assert not await passwords.verify(target, "wrong password!")
            cpu[label] = time.process_time() - began
        assert 0.5 < cpu["unknown"] / cpu["known"] < 2.0, cpu

    def test_weak_passwords_are_refused(self) -> None:
        passwords = Passwords(Argon2Parameters(1, 8192, 1), min_length=12)
        with pytest.raises(ValueError, match="at least 12 characters"):
            passwords.check_new("short", "alice")
        with pytest.raises(ValueError, match="must not be the user name"):
            passwords.check_new("alice-the-great", "Alice-The-Great")
        with pytest.raises(TypeError, match="must be a string"):
            passwords.check_new(None, "alice")

    def test_throttle_locks_after_failures_in_the_window(self) -> None:
        throttle = Throttle(max_failures=3, window=60, lockout=300)
        assert throttle.failed("1.2.3.4", 0) == 0
        assert throttle.failed("1.2.3.4", 70) == 0  # the first failure left the window
        assert throttle.failed("1.2.3.4", 80) == 0
        assert throttle.failed("1.2.3.4", 90) == 300
        assert throttle.retry_after("1.2.3.4", 100) == 290
        assert throttle.retry_after("5.6.7.8", 100) == 0
        assert throttle.retry_after("1.2.3.4", 400) == 0

    def test_throttle_memory_is_bounded(self) -> None:
        throttle = Throttle(max_failures=3, window=60, lockout=300, max_keys=100)
        for n in range(1000):
            throttle.failed(f"10.0.{n // 256}.{n % 256}", 0)
        assert len(throttle._keys) <= 100


# ---- TOTP and TURN ---------------------------------------------------------------------------


class TestTotp:
    def test_codes_of_the_current_and_adjacent_steps(self) -> None:
        secret = mfa.new_secret()
        totp = pyotp.TOTP(secret)
        step = int(NOW // 30)
        assert mfa.matching_step(secret, totp.at(NOW), NOW, 0) == step
        assert mfa.matching_step(secret, totp.at(NOW - 30), NOW, 0) == step - 1
        assert mfa.matching_step(secret, totp.at(NOW + 30), NOW, 0) == step + 1
        assert mfa.matching_step(secret, totp.at(NOW - 90), NOW, 0) is None
        assert mfa.matching_step(secret, "12345", NOW, 0) is None
        assert mfa.matching_step(secret, "abcdef", NOW, 0) is None
        code = totp.at(NOW)
        assert mfa.matching_step(secret, f"{code[:3]} {code[3:]}", NOW, 0) == step

    def test_a_code_is_not_accepted_twice_in_its_step(self) -> None:
        secret = mfa.new_secret()
        code = pyotp.TOTP(secret).at(NOW)
        step = mfa.matching_step(secret, code, NOW, 0)
        assert step is not None
        assert mfa.matching_step(secret, code, NOW, last_step=step) is None  # replay
        assert mfa.matching_step(secret, code, NOW + 10, last_step=step) is None

    def test_recovery_codes(self) -> None:
        codes = mfa.new_recovery_codes(10)
        assert len(set(codes)) == 10 and all(len(c) == 11 and c[5] == "-" for c in codes)
        assert mfa.normalise_recovery_code(codes[0].upper().replace("-", "")) == codes[0]
        assert mfa.normalise_recovery_code("short") is None


class TestTurn:
    def test_turn_rest_api_credentials(self) -> None:
        secret = b"shared-secret"
        creds = turn_credentials(secret, "u-alice", ttl=600, now=NOW, uris=["turn:127.0.0.1:3478"])
        assert creds["username"] == f"{int(NOW) + 600}:u-alice"
        expected = base64.b64encode(
            hmac.new(secret, creds["username"].encode(), hashlib.sha1).digest()
        ).decode()
        assert creds["credential"] == expected
        assert check_turn_credentials(secret, creds["username"], creds["credential"], NOW + 599)
        assert not check_turn_credentials(secret, creds["username"], creds["credential"], NOW + 601)
        assert not check_turn_credentials(b"other", creds["username"], creds["credential"], NOW)
        forged = f"{int(NOW) + 99999}:u-alice"
        assert not check_turn_credentials(secret, forged, creds["credential"], NOW)
        with pytest.raises(ValueError, match="contain no ':'"):
            turn_credentials(secret, "a:b", ttl=60, now=NOW, uris=[])
