"""aria_security against the real OpenBao server it supervises."""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
from pathlib import Path
from typing import Any

import pytest
import trio

import aria
from aria.apps.security.api import (
    AppSecrets,
    CasConflict,
    DecryptionFailed,
    InvalidSecretRequest,
    PermissionDenied,
    Sealed,
    SecretNotFound,
)
from aria.control import request
from aria.errors import ConfigError
from aria.system import System
from tests.conftest import eventually
from tests.security.conftest import security_config

WAIT = 30


def secrets(app: str = "aria_data") -> AppSecrets:
    return AppSecrets(aria.whereis("aria_security"), app)


def bao_child(system: System) -> dict[str, Any]:
    security = system.tree()["root"]["children"][0]
    return next(child for child in security["children"] if child["id"] == "bao")


class TestLifeCycle:
    async def test_first_boot_initialises_unseals_and_bootstraps(self, data_dir: Path) -> None:
        async with aria.running(apps=["aria_security"], config=security_config(data_dir)):
            status = aria.whereis("aria_security").status()
            assert status["initialized"] is True
            assert status["sealed"] is False
            assert status["raft_leader"] is True
            assert status["version"].startswith("2.")
            assert await secrets().put_secret("first", {"v": "1"}) == 1
        security = data_dir / "security"
        for private in ("unseal-keys.json", "admin-credential.json", "tls/ca-key.pem", "tls/bao-key.pem"):
            assert stat.S_IMODE((security / private).stat().st_mode) == 0o600, private
        shares = json.loads((security / "unseal-keys.json").read_text())["shares"]
        assert len(shares) == 3
        credential = (security / "admin-credential.json").read_text()
        assert "role_id" not in credential and "secret_id" not in credential  # only envelopes
        # The root token of the initialisation was revoked right after bootstrap.
        audit = [json.loads(line) for line in (security / "audit" / "audit.log").read_text().splitlines()]
        assert any(entry["request"]["path"] == "auth/token/revoke-self" for entry in audit)

    async def test_a_restart_keeps_every_secret(self, warm_data_dir: Path) -> None:
        config = security_config(warm_data_dir)
        async with aria.running(apps=["aria_security"], config=config):
            await secrets().put_secret("kept", {"value": "across restarts"})
            ciphertext = await secrets().encrypt("default", b"sealed box")
        async with aria.running(apps=["aria_security"], config=config):
            assert await secrets().get_secret("kept") == {"value": "across restarts"}
            assert await secrets().decrypt("default", ciphertext) == b"sealed box"

    async def test_kill_9_of_bao_is_survived(self, node: System) -> None:
        """kill -9 of OpenBao: the supervisor restarts it, the keeper unseals it, and calls made
        meanwhile wait and then succeed with the apps' existing tokens."""
        data = secrets()
        await data.put_secret("durable", {"value": 42})
        ciphertext = await data.encrypt("default", b"payload")
        logins_before = aria.whereis("aria_security").statistics("aria_data").logins
        os.kill(bao_child(node)["pid"], signal.SIGKILL)
        with trio.fail_after(WAIT):
            assert await data.get_secret("durable") == {"value": 42}
            assert await data.decrypt("default", ciphertext) == b"payload"
        assert bao_child(node)["restarts"] == 1
        assert aria.whereis("aria_security").status()["sealed"] is False
        assert aria.whereis("aria_security").statistics("aria_data").logins == logins_before


class TestIsolation:
    async def test_one_app_cannot_read_another_apps_secrets(self, node: System) -> None:
        await secrets("aria_auth").put_secret("jwt/signing", {"value": "auth only"})
        with pytest.raises(PermissionError) as info:
            await secrets("aria_data").get_secret("jwt/signing", owner="aria_auth")
        assert isinstance(info.value, PermissionDenied)
        assert str(info.value) == (
            "aria_data is not allowed to use 'jwt/signing': OpenBao's policy for aria_data denies it"
        )
        # Its own key, yes; another app's key is out of reach too.
        ciphertext = await secrets("aria_auth").encrypt("default", b"x")
        with pytest.raises(DecryptionFailed):
            await secrets("aria_data").decrypt("default", ciphertext)

    async def test_an_unknown_app_gets_no_identity(self, node: System) -> None:
        with pytest.raises(PermissionDenied, match="aria_nobody"):
            await secrets("aria_nobody").get_secret("x")


class TestKeyValue:
    async def test_versions_and_check_and_set(self, node: System) -> None:
        data = secrets()
        assert await data.put_secret("db/password", {"value": "one"}, cas=0) == 1
        assert await data.put_secret("db/password", {"value": "two"}) == 2
        with pytest.raises(CasConflict, match="expected version 1"):
            await data.put_secret("db/password", {"value": "stale"}, cas=1)
        assert await data.put_secret("db/password", {"value": "three"}, cas=2) == 3
        assert await data.get_secret("db/password") == {"value": "three"}
        assert await data.get_secret("db/password", version=1) == {"value": "one"}
        assert [v.version for v in await data.secret_versions("db/password")] == [1, 2, 3]
        assert await data.list_secrets() == ["db/"]
        assert await data.list_secrets("db") == ["password"]

    async def test_soft_delete_undelete_and_destroy(self, node: System) -> None:
        data = secrets()
        await data.put_secret("token", {"value": "a"})
        await data.put_secret("token", {"value": "b"})
        await data.delete_secret("token")
        with pytest.raises(SecretNotFound, match="no secret at 'token'"):
            await data.get_secret("token")
        await data.undelete_secret("token", [2])
        assert await data.get_secret("token") == {"value": "b"}
        await data.destroy_secret("token", [1])
        with pytest.raises(SecretNotFound):
            await data.get_secret("token", version=1)
        versions = {v.version: v for v in await data.secret_versions("token")}
        assert versions[1].destroyed and not versions[2].destroyed and not versions[2].deleted

    async def test_missing_secrets_are_typed(self, node: System) -> None:
        with pytest.raises(SecretNotFound, match="no secret at 'never/written' for aria_data"):
            await secrets().get_secret("never/written")
        assert await secrets().list_secrets("nothing/here") == []


class TestTransit:
    async def test_round_trip_with_context(self, node: System) -> None:
        data = secrets()
        ciphertext = await data.encrypt("default", "hello world", context=b"row 7")
        assert ciphertext.startswith("vault:v1:")
        assert await data.decrypt("default", ciphertext, context=b"row 7") == b"hello world"
        with pytest.raises(DecryptionFailed, match="message authentication failed"):
            await data.decrypt("default", ciphertext, context=b"row 8")

    async def test_rotation_and_rewrap(self, node: System) -> None:
        data = secrets()
        old = await data.encrypt("backups", b"archive")  # a named key, created on first use
        assert await data.rotate_key("backups") == 2
        new = await data.encrypt("backups", b"archive")
        assert old.startswith("vault:v1:") and new.startswith("vault:v2:")
        rewrapped = await data.rewrap("backups", old)
        assert rewrapped.startswith("vault:v2:")
        assert await data.decrypt("backups", old) == await data.decrypt("backups", rewrapped) == b"archive"

    async def test_data_keys_for_envelope_encryption(self, node: System) -> None:
        data = secrets()
        key = await data.data_key()
        assert len(key.plaintext) == 32
        assert await data.decrypt("default", key.ciphertext) == key.plaintext

    async def test_tampered_ciphertext_is_rejected(self, node: System) -> None:
        data = secrets()
        ciphertext = await data.encrypt("default", b"integrity matters")
        prefix, body = ciphertext.rsplit(":", 1)
        flipped = body[:-6] + ("A" if body[-6] != "A" else "B") + body[-5:]
        with pytest.raises(DecryptionFailed):
            await data.decrypt("default", f"{prefix}:{flipped}")

    async def test_signing_keys_sign_and_verify_without_exporting_the_private_key(self, node: System) -> None:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        auth = secrets("aria_auth")
        await auth.create_key("jwt", "ecdsa-p256")
        signature = await auth.sign("jwt", b"header.payload")
        assert signature.startswith("vault:v1:")
        assert await auth.verify("jwt", b"header.payload", signature)
        assert not await auth.verify("jwt", b"header.tampered", signature)
        # The public key OpenBao publishes verifies the JWS-form (r||s) signature locally too.
        info = await auth.read_key("jwt")
        public = serialization.load_pem_public_key(info["keys"]["1"]["public_key"].encode())
        assert isinstance(public, ec.EllipticCurvePublicKey)
        raw = base64.urlsafe_b64decode(signature.split(":")[2] + "==")
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        public.verify(der, b"header.payload", ec.ECDSA(hashes.SHA256()))
        await auth.create_key("rsa", "rsa-2048")
        rs256 = await auth.sign("rsa", b"h.p", signature_algorithm="pkcs1v15")
        assert await auth.verify("rsa", b"h.p", rs256, signature_algorithm="pkcs1v15")
        assert not await auth.verify("rsa", b"h.p", rs256, signature_algorithm="pss")
        with pytest.raises(InvalidSecretRequest, match="signing key not found"):
            await secrets("aria_data").sign("jwt", b"x")  # names resolve per app: aria_data-jwt

    async def test_generate_password(self, node: System) -> None:
        passwords = {await secrets().generate_password(24) for _ in range(3)}
        assert len(passwords) == 3
        assert all(len(p) == 24 for p in passwords)


class TestBadInput:
    @pytest.mark.parametrize(
        ("path", "message"),
        [
            ("", "must be a non-empty string"),
            ("../aria_auth/jwt", r"has an empty, '\.' or '\.\.' segment"),
            ("a/../../b", r"has an empty, '\.' or '\.\.' segment"),
            ("/etc/passwd", "must not start or end with '/'"),
            ("a//b", "has an empty"),
            ("spaces are bad", "may use only letters"),
        ],
    )
    async def test_bad_paths_are_refused_before_anything_is_sent(
        self, node: System, path: str, message: str
    ) -> None:
        with pytest.raises(InvalidSecretRequest, match=message):
            await secrets().put_secret(path, {"v": 1})
        assert await secrets().list_secrets() == []

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ({"v": {1, 2}}, "is not JSON-serialisable"),
            ({"v": b"bytes"}, "is not JSON-serialisable"),
            ({"v": float("nan")}, "is not JSON-serialisable"),
            ("a string", "must be a non-empty dict"),
            ({}, "must be a non-empty dict"),
        ],
    )
    async def test_bad_values_are_refused_and_nothing_is_overwritten(
        self, node: System, value: Any, message: str
    ) -> None:
        await secrets().put_secret("keep", {"v": "original"})
        with pytest.raises(InvalidSecretRequest, match=message):
            await secrets().put_secret("keep", value)
        assert await secrets().get_secret("keep") == {"v": "original"}

    async def test_bad_key_names_and_ciphertexts(self, node: System) -> None:
        with pytest.raises(InvalidSecretRequest, match=r"key name '\.\./x'"):
            await secrets().encrypt("../x", b"y")
        with pytest.raises(InvalidSecretRequest, match="is not an OpenBao ciphertext"):
            await secrets().decrypt("default", "plain text")

    def test_bad_security_config_is_reported(self) -> None:
        from aria.config import load

        with pytest.raises(ConfigError, match=r"key_threshold \(4\) cannot exceed key_shares \(3\)"):
            load(environ={"ARIA_SECURITY__KEY_THRESHOLD": "4"})


class TestSealing:
    async def test_a_sealed_server_gives_the_typed_error_then_unseals(self, warm_data_dir: Path) -> None:
        config = security_config(warm_data_dir, call_timeout=0.5)
        async with aria.running(apps=["aria_security"], config=config):
            keeper = aria.whereis("aria_security")
            await secrets().put_secret("s", {"v": 1})
            await keeper.seal()
            with pytest.raises(Sealed, match="OpenBao is sealed"):
                await secrets().get_secret("s")
            shares = json.loads((warm_data_dir / "security" / "unseal-keys.json").read_text())["shares"]
            await keeper.unseal(shares[:2])
            assert await secrets().get_secret("s") == {"v": 1}

    async def test_env_source_unseals_from_the_environment(
        self, warm_data_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        shares = json.loads((warm_data_dir / "security" / "unseal-keys.json").read_text())["shares"]
        (warm_data_dir / "security" / "unseal-keys.json").unlink()
        monkeypatch.setenv("ARIA_UNSEAL_KEYS", ",".join(shares[1:]))
        async with aria.running(
            apps=["aria_security"], config=security_config(warm_data_dir, unseal_source="env")
        ):
            assert await secrets().put_secret("from-env", {"v": 1}) == 1

    async def test_operator_source_waits_for_aria_security_unseal(self, warm_data_dir: Path) -> None:
        shares = json.loads((warm_data_dir / "security" / "unseal-keys.json").read_text())["shares"]
        (warm_data_dir / "security" / "unseal-keys.json").unlink()
        config = security_config(warm_data_dir, unseal_source="operator")
        socket_path = warm_data_dir / "aria.sock"
        booted = trio.Event()

        async def boot() -> None:
            async with aria.running(apps=["aria_security"], config=config) as system:
                booted.set()
                assert await secrets().put_secret("after-operator", {"v": 1}) == 1
                await system.stop()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(boot)
            with trio.fail_after(WAIT):
                await eventually(socket_path.exists)  # the control socket is up before the apps boot
            assert not booted.is_set()
            answer = await trio.to_thread.run_sync(
                lambda: request(socket_path, "security.unseal", shares=shares[:2])
            )
            assert answer["status"]["sealed"] is False
            with trio.fail_after(WAIT):
                await booted.wait()


class TestIdentities:
    async def test_a_lost_token_is_reacquired(self, node: System) -> None:
        keeper = aria.whereis("aria_security")
        await secrets().put_secret("x", {"v": 1})
        await keeper.rotate_app_identity("aria_data")
        assert await secrets().get_secret("x") == {"v": 1}
        assert keeper.statistics("aria_data").logins == 2

    async def test_tokens_are_renewed_before_they_expire(self, warm_data_dir: Path) -> None:
        config = security_config(warm_data_dir, token_ttl=3, token_max_ttl=60)
        async with aria.running(apps=["aria_security"], config=config):
            keeper = aria.whereis("aria_security")
            await secrets().put_secret("x", {"v": 1})
            expires = trio.current_time() + 3
            # Real time must pass the token's TTL for renewal to matter: wait past it.
            await trio.sleep_until(expires + 1.5)
            assert await secrets().get_secret("x") == {"v": 1}
            stats = keeper.statistics("aria_data")
            assert stats.renewals >= 1
            assert stats.logins == 1


class TestNothingInPlainText:
    async def test_secret_values_never_reach_disk_or_logs(
        self, warm_data_dir: Path, capfd: pytest.CaptureFixture[str]
    ) -> None:
        secret_value = "correct-horse-battery-staple-8d1f"
        plaintext = b"plaintext-for-transit-4c2a"
        async with aria.running(apps=["aria_security"], config=security_config(warm_data_dir)):
            await secrets().put_secret("db/password", {"value": secret_value})
            await secrets().encrypt("default", plaintext)
            assert (await secrets().get_secret("db/password"))["value"] == secret_value
        import base64

        needles = [
            secret_value.encode(),
            plaintext,
            base64.b64encode(plaintext),
            base64.b64encode(secret_value.encode()),
        ]
        for path in await trio.to_thread.run_sync(
            lambda: [p for p in warm_data_dir.rglob("*") if p.is_file()]
        ):
            content = await trio.Path(path).read_bytes()
            for needle in needles:
                assert needle not in content, f"{needle!r} found in {path}"
        logs = capfd.readouterr()
        for needle in needles:
            assert needle.decode() not in logs.out + logs.err

    async def test_every_request_is_audited_with_hmacd_values(
        self, node: System, warm_data_dir: Path
    ) -> None:
        keeper = aria.whereis("aria_security")
        await secrets().put_secret("audited", {"value": "audit-me-91"})
        await secrets().get_secret("audited")
        audit_log = warm_data_dir / "security" / "audit" / "audit.log"
        entries = [json.loads(line) for line in audit_log.read_text().splitlines()]
        path = "aria/data/apps/aria_data/audited"
        writes = [
            e
            for e in entries
            if e["type"] == "request"
            and e["request"]["path"] == path
            and e["request"]["operation"] in ("create", "update")
        ]
        reads = [
            e
            for e in entries
            if e["type"] == "response"
            and e["request"]["path"] == path
            and e["request"]["operation"] == "read"
        ]
        assert writes and reads
        written = writes[-1]["request"]["data"]["data"]["value"]
        assert written.startswith("hmac-sha256:")
        assert written == await keeper.audit_hash("audit-me-91")
        assert "audit-me-91" not in audit_log.read_text()
