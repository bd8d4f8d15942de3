"""JWT access and ID tokens: minted with a signature from OpenBao, verified locally against a cached
JWKS.

Two transit keys in aria_security sign, and their private parts never leave OpenBao: an ECDSA P-256
key (``aria_auth-jwt``, ES256) for access tokens and, by a client's choice, ID tokens; and an RSA
2048 key (``aria_auth-jwt-rsa``, RS256 with PKCS#1 v1.5 padding) for ID tokens, since OpenID Connect
requires every provider to offer RS256. Each token names the key version that signed it (``kid``:
the version for ES256, ``rsa-<version>`` for RS256), and the JWKS publishes the current and
previous versions of both, so a rotation never invalidates tokens in flight. Verification needs no
round trip: the public keys are cached (refreshed periodically and, rate-limited, when a token
names an unknown ``kid``).

Access tokens are ES256 only: ``alg: none``, HMAC algorithms (the key-confusion attack that signs
with a public key as an HMAC secret), RS256 (even from our own RSA key) and every other algorithm
are refused before any key is used. Access tokens carry ``typ: at+jwt`` (RFC 9068), ID tokens
``typ: JWT``, so one cannot pass for the other.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey, RSAKey

from aria.apps.auth.errors import InvalidToken

ALGORITHM = "ES256"
RS256 = "RS256"
ID_TOKEN_ALGORITHMS = (RS256, ALGORITHM)  # the first is the default for OpenID Connect clients
RSA_KID_PREFIX = "rsa-"
ACCESS_TYPE = "at+jwt"
ID_TYPE = "JWT"
MAX_TOKEN_LENGTH = 8192
MAX_VERIFIED_TOKENS = 4096  # tokens remembered as signature-checked (about 2 MB)
_NUMBERS = (int, float)  # exact types: a JSON true is not a time


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_segment(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


def key_id(algorithm: str, version: int) -> str:
    """The ``kid`` of a key version: the bare version for ES256 (as tokens always had), ``rsa-N``
    for RS256, so the two keys' versions never collide in one JWKS."""
    return f"{RSA_KID_PREFIX}{version}" if algorithm == RS256 else str(version)


def _versions(info: Mapping[str, Any], keep_previous: int) -> list[tuple[int, str]]:
    """(version, public key PEM) of the latest version and ``keep_previous`` before it."""
    latest = int(info["latest_version"])
    versions = info.get("keys") or {}
    found = []
    for version in range(max(1, latest - keep_previous), latest + 1):
        entry = versions.get(str(version))
        if entry is not None and entry.get("public_key"):
            found.append((version, str(entry["public_key"])))
    if not found or found[-1][0] != latest:
        raise InvalidToken(f"signing key version {latest} has no public key in OpenBao's answer")
    return found


class KeyRing:
    """The public signing keys by ``kid`` and the versions that sign now.

    ``keys`` holds the ES256 keys, the only ones access tokens may name; ``rsa_keys`` the RS256
    keys of ID tokens (published, never accepted for access tokens).
    """

    def __init__(self) -> None:
        self.keys: dict[str, ECKey] = {}
        self.current: int = 0
        self.rsa_keys: dict[str, RSAKey] = {}
        self.rsa_current: int = 0

    @classmethod
    def from_transit(
        cls, info: Mapping[str, Any], keep_previous: int = 1, rsa_info: Mapping[str, Any] | None = None
    ) -> KeyRing:
        """Build from ``AppSecrets.read_key`` output of the ECDSA key (and of the RSA key, when
        given): each key's latest version and ``keep_previous`` before it."""
        ring = cls()
        for version, pem in _versions(info, keep_previous):
            ring.keys[key_id(ALGORITHM, version)] = ECKey.import_key(pem)
        ring.current = int(info["latest_version"])
        if rsa_info is not None:
            for version, pem in _versions(rsa_info, keep_previous):
                ring.rsa_keys[key_id(RS256, version)] = RSAKey.import_key(pem)
            ring.rsa_current = int(rsa_info["latest_version"])
        return ring

    def signing_version(self, algorithm: str) -> int:
        """The key version that signs ``algorithm`` tokens now.

        Raises:
            InvalidToken: no key for ``algorithm`` is loaded.
        """
        version = self.rsa_current if algorithm == RS256 else self.current if algorithm == ALGORITHM else 0
        if not version:
            raise InvalidToken(f"no {algorithm} signing key is loaded")
        return version

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set to publish: the ES256 keys, then the RS256 keys (current first)."""
        keys = []
        for kid in sorted(self.keys, key=int, reverse=True):
            public = self.keys[kid].as_dict(private=False)
            keys.append({**public, "kid": kid, "use": "sig", "alg": ALGORITHM})
        for kid in sorted(self.rsa_keys, key=lambda k: int(k.removeprefix(RSA_KID_PREFIX)), reverse=True):
            public = self.rsa_keys[kid].as_dict(private=False)
            keys.append({**public, "kid": kid, "use": "sig", "alg": RS256})
        return {"keys": keys}


class TokenVerifier:
    """Checks signature, algorithm, type, issuer, audience, times and revocation of a JWT.

    Args:
        issuer: The accepted ``iss`` (more join ``issuers`` when this node's issuer changes).
        audience: The default accepted ``aud``.
        leeway: Seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
        clock: The wall clock (seconds since the epoch).
    """

    def __init__(
        self, issuer: str, audience: str, leeway: float = 30.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.issuers: set[str] = {issuer}
        self.audience = audience
        self.leeway = leeway
        self.clock = clock
        self.ring = KeyRing()
        self.revoked_jtis: set[str] = set()
        self.not_before: dict[str, float] = {}
        self._headers: dict[str, dict[str, Any]] = {}
        # Tokens whose signature was checked: (token, type, audience) -> (key, claims). A client
        # sends the same token on every request until it expires; the ECDSA check is then the
        # bulk of the cost. A hit still re-checks the key and every claim (expiry, revocation).
        self._verified: dict[tuple[str, str, str], tuple[Any, dict[str, Any]]] = {}

    def header(self, token: object) -> dict[str, Any]:
        """The token's (unverified) header, after the checks that need no key.

        Raises:
            InvalidToken: malformed, or an algorithm other than ES256.
        """
        if not isinstance(token, str) or not token:
            raise InvalidToken("no token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken(f"longer than {MAX_TOKEN_LENGTH} characters")
        if token.count(".") != 2:
            raise InvalidToken("not a compact JWS (three dot-separated parts)")
        segment = token[: token.index(".")]
        cached = self._headers.get(segment)
        if cached is not None:
            return cached
        try:
            header = json.loads(b64url_decode(segment))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidToken("malformed header") from None
        if not isinstance(header, dict):
            raise InvalidToken("malformed header")
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise InvalidToken(f"algorithm {alg!r} is not allowed (only {ALGORITHM})")
        if "crit" in header or "jwk" in header or "jku" in header or "x5u" in header:
            raise InvalidToken("header names keys or extensions this issuer never uses")
        # The issuer uses a handful of headers (one per key version and type): remember the parse.
        if len(self._headers) >= 64:
            self._headers.clear()
        self._headers[segment] = header
        return header

    def verify(
        self,
        token: object,
        *,
        token_type: str = ACCESS_TYPE,
        audience: str | None = None,
        cached: bool = True,
    ) -> dict[str, Any]:
        """The verified claims of ``token`` (shared with later calls: do not change them).

        With ``cached``, a token whose signature this verifier already checked, under a key it
        still holds, skips the signature check; every claim is checked again.

        Raises:
            InvalidToken: with the reason (bad signature, unknown key, expired, not yet valid,
                wrong issuer, audience or type, revoked...).
        """
        audience = audience or self.audience
        if cached and type(token) is str:
            hit = self._verified.get((token, token_type, audience))
            if hit is not None:
                key, claims = hit
                kid = self.header(token).get("kid")
                if self.ring.keys.get(kid) is key:  # type: ignore[arg-type]
                    self.check_claims(claims, audience)
                    return claims
        header = self.header(token)
        kid = header.get("kid")
        key = self.ring.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken(f"unknown key id {kid!r}")
        if header.get("typ") != token_type:
            raise InvalidToken(f"token type {header.get('typ')!r} is not {token_type!r}")
        try:
            decoded = jwt.decode(token, key, algorithms=[ALGORITHM])  # type: ignore[arg-type]
        except BadSignatureError:
            raise InvalidToken("bad signature") from None
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidToken(f"undecodable ({type(exc).__name__})") from None
        claims = decoded.claims
        self.check_claims(claims, audience)
        if len(self._verified) >= MAX_VERIFIED_TOKENS:
            self._verified.clear()  # cheap bound; the tokens in use come back on their next call
        self._verified[(token, token_type, audience)] = (key, claims)  # type: ignore[index]
        return claims

    def check_claims(self, claims: Mapping[str, Any], audience: str) -> None:
        now = self.clock()
        leeway = self.leeway
        iss = claims.get("iss")
        if type(iss) is not str or iss not in self.issuers:
            raise InvalidToken(f"issuer {iss!r} is not {' or '.join(map(repr, sorted(self.issuers)))}")
        aud = claims.get("aud")
        if aud != audience and not (type(aud) is list and audience in aud):
            raise InvalidToken(f"audience {aud!r} does not include {audience!r}")
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        if type(exp) not in _NUMBERS:
            raise InvalidToken("no expiry")
        if now > exp + leeway:
            raise InvalidToken("expired")
        if nbf is not None and (type(nbf) not in _NUMBERS or now + leeway < nbf):
            raise InvalidToken("not yet valid")
        if type(iat) not in _NUMBERS or now + leeway < iat:
            raise InvalidToken("issued in the future")
        sub, jti = claims.get("sub"), claims.get("jti")
        if type(sub) is not str or not sub or type(jti) is not str or not jti:
            raise InvalidToken("missing subject or token id")
        if jti in self.revoked_jtis:
            raise InvalidToken("revoked")
        cutoff = self.not_before.get(sub)
        if cutoff is not None and iat < cutoff:
            raise InvalidToken("revoked: the subject's sessions were ended after it was issued")


Signer = Callable[[bytes, int], Awaitable[str]]


class TokenMinter:
    """Builds JWTs whose signature comes from ``sign(signing_input, key_version)`` (ES256) or
    ``rs256_sign`` (RS256).

    A signer returns OpenBao's ``vault:v<N>:<base64url signature>``; the version must be the one
    asked for, since it is already in the header as ``kid``. ``issuer`` is the ``iss`` to write,
    or a function that answers it at each mint (it may change once the gateway listens).
    """

    def __init__(
        self,
        sign: Signer,
        issuer: str | Callable[[], str],
        clock: Callable[[], float] = time.time,
        *,
        rs256_sign: Signer | None = None,
    ) -> None:
        self._signers = {ALGORITHM: sign}
        if rs256_sign is not None:
            self._signers[RS256] = rs256_sign
        self._issuer = issuer
        self.clock = clock

    @property
    def issuer(self) -> str:
        return self._issuer if isinstance(self._issuer, str) else self._issuer()

    async def mint(
        self,
        claims: Mapping[str, Any],
        *,
        key_version: int,
        ttl: float,
        token_type: str = ACCESS_TYPE,
        algorithm: str = ALGORITHM,
    ) -> tuple[str, dict[str, Any]]:
        """A signed token and its full claims (``iss``, ``iat``, ``nbf``, ``exp``, ``jti`` added).

        Raises:
            ValueError: ``algorithm`` has no signer here.
            InvalidToken: the signature came from another key version.
        """
        sign = self._signers.get(algorithm)
        if sign is None:
            raise ValueError(f"no signer for {algorithm!r}; this minter signs {sorted(self._signers)}")
        now = int(self.clock())
        full = {"iss": self.issuer, "iat": now, "nbf": now, "exp": now + int(ttl), "jti": uuid.uuid4().hex}
        full.update(claims)
        header = {"alg": algorithm, "typ": token_type, "kid": key_id(algorithm, key_version)}
        signing_input = f"{_json_segment(header)}.{_json_segment(full)}"
        signature = await sign(signing_input.encode(), key_version)
        prefix, _, rest = signature.partition(":")
        version, _, value = rest.partition(":")
        if prefix != "vault" or version != f"v{key_version}" or not value:
            raise InvalidToken(f"OpenBao signed with {signature.rsplit(':', 1)[0]!r}, not v{key_version}")
        return f"{signing_input}.{value.rstrip('=')}", full
