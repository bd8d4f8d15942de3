"""``AppSecrets``: one app's view of secrets and encryption, under its own OpenBao identity."""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import hvac.exceptions

from aria.apps.security.errors import CasConflict, DecryptionFailed, InvalidSecretRequest, SecretNotFound
from aria.apps.security.keeper import KV_MOUNT, TRANSIT_MOUNT

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_KEY_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_APP_NAME = re.compile(r"^aria_[a-z]+$")
MAX_SECRET_BYTES = 512 * 1024
PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.~"


def check_path(path: object) -> str:
    """Validate a secret path relative to the app's namespace (``db/password``).

    Raises:
        InvalidSecretRequest: for an empty path, absolute paths, empty, ``.`` or ``..`` segments,
            or characters outside ``A-Z a-z 0-9 . _ -``.
    """
    if not isinstance(path, str) or not path:
        raise InvalidSecretRequest(f"a secret path must be a non-empty string, not {path!r}")
    if path.startswith("/") or path.endswith("/"):
        raise InvalidSecretRequest(f"secret path {path!r} must not start or end with '/'")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidSecretRequest(f"secret path {path!r} has an empty, '.' or '..' segment")
        if not _SEGMENT.match(segment):
            raise InvalidSecretRequest(
                f"secret path {path!r}: segment {segment!r} may use only letters, digits, '.', '_' and '-'"
            )
    return path


def check_data(path: str, data: object) -> dict[str, Any]:
    """Validate a secret's value: a JSON object with string keys, at most 512 KiB encoded."""
    if not isinstance(data, dict) or not data:
        raise InvalidSecretRequest(
            f"the value of secret {path!r} must be a non-empty dict, not {type(data).__name__}"
        )
    try:
        encoded = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidSecretRequest(f"the value of secret {path!r} is not JSON-serialisable: {exc}") from None
    if len(encoded) > MAX_SECRET_BYTES:
        raise InvalidSecretRequest(
            f"the value of secret {path!r} is {len(encoded)} bytes; at most {MAX_SECRET_BYTES}"
        )
    return data


def _bytes(value: bytes | str, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise InvalidSecretRequest(f"{what} must be bytes or str, not {type(value).__name__}")


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


@dataclass(frozen=True)
class SecretVersion:
    """One version of a secret, from its metadata."""

    version: int
    created_time: str
    deletion_time: str
    destroyed: bool

    @property
    def deleted(self) -> bool:
        return bool(self.deletion_time)


@dataclass(frozen=True)
class DataKey:
    """A fresh data key for envelope encryption: use ``plaintext`` locally, store ``ciphertext``."""

    plaintext: bytes
    ciphertext: str


class AppSecrets:
    """Secrets and encryption for one app, through OpenBao with that app's own identity.

    Args:
        security: aria_security's API (a ``ServiceRef`` from ``ctx.api("aria_security")`` or
            ``aria.whereis("aria_security")``); calls wait for it while it restarts.
        app: The app whose identity and namespace are used (``aria_data``).

    Paths are relative to the app's namespace (``apps/<app>/`` in the KV v2 mount ``aria``); key
    names are relative to the app too (``default`` is the key named after the app, others are
    ``<app>-<name>``). The policy behind the identity reaches nothing else.
    """

    def __init__(self, security: Any, app: str) -> None:
        if not isinstance(app, str) or not _APP_NAME.match(app):
            raise InvalidSecretRequest(f"{app!r} is not an app name (aria_<name>)")
        self._security = security
        self.app = app

    def _kv_path(self, path: str, owner: str | None = None) -> str:
        owner = owner or self.app
        if not _APP_NAME.match(owner):
            raise InvalidSecretRequest(f"{owner!r} is not an app name (aria_<name>)")
        return f"apps/{owner}/{check_path(path)}"

    def _key(self, key: str) -> str:
        if not isinstance(key, str) or not _KEY_NAME.match(key):
            raise InvalidSecretRequest(f"key name {key!r} must match [a-z0-9][a-z0-9_-]{{0,63}}")
        return self.app if key == "default" else f"{self.app}-{key}"

    async def _call(self, target: str, operation: Any, translate: Any = None) -> Any:
        return await self._security.call(self.app, target, operation, translate=translate)

    # ---- KV v2 --------------------------------------------------------------------------------

    async def get_secret(
        self, path: str, version: int | None = None, *, owner: str | None = None
    ) -> dict[str, Any]:
        """The secret's data (the latest version, or ``version``).

        ``owner`` reads another app's namespace, which that app's policy must allow (by default
        none does: PermissionDenied).

        Raises:
            SecretNotFound: if there is no such secret, or that version is deleted or destroyed.
            PermissionDenied: if the app's policy does not allow the path.
        """
        full = self._kv_path(path, owner)
        result = await self._call(
            path,
            lambda client: client.secrets.kv.v2.read_secret_version(
                full, version=version, mount_point=KV_MOUNT, raise_on_deleted_version=True
            ),
        )
        data = result["data"]["data"]
        if data is None:
            raise SecretNotFound(self.app, path, "deleted or destroyed")
        return dict(data)

    async def put_secret(self, path: str, data: dict[str, Any], cas: int | None = None) -> int:
        """Store a new version of a secret; returns its version number.

        ``cas=0`` writes only if the secret does not exist; ``cas=N`` only if its current version
        is N (check-and-set).

        Raises:
            CasConflict: when ``cas`` does not match.
            InvalidSecretRequest: for a bad path or a value that is not a JSON object.
        """
        full = self._kv_path(path)
        check_data(path, data)
        if cas is not None and (not isinstance(cas, int) or cas < 0):
            raise InvalidSecretRequest(f"cas for {path!r} must be an integer >= 0, not {cas!r}")

        def translate(exc: hvac.exceptions.InvalidRequest) -> Exception:
            if "check-and-set" in str(exc):
                return CasConflict(self.app, path, cas if cas is not None else -1)
            return InvalidSecretRequest(f"OpenBao refused secret {path!r}: {exc}")

        result = await self._call(
            path,
            lambda client: client.secrets.kv.v2.create_or_update_secret(
                full, secret=data, cas=cas, mount_point=KV_MOUNT
            ),
            translate,
        )
        return int(result["data"]["version"])

    async def delete_secret(self, path: str, versions: list[int] | None = None) -> None:
        """Soft-delete the latest version (or ``versions``); :meth:`undelete_secret` restores it."""
        full = self._kv_path(path)
        if versions is None:
            await self._call(
                path, lambda c: c.secrets.kv.v2.delete_latest_version_of_secret(full, mount_point=KV_MOUNT)
            )
        else:
            await self._call(
                path,
                lambda c: c.secrets.kv.v2.delete_secret_versions(
                    full, versions=versions, mount_point=KV_MOUNT
                ),
            )

    async def undelete_secret(self, path: str, versions: list[int]) -> None:
        full = self._kv_path(path)
        await self._call(
            path,
            lambda c: c.secrets.kv.v2.undelete_secret_versions(full, versions=versions, mount_point=KV_MOUNT),
        )

    async def destroy_secret(self, path: str, versions: list[int]) -> None:
        """Destroy versions permanently (their data cannot be recovered)."""
        full = self._kv_path(path)
        await self._call(
            path,
            lambda c: c.secrets.kv.v2.destroy_secret_versions(full, versions=versions, mount_point=KV_MOUNT),
        )

    async def list_secrets(self, prefix: str = "") -> list[str]:
        """Names directly under ``prefix`` (folders end with ``/``); empty if there are none."""
        full = self._kv_path(prefix) if prefix else f"apps/{self.app}"
        try:
            result = await self._call(
                prefix or "/", lambda c: c.secrets.kv.v2.list_secrets(full, mount_point=KV_MOUNT)
            )
        except SecretNotFound:
            return []
        return sorted(result["data"]["keys"])

    async def secret_versions(self, path: str) -> list[SecretVersion]:
        """Every version of a secret with its creation, deletion and destruction state."""
        full = self._kv_path(path)
        result = await self._call(
            path, lambda c: c.secrets.kv.v2.read_secret_metadata(full, mount_point=KV_MOUNT)
        )
        versions = result["data"]["versions"]
        return [
            SecretVersion(
                int(number), info["created_time"], info.get("deletion_time", ""), bool(info["destroyed"])
            )
            for number, info in sorted(versions.items(), key=lambda item: int(item[0]))
        ]

    # ---- transit ------------------------------------------------------------------------------

    async def encrypt(self, key: str, plaintext: bytes | str, context: bytes | str | None = None) -> str:
        """Encrypt with an app key (AES-256-GCM in OpenBao); ``context`` is bound as associated
        data and must be given again to decrypt. Returns ``vault:v<N>:...``."""
        name = self._key(key)
        data = _b64(_bytes(plaintext, "plaintext"))
        ad = _b64(_bytes(context, "context")) if context is not None else None
        result = await self._call(
            f"transit key {key}",
            lambda c: c.secrets.transit.encrypt_data(
                name, data, associated_data=ad, mount_point=TRANSIT_MOUNT
            ),
        )
        return str(result["data"]["ciphertext"])

    async def decrypt(self, key: str, ciphertext: str, context: bytes | str | None = None) -> bytes:
        """Decrypt; a tampered ciphertext or a wrong key or context raises DecryptionFailed."""
        name = self._key(key)
        if not isinstance(ciphertext, str) or not ciphertext.startswith("vault:v"):
            raise InvalidSecretRequest(f"{ciphertext!r} is not an OpenBao ciphertext (vault:v<N>:...)")
        ad = _b64(_bytes(context, "context")) if context is not None else None
        result = await self._call(
            f"transit key {key}",
            lambda c: c.secrets.transit.decrypt_data(
                name, ciphertext, associated_data=ad, mount_point=TRANSIT_MOUNT
            ),
            lambda exc: DecryptionFailed(key, _first_error(exc)),
        )
        return base64.b64decode(result["data"]["plaintext"])

    async def rotate_key(self, key: str = "default") -> int:
        """Add a new version of the key (new encryptions use it; old ciphertexts still decrypt)."""
        name = self._key(key)
        result = await self._call(
            f"transit key {key}", lambda c: c.secrets.transit.rotate_key(name, mount_point=TRANSIT_MOUNT)
        )
        if isinstance(result, dict) and "data" in result:
            return int(result["data"]["latest_version"])
        info = await self._call(
            f"transit key {key}", lambda c: c.secrets.transit.read_key(name, mount_point=TRANSIT_MOUNT)
        )
        return int(info["data"]["latest_version"])

    async def rewrap(self, key: str, ciphertext: str, context: bytes | str | None = None) -> str:
        """Re-encrypt a ciphertext under the key's latest version without revealing the plaintext."""
        name = self._key(key)
        ad = _b64(_bytes(context, "context")) if context is not None else None

        def operation(client: Any) -> Any:
            params = {"ciphertext": ciphertext}
            if ad is not None:
                params["associated_data"] = ad
            return client.adapter.post(f"/v1/{TRANSIT_MOUNT}/rewrap/{name}", json=params)

        result = await self._call(
            f"transit key {key}", operation, lambda exc: DecryptionFailed(key, _first_error(exc))
        )
        return str(result["data"]["ciphertext"])

    async def data_key(self, key: str = "default", bits: int = 256) -> DataKey:
        """A new data key for envelope encryption: encrypt bulk data locally with ``plaintext``,
        keep only ``ciphertext``, and :meth:`decrypt` it when needed."""
        if bits not in (128, 256, 512):
            raise InvalidSecretRequest(f"data key bits must be 128, 256 or 512, not {bits!r}")
        name = self._key(key)
        result = await self._call(
            f"transit key {key}",
            lambda c: c.secrets.transit.generate_data_key(
                name, key_type="plaintext", bits=bits, mount_point=TRANSIT_MOUNT
            ),
        )
        return DataKey(base64.b64decode(result["data"]["plaintext"]), str(result["data"]["ciphertext"]))

    async def create_key(self, key: str, key_type: str = "aes256-gcm96") -> None:
        """Create an app key of ``key_type`` (``aes256-gcm96``, ``ecdsa-p256``, ``ed25519``,
        ``rsa-2048``...) if it does not exist yet; the private part never leaves OpenBao."""
        if key == "default":
            raise InvalidSecretRequest("the 'default' key exists already (aes256-gcm96)")
        name = self._key(key)
        await self._call(
            f"transit key {key}",
            lambda c: c.secrets.transit.create_key(name, key_type=key_type, mount_point=TRANSIT_MOUNT),
            lambda exc: InvalidSecretRequest(
                f"cannot create key {key!r} of type {key_type!r}: {_first_error(exc)}"
            ),
        )

    async def read_key(self, key: str) -> dict[str, Any]:
        """The key's metadata: ``type``, ``latest_version``, ``min_decryption_version`` and, for
        asymmetric keys, ``keys`` (version -> public key PEM and creation time)."""
        name = self._key(key)
        result = await self._call(
            f"transit key {key}", lambda c: c.secrets.transit.read_key(name, mount_point=TRANSIT_MOUNT)
        )
        data: dict[str, Any] = result["data"]
        return data

    async def sign(
        self,
        key: str,
        data: bytes | str,
        *,
        hash_algorithm: str = "sha2-256",
        marshaling_algorithm: str = "jws",
        key_version: int | None = None,
        signature_algorithm: str | None = None,
    ) -> str:
        """Sign ``data`` with an asymmetric app key in OpenBao; returns ``vault:v<N>:<signature>``.

        ``marshaling_algorithm="jws"`` gives ECDSA signatures in JWS form (r||s, base64url), as
        JWTs need. ``signature_algorithm`` picks the RSA padding (``pkcs1v15`` for RS256, ``pss``
        for PS256); it is ignored for other key types.
        """
        name = self._key(key)
        payload = _b64(_bytes(data, "data"))

        def operation(client: Any) -> Any:
            params: dict[str, Any] = {
                "input": payload,
                "hash_algorithm": hash_algorithm,
                "marshaling_algorithm": marshaling_algorithm,
            }
            if key_version is not None:
                params["key_version"] = key_version
            if signature_algorithm is not None:
                params["signature_algorithm"] = signature_algorithm
            return client.adapter.post(f"/v1/{TRANSIT_MOUNT}/sign/{name}", json=params)

        result = await self._call(
            f"transit key {key}",
            operation,
            lambda exc: InvalidSecretRequest(f"cannot sign with key {key!r}: {_first_error(exc)}"),
        )
        return str(result["data"]["signature"])

    async def verify(
        self,
        key: str,
        data: bytes | str,
        signature: str,
        *,
        hash_algorithm: str = "sha2-256",
        marshaling_algorithm: str = "jws",
        signature_algorithm: str | None = None,
    ) -> bool:
        """Whether ``signature`` (``vault:v<N>:...``) is valid for ``data`` under the app key."""
        name = self._key(key)
        payload = _b64(_bytes(data, "data"))

        def operation(client: Any) -> Any:
            params = {
                "input": payload,
                "signature": signature,
                "hash_algorithm": hash_algorithm,
                "marshaling_algorithm": marshaling_algorithm,
            }
            if signature_algorithm is not None:
                params["signature_algorithm"] = signature_algorithm
            return client.adapter.post(f"/v1/{TRANSIT_MOUNT}/verify/{name}", json=params)

        result = await self._call(
            f"transit key {key}",
            operation,
            lambda exc: InvalidSecretRequest(f"cannot verify with key {key!r}: {_first_error(exc)}"),
        )
        return bool(result["data"]["valid"])

    async def generate_password(self, length: int = 32, alphabet: str = PASSWORD_ALPHABET) -> str:
        """A random password from OpenBao's random source, drawn uniformly from ``alphabet``."""
        if not isinstance(length, int) or not 8 <= length <= 1024:
            raise InvalidSecretRequest(f"password length must be an integer from 8 to 1024, not {length!r}")
        if len(set(alphabet)) < 16 or len(alphabet) > 256:
            raise InvalidSecretRequest("a password alphabet needs 16 to 256 distinct characters")
        limit = 256 - 256 % len(alphabet)  # rejection sampling keeps the draw uniform
        password: list[str] = []
        while len(password) < length:
            count = math.ceil((length - len(password)) * 1.3) + 8
            result = await self._call(
                "sys/tools/random", lambda c, n=count: c.adapter.post(f"/v1/sys/tools/random/{n}", json={})
            )
            for byte in base64.b64decode(result["data"]["random_bytes"]):
                if byte < limit and len(password) < length:
                    password.append(alphabet[byte % len(alphabet)])
        return "".join(password)


def _first_error(exc: hvac.exceptions.InvalidRequest) -> str:
    errors = getattr(exc, "errors", None)
    return str(errors[0]) if errors else str(exc).split(", on ")[0]
