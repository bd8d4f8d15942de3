"""``AuthService``: the running aria_auth, published as ``aria_auth`` (see ``api.py``)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import structlog
import trio
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from aria.apps.auth import mfa
from aria.apps.auth.audit import AuditLog
from aria.apps.auth.errors import (
    AuthUnavailable,
    InvalidCredentials,
    InvalidToken,
    MfaRequired,
    RefreshTokenReused,
    TooManyAttempts,
    UnknownClient,
    UnknownGroup,
    UnknownPrincipal,
    UnknownRole,
)
from aria.apps.auth.issuer import issuer_source
from aria.apps.auth.passwords import Argon2Parameters, Passwords, Throttle, digest, same
from aria.apps.auth.policy import Decision, Policy, Principal, Resource, Role, check_name
from aria.apps.auth.store import Store
from aria.apps.auth.tokens import (
    ACCESS_TYPE,
    ID_TOKEN_ALGORITHMS,
    ID_TYPE,
    MAX_VERIFIED_TOKENS,
    RS256,
    KeyRing,
    TokenMinter,
    TokenVerifier,
    b64url,
)
from aria.apps.auth.turn import turn_credentials
from aria.apps.security.api import AppSecrets, CasConflict, SecretNotFound, SecurityError
from aria.errors import AriaError

log = structlog.get_logger("aria_auth")

SIGNING_KEY = "jwt"
RSA_SIGNING_KEY = "jwt-rsa"  # RS256 ID tokens (OpenID Connect requires RS256)
MAX_ISSUER_NAMES = 16
TURN_SECRET_PATH = "turn/shared-secret"
API_TOKEN_PREFIX = "aria_pat_"
REFRESH_TOKEN_PREFIX = "aria_rt_"
DEFAULT_ROLES = (Role.build("admin", ["*:*"], require_mfa=True, description="everything; needs MFA"),)
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


@dataclass(frozen=True)
class TokenSet:
    """What a successful login, refresh or OAuth grant returns."""

    access_token: str
    expires_in: int
    scope: str = ""
    refresh_token: str | None = None
    id_token: str | None = None
    token_type: str = "Bearer"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
        }
        if self.scope:
            out["scope"] = self.scope
        if self.refresh_token:
            out["refresh_token"] = self.refresh_token
        if self.id_token:
            out["id_token"] = self.id_token
        return out


def _public(row: Mapping[str, Any], roles: Iterable[str] = (), groups: Iterable[str] = ()) -> dict[str, Any]:
    """A principal as the API shows it: never its hashes or TOTP secret."""
    locked = row.get("locked_until")
    return {
        "id": row["id"],
        "kind": row["kind"],
        "name": row["name"],
        "tenant": row["tenant"],
        "disabled": row["disabled"],
        "mfa": bool(row.get("totp_confirmed")),
        "locked_until": locked.timestamp() if locked else None,
        "attributes": row.get("attributes") or {},
        "roles": sorted(roles),
        "groups": sorted(groups),
    }


def _at_hash(access_token: str) -> str:
    return b64url(hashlib.sha256(access_token.encode()).digest()[:16])


class AuthService:
    """Identities, credentials, tokens, MFA, authorisation and the audit log of one node.

    Built and started by the app (``aria/apps/auth/app.py``); reach it with
    ``aria.whereis("aria_auth")`` or ``ctx.api("aria_auth")``.

    ``clock`` is the wall clock every decision reads (token times, lockouts, expiries); ``issuer``
    answers the issuer URL now (default: ``settings.issuer``, else derived from ``coordinate``, the
    ``[coordinate]`` section, and the URL the gateway announces; see ``issuer.py``).
    """

    def __init__(
        self,
        settings: Any,
        db: Any,
        security: Any,
        *,
        services: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
        issuer: Callable[[], str] | None = None,
        coordinate: Any = None,
    ) -> None:
        self.settings = settings
        self.gateway: Any = None  # aria_coordinate's service once it listens (see gateway_listening)
        self.store = Store(db)
        self.secrets = AppSecrets(security, "aria_auth")
        self.clock = clock
        self._issuer = issuer or issuer_source(settings.issuer, coordinate, lambda: self.gateway)
        self.audience = settings.audience
        self.passwords = Passwords(
            Argon2Parameters(
                settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
            ),
            settings.min_password_length,
        )
        self.ip_throttle = Throttle(settings.ip_max_failures, settings.ip_window, settings.ip_lockout)
        # Unknown user names are throttled like accounts, so lockouts do not reveal which names exist.
        self.name_throttle = Throttle(
            settings.max_failed_logins, settings.lockout_seconds, settings.lockout_seconds
        )
        self.verifier = TokenVerifier(
            self._issuer(), self.audience, settings.clock_leeway, lambda: self.clock()
        )
        self.minter = TokenMinter(
            self._sign, lambda: self.issuer, lambda: self.clock(), rs256_sign=self._sign_rs256
        )
        self.policy = Policy(DEFAULT_ROLES)
        self.audit_log = AuditLog(self.store, lambda: self.clock(), settings.audit_flush_interval)
        self._services = tuple(services)
        self._turn_secret = b""
        self._keys_refreshed_at = -1e9
        self._key_lock = trio.Lock()
        self._api_token_cache: dict[str, tuple[float, Principal]] = {}
        # Principals of verified access tokens, keyed by the claims object the verifier's cache
        # hands back for the same token (its identity proves the claims are the ones checked).
        self._principals: dict[str, Principal] = {}
        self._provider_cache: dict[str, dict[str, Any]] = {}
        self.started_at = 0.0
        self.counters = {"logins": 0, "login_failures": 0, "verifications_failed": 0, "tokens_issued": 0}

    @property
    def issuer(self) -> str:
        """The issuer URL now: the ``iss`` of new tokens and the base of every published URL.

        A new value (the gateway started listening, on a port picked then) joins the names the
        verifier accepts, so tokens issued under the earlier one stay valid until they expire.
        """
        value = self._issuer()
        issuers = self.verifier.issuers
        if value not in issuers:
            if len(issuers) >= MAX_ISSUER_NAMES:
                issuers.clear()  # a gateway restarted on many picked ports: keep the recent names only
            issuers.add(value)
        return value

    def gateway_listening(self, gateway: Any) -> None:
        """aria_coordinate calls this once it listens: the issuer follows the gateway's ``url``
        (when ``[auth] issuer`` and ``[coordinate] public_url`` are empty; see ``issuer.py``)."""
        self.gateway = gateway
        self.issuer  # noqa: B018 - the new name joins the accepted ones now

    # ---- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the signing keys and TURN secret if missing, load keys, roles and revocations."""
        try:
            await self.secrets.create_key(SIGNING_KEY, "ecdsa-p256")
            await self.secrets.create_key(RSA_SIGNING_KEY, "rsa-2048")
            await self.refresh_keys()
            self._turn_secret = await self._ensure_turn_secret()
        except SecurityError as exc:
            raise AuthUnavailable(f"aria_auth cannot prepare its keys in aria_security: {exc}") from exc
        for role in DEFAULT_ROLES:
            await self.store.insert_role_if_missing(
                role.name, [g.to_json() for g in role.grants], role.require_mfa, role.description
            )
        if self._services:
            await self.store.ensure_services(self._services)
        await self.reload()
        self.started_at = self.clock()

    async def _ensure_turn_secret(self) -> bytes:
        try:
            value = (await self.secrets.get_secret(TURN_SECRET_PATH))["value"]
        except SecretNotFound:
            value = await self.secrets.generate_password(48)
            try:
                await self.secrets.put_secret(TURN_SECRET_PATH, {"value": value}, cas=0)
            except CasConflict:  # another node made it first: use theirs
                value = (await self.secrets.get_secret(TURN_SECRET_PATH))["value"]
        return str(value).encode()

    async def run(self) -> None:
        """Background work until cancelled: the audit flusher and the cache refresher."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.audit_log.run)
            nursery.start_soon(self._refresh_loop)

    async def _refresh_loop(self) -> None:
        last_prune = self.clock()
        while True:
            await trio.sleep(self.settings.cache_refresh_interval)
            try:
                await self.reload()
                if self.clock() - self._keys_refreshed_at >= self.settings.jwks_refresh_interval:
                    await self.refresh_keys()
                if self.clock() - last_prune >= 3600:
                    await self.store.prune(self.clock(), self.settings.audit_retention_days * 86400)
                    last_prune = self.clock()
            except AriaError as exc:
                log.warning("auth caches not refreshed; keeping the previous ones", error=str(exc))

    async def reload(self) -> None:
        """Re-read roles, the revocation list and session cutoffs (other nodes may have changed them)."""
        roles = [
            Role.build(
                r["name"], r["permissions"], require_mfa=r["require_mfa"], description=r["description"]
            )
            for r in await self.store.roles()
        ]
        self.policy = Policy(roles)
        self.verifier.revoked_jtis = await self.store.revoked_jtis(self.clock())
        self.verifier.not_before = await self.store.sessions_cutoffs()

    async def refresh_keys(self) -> None:
        """Fetch the public signing keys (ES256 and RS256) from OpenBao (the JWKS cache)."""
        async with self._key_lock:
            info = await self.secrets.read_key(SIGNING_KEY)
            rsa_info = await self.secrets.read_key(RSA_SIGNING_KEY)
            self.verifier.ring = KeyRing.from_transit(info, self.settings.jwks_previous_keys, rsa_info)
            self._keys_refreshed_at = self.clock()

    async def rotate_signing_key(self) -> int:
        """Make a new version of both signing keys (ES256 and RS256); tokens signed by the previous
        versions stay valid. Returns the new ES256 version (the ``kid`` of new access tokens)."""
        version = await self.secrets.rotate_key(SIGNING_KEY)
        rsa_version = await self.secrets.rotate_key(RSA_SIGNING_KEY)
        await self.refresh_keys()
        self.audit_log.record(
            "admin",
            "success",
            action="rotate_signing_key",
            reason=f"now ES256 version {version}, RS256 version {rsa_version}",
        )
        return version

    def jwks(self) -> dict[str, Any]:
        """The public keys (current and previous versions) as a JWKS."""
        return self.verifier.ring.jwks()

    async def _sign(self, data: bytes, key_version: int) -> str:
        try:
            return await self.secrets.sign(SIGNING_KEY, data, key_version=key_version)
        except SecurityError as exc:
            raise AuthUnavailable(f"OpenBao could not sign a token: {exc}") from exc

    async def _sign_rs256(self, data: bytes, key_version: int) -> str:
        try:
            return await self.secrets.sign(
                RSA_SIGNING_KEY, data, key_version=key_version, signature_algorithm="pkcs1v15"
            )
        except SecurityError as exc:
            raise AuthUnavailable(f"OpenBao could not sign an ID token: {exc}") from exc

    def status(self) -> dict[str, Any]:
        return {
            "app": "aria_auth",
            "state": "running",
            "implemented": True,
            "issuer": self.issuer,
            "signing_key_version": self.verifier.ring.current,
            "rsa_signing_key_version": self.verifier.ring.rsa_current,
            "published_keys": [key["kid"] for key in self.jwks()["keys"]],
            "roles": sorted(self.policy.roles),
            "revoked_tokens": len(self.verifier.revoked_jtis),
            "audit": {
                "pending": self.audit_log.pending,
                "written": self.audit_log.written,
                "dropped": self.audit_log.dropped,
            },
            "argon2": self.passwords.parameters.describe(),
            **self.counters,
        }

    async def health(self) -> dict[str, Any]:
        ok = bool(self.verifier.ring.keys)
        return {"ok": ok, "app": "aria_auth", "signing_key_version": self.verifier.ring.current}

    # ---- identities -----------------------------------------------------------------------------

    async def _row(self, name_or_id: str) -> dict[str, Any]:
        row = await self.store.principal_by_name(name_or_id) if isinstance(name_or_id, str) else None
        if row is None and isinstance(name_or_id, str):
            row = await self.store.principal_by_id(name_or_id)
        if row is None:
            raise UnknownPrincipal(str(name_or_id))
        return row

    async def add_user(
        self,
        name: str,
        password: str | None,
        *,
        tenant: str = "",
        roles: Iterable[str] = (),
        attributes: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create a user (``password`` None: a user who can only log in through federation).

        Raises:
            ValueError: for a malformed name, a weak password, or a name already taken.
            UnknownRole: if a role does not exist.
        """
        check_name(name, "user")
        if password is not None:
            self.passwords.check_new(password, name)
        for role in roles:
            self._role(role)
        password_hash = await self.passwords.hash(password) if password is not None else None
        row = await self.store.create_principal("user", name, tenant, password_hash, dict(attributes or {}))
        if row is None:
            raise ValueError(f"a user or service named {name!r} exists already")
        for role in roles:
            await self.store.bind_role(role, "principal", row["id"])
        self.audit_log.record(
            "admin", "success", principal=name, action="add_user", reason=f"tenant {tenant!r}"
        )
        return _public(row, roles)

    async def add_service(self, name: str, *, tenant: str = "", roles: Iterable[str] = ()) -> dict[str, Any]:
        """Create a service identity (an app or an external client); it has no password."""
        check_name(name, "service")
        for role in roles:
            self._role(role)
        row = await self.store.create_principal("service", name, tenant, None, {})
        if row is None:
            raise ValueError(f"a user or service named {name!r} exists already")
        for role in roles:
            await self.store.bind_role(role, "principal", row["id"])
        self.audit_log.record("admin", "success", principal=name, action="add_service")
        return _public(row, roles)

    async def principal(self, name_or_id: str) -> dict[str, Any]:
        """A user or service (by name or id) with its roles and groups.

        Raises:
            UnknownPrincipal: if there is none.
        """
        row = await self._row(name_or_id)
        return _public(row, await self.store.roles_of(row["id"]), await self.store.groups_of(row["id"]))

    async def principals(self, kind: str | None = None) -> list[dict[str, Any]]:
        if kind not in (None, "user", "service"):
            raise ValueError(f"principal kind {kind!r} must be 'user' or 'service'")
        return [_public(row) for row in await self.store.list_principals(kind)]

    async def set_password(self, name: str, password: str) -> None:
        """Set a user's password; it also lifts a lockout and ends the user's sessions."""
        row = await self._row(name)
        if row["kind"] != "user":
            raise ValueError(f"{name!r} is a service identity; services have no password")
        self.passwords.check_new(password, row["name"])
        await self.store.set_password_hash(row["id"], await self.passwords.hash(password))
        await self.end_sessions(row["name"], reason="password changed")
        self.audit_log.record("admin", "success", principal=row["name"], action="set_password")

    async def disable(self, name: str) -> None:
        """Disable a user or service: logins fail and every token it holds stops verifying."""
        row = await self._row(name)
        now = self.clock()
        await self.store.set_disabled(row["id"], True, now)
        await self._revoke_families(row["id"], "principal disabled")
        self.verifier.not_before[row["id"]] = now
        self._api_token_cache.clear()
        self.audit_log.record("admin", "success", principal=row["name"], action="disable")

    async def enable(self, name: str) -> None:
        row = await self._row(name)
        await self.store.set_disabled(row["id"], False, self.clock())
        self.audit_log.record("admin", "success", principal=row["name"], action="enable")

    async def end_sessions(self, name: str, *, reason: str = "sessions ended") -> None:
        """Revoke every refresh token and every access token issued so far to ``name``."""
        row = await self._row(name)
        now = self.clock()
        await self.store.end_sessions(row["id"], now)
        self.verifier.not_before[row["id"]] = now
        await self._revoke_families(row["id"], reason)

    async def _revoke_families(self, principal_id: str, reason: str) -> None:
        for family in await self.store.families_of(principal_id):
            await self._revoke_family(family, reason)

    # ---- roles and groups -----------------------------------------------------------------------

    def _role(self, name: str) -> Role:
        role = self.policy.roles.get(name)
        if role is None:
            raise UnknownRole(name)
        return role

    async def put_role(
        self,
        name: str,
        permissions: Iterable[str | Mapping[str, Any]],
        *,
        require_mfa: bool = False,
        description: str = "",
    ) -> dict[str, Any]:
        """Create or replace a role.

        Raises:
            ValueError: naming the malformed permission or condition.
        """
        role = Role.build(name, list(permissions), require_mfa=require_mfa, description=description)
        await self.store.put_role(name, [g.to_json() for g in role.grants], require_mfa, description)
        self.policy.roles[name] = role
        self.audit_log.record("admin", "success", action="put_role", resource=f"role/{name}")
        return role.to_json()

    async def delete_role(self, name: str) -> None:
        if not await self.store.delete_role(name):
            raise UnknownRole(name)
        self.policy.roles.pop(name, None)
        self.audit_log.record("admin", "success", action="delete_role", resource=f"role/{name}")

    def roles(self) -> list[dict[str, Any]]:
        return [self.policy.roles[name].to_json() for name in sorted(self.policy.roles)]

    async def grant_role(self, role: str, *, principal: str | None = None, group: str | None = None) -> None:
        """Bind ``role`` to a principal or a group (exactly one). Takes effect at the next login."""
        self._role(role)
        kind, subject = await self._subject(principal, group)
        await self.store.bind_role(role, kind, subject)
        self.audit_log.record(
            "admin", "success", action="grant_role", resource=f"role/{role}", principal=subject
        )

    async def revoke_role(self, role: str, *, principal: str | None = None, group: str | None = None) -> None:
        self._role(role)
        kind, subject = await self._subject(principal, group)
        if not await self.store.unbind_role(role, kind, subject):
            raise ValueError(f"role {role!r} is not bound to {principal or group!r}")
        self.audit_log.record(
            "admin", "success", action="revoke_role", resource=f"role/{role}", principal=subject
        )

    async def _subject(self, principal: str | None, group: str | None) -> tuple[str, str]:
        if (principal is None) == (group is None):
            raise ValueError("give exactly one of principal= or group=")
        if principal is not None:
            return "principal", (await self._row(principal))["id"]
        assert group is not None
        if not await self.store.group_exists(group):
            raise UnknownGroup(group)
        return "group", group

    async def add_group(self, name: str, description: str = "") -> None:
        check_name(name, "group")
        if not await self.store.create_group(name, description):
            raise ValueError(f"group {name!r} exists already")
        self.audit_log.record("admin", "success", action="add_group", resource=f"group/{name}")

    async def add_to_group(self, group: str, principal: str) -> None:
        if not await self.store.group_exists(group):
            raise UnknownGroup(group)
        await self.store.add_member(group, (await self._row(principal))["id"])
        self.audit_log.record(
            "admin", "success", action="add_to_group", resource=f"group/{group}", principal=principal
        )

    async def remove_from_group(self, group: str, principal: str) -> None:
        if not await self.store.remove_member(group, (await self._row(principal))["id"]):
            raise ValueError(f"{principal!r} is not a member of group {group!r}")

    # ---- password authentication ----------------------------------------------------------------

    async def authenticate(
        self, username: str, password: str, *, otp: str | None = None, ip: str = "", request_id: str = ""
    ) -> tuple[dict[str, Any], list[str], list[str]]:
        """Check a user's password (and second factor where needed): the user's row, roles and amr.

        Raises:
            InvalidCredentials: wrong name, password or code, or a disabled account (one message).
            TooManyAttempts: the account or the client address is locked out.
            MfaRequired: the password is right and a second factor is needed.
        """
        now = self.clock()
        audit = {"kind": "authn", "action": "login", "request_id": request_id, "ip": ip}
        name = username if isinstance(username, str) else ""
        wait = self.ip_throttle.retry_after(ip, now) if ip else 0.0
        if wait:
            self.audit_log.record(
                result="failure", principal=name, reason="client address locked out", **audit
            )
            raise TooManyAttempts(wait)
        row = None
        try:
            row = await self.store.principal_by_name(check_name(name, "user"))
        except ValueError:
            pass
        if row is None or row["kind"] != "user":
            wait = self.name_throttle.retry_after(name, now)
            if wait:
                self.audit_log.record(result="failure", principal=name, reason="account locked out", **audit)
                raise TooManyAttempts(wait)
            await self.passwords.verify(None, password)  # the same work as for a real account
            self.name_throttle.failed(name, now)
            self._failed_from(ip, now)
            self.audit_log.record(result="failure", principal=name, reason="unknown user", **audit)
            raise InvalidCredentials()
        locked = row["locked_until"].timestamp() if row["locked_until"] else 0.0
        if locked > now:
            self.audit_log.record(result="failure", principal=name, reason="account locked out", **audit)
            raise TooManyAttempts(locked - now)
        if not await self.passwords.verify(row["password_hash"], password):
            await self._failed(row, ip, now, "wrong password", audit)
            raise InvalidCredentials()
        if row["disabled"]:
            self.audit_log.record(result="failure", principal=name, reason="account disabled", **audit)
            raise InvalidCredentials()
        roles = await self.store.roles_of(row["id"])
        amr = ["pwd"]
        needs_mfa = row["totp_confirmed"] or any(
            self.policy.roles[r].require_mfa for r in roles if r in self.policy.roles
        )
        if needs_mfa:
            if not row["totp_confirmed"]:
                self.audit_log.record(
                    result="failure", principal=name, reason="MFA enrolment required", **audit
                )
                raise MfaRequired(enrolment=True)
            if otp is None or otp == "":
                self.audit_log.record(
                    result="failure", principal=name, reason="second factor required", **audit
                )
                raise MfaRequired()
            method = await self._second_factor(row, otp, now)
            if method is None:
                await self._failed(row, ip, now, "wrong or replayed one-time code", audit)
                raise InvalidCredentials("invalid one-time code")
            amr.append("otp")
            if method == "recovery":
                amr.append("recovery")
        await self.store.reset_login_failures(row["id"])
        if self.passwords.needs_rehash(row["password_hash"]):
            await self.store.set_password_hash(row["id"], await self.passwords.hash(password))
        self.counters["logins"] += 1
        self.audit_log.record(result="success", principal=name, reason="+".join(amr), **audit)
        return row, roles, amr

    def _failed_from(self, ip: str, now: float) -> None:
        self.counters["login_failures"] += 1
        if ip:
            self.ip_throttle.failed(ip, now)

    async def _failed(
        self, row: Mapping[str, Any], ip: str, now: float, reason: str, audit: dict[str, Any]
    ) -> None:
        self._failed_from(ip, now)
        until = await self.store.record_login_failure(
            row["id"], now, self.settings.max_failed_logins, self.settings.lockout_seconds
        )
        if until is not None:
            reason += f"; account locked for {self.settings.lockout_seconds:g} s"
        self.audit_log.record(result="failure", principal=row["name"], reason=reason, **audit)

    async def _second_factor(self, row: Mapping[str, Any], code: str, now: float) -> str | None:
        """'totp' or 'recovery' when ``code`` is a valid, unused second factor for the row's user."""
        if mfa.normalise_code(code) is not None:
            secret = await self._totp_secret(row)
            step = mfa.matching_step(secret, code, now, row["totp_last_step"])
            if step is not None and await self.store.claim_totp_step(row["id"], step):
                return "totp"
            return None
        recovery = mfa.normalise_recovery_code(code)
        if recovery is not None and await self.store.use_recovery_code(row["id"], digest(recovery), now):
            return "recovery"
        return None

    async def _totp_secret(self, row: Mapping[str, Any]) -> str:
        encrypted = row["totp_secret"]
        if not encrypted:
            raise MfaRequired(enrolment=True)
        return (await self.secrets.decrypt("default", encrypted, context=f"totp:{row['id']}")).decode()

    async def login(
        self,
        username: str,
        password: str,
        *,
        otp: str | None = None,
        ip: str = "",
        request_id: str = "",
        scope: str = "",
    ) -> TokenSet:
        """Password (and second factor) login: a short-lived access token and a refresh token.

        Raises:
            InvalidCredentials, TooManyAttempts, MfaRequired: see :meth:`authenticate`.
        """
        row, roles, amr = await self.authenticate(username, password, otp=otp, ip=ip, request_id=request_id)
        return await self.issue_tokens(row, roles, amr=amr, client_id="", scope=scope, auth_time=self.clock())

    # ---- tokens ---------------------------------------------------------------------------------

    async def issue_tokens(
        self,
        row: Mapping[str, Any],
        roles: Iterable[str],
        *,
        amr: Iterable[str],
        client_id: str,
        scope: str,
        auth_time: float,
        family: str | None = None,
        refresh: bool = True,
        nonce: str = "",
        id_token_alg: str | None = None,
    ) -> TokenSet:
        """Mint an access token (and a refresh token of ``family``, and an ID token when ``scope``
        has ``openid`` and a client asked) for an authenticated principal.

        The ID token is signed with ``id_token_alg``, by default the client's registered
        ``id_token_signed_response_alg`` (RS256 unless it chose ES256); access tokens are ES256.
        """
        amr = list(amr)
        claims = {
            "sub": row["id"],
            "aud": self.audience,
            "name": row["name"],
            "kind": row["kind"],
            "tenant": row["tenant"],
            "roles": sorted(roles),
            "amr": amr,
            "auth_time": int(auth_time),
        }
        if scope:
            claims["scope"] = scope
        if client_id:
            claims["client_id"] = client_id
        ttl = self.settings.access_token_ttl
        access, full = await self.minter.mint(claims, key_version=self.verifier.ring.current, ttl=ttl)
        refresh_token = None
        if refresh:
            refresh_token = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
            now = self.clock()
            await self.store.insert_refresh(
                digest(refresh_token),
                family or str(uuid.uuid4()),
                {
                    "principal_id": row["id"],
                    "client_id": client_id,
                    "scope": scope,
                    "amr": amr,
                    "auth_time": int(auth_time),
                    "access_jti": full["jti"],
                    "access_expires_at": full["exp"],
                    "expires_at": now + self.settings.refresh_token_ttl,
                },
            )
        id_token = None
        if client_id and "openid" in scope.split():
            id_claims = {
                "sub": row["id"],
                "aud": client_id,
                "auth_time": int(auth_time),
                "amr": amr,
                "name": row["name"],
                "preferred_username": row["name"],
                "at_hash": _at_hash(access),
            }
            if nonce:
                id_claims["nonce"] = nonce
            if id_token_alg is None:
                record = await self.store.client(client_id)
                id_token_alg = record["id_token_signed_response_alg"] if record else RS256
            id_token, _ = await self.minter.mint(
                id_claims,
                key_version=self.verifier.ring.signing_version(id_token_alg),
                ttl=ttl,
                token_type=ID_TYPE,
                algorithm=id_token_alg,
            )
        self.counters["tokens_issued"] += 1
        return TokenSet(access, int(ttl), scope, refresh_token, id_token)

    async def refresh(
        self, refresh_token: str, *, client_id: str | None = None, ip: str = "", request_id: str = ""
    ) -> TokenSet:
        """Exchange a refresh token for new tokens; the old one is used up (rotation).

        Raises:
            RefreshTokenReused: it was already used: the whole family is revoked (and the access
                tokens issued with it go on the revocation list).
            InvalidToken: unknown, revoked, expired, or issued to another client.
        """
        audit = {"kind": "token", "action": "refresh", "request_id": request_id, "ip": ip}
        if not isinstance(refresh_token, str) or not refresh_token.startswith(REFRESH_TOKEN_PREFIX):
            self.audit_log.record(result="failure", reason="not a refresh token", **audit)
            raise InvalidToken("not a refresh token")
        token_hash = digest(refresh_token)
        known = await self.store.refresh_by_hash(token_hash)
        if known is None:
            self.audit_log.record(result="failure", reason="unknown refresh token", **audit)
            raise InvalidToken("unknown refresh token")
        if client_id is not None and not same(known["client_id"], client_id):
            self.audit_log.record(
                result="failure", principal=known["principal_id"], reason="wrong client", **audit
            )
            raise InvalidToken("refresh token issued to another client")
        now = self.clock()
        used = await self.store.use_refresh(token_hash, now)
        if used is None:
            if known["used_at"] is not None:
                await self._revoke_family(known["family_id"], "refresh token reused")
                self.audit_log.record(
                    result="failure",
                    principal=known["principal_id"],
                    reason=f"refresh token reused: family {known['family_id']} revoked",
                    **audit,
                )
                raise RefreshTokenReused(known["family_id"])
            reason = "refresh token revoked" if known["revoked_at"] is not None else "refresh token expired"
            self.audit_log.record(result="failure", principal=known["principal_id"], reason=reason, **audit)
            raise InvalidToken(reason)
        row = await self.store.principal_by_id(used["principal_id"])
        if row is None or row["disabled"]:
            await self._revoke_family(used["family_id"], "principal disabled")
            self.audit_log.record(
                result="failure", principal=used["principal_id"], reason="disabled", **audit
            )
            raise InvalidToken("the token's principal is disabled")
        roles = await self.store.roles_of(row["id"])
        tokens = await self.issue_tokens(
            row,
            roles,
            amr=used["amr"],
            client_id=used["client_id"],
            scope=used["scope"],
            auth_time=used["auth_time"],
            family=used["family_id"],
        )
        self.audit_log.record(
            result="success", principal=row["name"], reason="refresh token rotated", **audit
        )
        return tokens

    async def _revoke_family(self, family: str, reason: str) -> None:
        now = self.clock()
        for jti, expires_at in await self.store.revoke_family(family, reason, now):
            await self.store.revoke_jti(jti, expires_at, reason, now)
            self.verifier.revoked_jtis.add(jti)

    async def revoke_token(self, token: str, *, request_id: str = "", reason: str = "revoked") -> bool:
        """Revoke an access token (its ``jti`` joins the revocation list) or a refresh token (its
        whole family). Returns False for a token that is not ours or not valid (RFC 7009: no error)."""
        audit = {"kind": "token", "action": "revoke", "request_id": request_id}
        if isinstance(token, str) and token.startswith(REFRESH_TOKEN_PREFIX):
            known = await self.store.refresh_by_hash(digest(token))
            if known is None:
                return False
            await self._revoke_family(known["family_id"], reason)
            self.audit_log.record(result="success", principal=known["principal_id"], reason=reason, **audit)
            return True
        try:
            claims = self.verifier.verify(token)
        except InvalidToken:
            return False
        now = self.clock()
        await self.store.revoke_jti(claims["jti"], float(claims["exp"]), reason, now)
        self.verifier.revoked_jtis.add(claims["jti"])
        self.audit_log.record(
            result="success", principal=claims.get("name", claims["sub"]), reason=reason, **audit
        )
        return True

    def verify_claims(
        self, token: str, *, audience: str | None = None, token_type: str = ACCESS_TYPE, cached: bool = True
    ) -> dict[str, Any]:
        """Synchronous verification against the cached keys (no I/O); see :meth:`verify_token`.
        ``cached=False`` checks the signature even of a token seen before."""
        return self.verifier.verify(token, audience=audience, token_type=token_type, cached=cached)

    async def verify_token(
        self, token: str, *, audience: str | None = None, ip: str = "", request_id: str = ""
    ) -> Principal:
        """The principal an access token stands for. Fast: cached keys and revocation list, no
        round trip (except a rate-limited key refresh when a token names a key not seen yet).

        Raises:
            InvalidToken: forged, expired, not yet valid, wrong issuer/audience/type, or revoked.
        """
        try:
            try:
                claims = self.verifier.verify(token, audience=audience)
            except InvalidToken as exc:
                if (
                    not exc.reason.startswith("unknown key id")
                    or not await self._refresh_keys_for_unknown_kid()
                ):
                    raise
                claims = self.verifier.verify(token, audience=audience)
        except InvalidToken as exc:
            self.counters["verifications_failed"] += 1
            self.audit_log.record(
                "authn", "failure", action="verify_token", reason=exc.reason, request_id=request_id, ip=ip
            )
            raise
        known = self._principals.get(token)
        if known is not None and known.claims is claims:
            return known
        if len(self._principals) >= MAX_VERIFIED_TOKENS:
            self._principals.clear()  # the verifier's bound; tokens in use come back on their next call
        principal = self._principals[token] = Principal.from_claims(claims)
        return principal

    async def _refresh_keys_for_unknown_kid(self) -> bool:
        if self.clock() - self._keys_refreshed_at < self.settings.unknown_kid_refresh_interval:
            return False
        before = set(self.verifier.ring.keys)
        try:
            await self.refresh_keys()
        except AriaError:
            return False
        return set(self.verifier.ring.keys) != before

    async def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 view of a token: ``{"active": False}`` unless it is valid now."""
        if isinstance(token, str) and token.startswith(REFRESH_TOKEN_PREFIX):
            known = await self.store.refresh_by_hash(digest(token))
            if (
                known is None
                or known["used_at"]
                or known["revoked_at"]
                or known["expires_at"].timestamp() < self.clock()
            ):
                return {"active": False}
            row = await self.store.principal_by_id(known["principal_id"])
            if row is None or row["disabled"]:
                return {"active": False}
            return {
                "active": True,
                "token_type": "refresh_token",
                "sub": row["id"],
                "username": row["name"],
                "client_id": known["client_id"],
                "scope": known["scope"],
                "exp": int(known["expires_at"].timestamp()),
                "iss": self.issuer,
            }
        try:
            claims = self.verifier.verify(token)
        except InvalidToken:
            return {"active": False}
        return {
            "active": True,
            "token_type": "Bearer",
            "sub": claims["sub"],
            "username": claims.get("name"),
            "client_id": claims.get("client_id", ""),
            "scope": claims.get("scope", ""),
            "exp": claims["exp"],
            "iat": claims["iat"],
            "nbf": claims.get("nbf"),
            "iss": claims["iss"],
            "aud": claims["aud"],
            "jti": claims["jti"],
        }

    async def issue_service_token(self, service: str, *, scope: str = "") -> TokenSet:
        """An access token for a service identity (each app has one), without a refresh token."""
        row = await self._row(service)
        if row["kind"] != "service" or row["disabled"]:
            raise ValueError(f"{service!r} is not an enabled service identity")
        roles = await self.store.roles_of(row["id"])
        tokens = await self.issue_tokens(
            row, roles, amr=["service"], client_id="", scope=scope, auth_time=self.clock(), refresh=False
        )
        self.audit_log.record("authn", "success", principal=service, action="service_token")
        return tokens

    # ---- API tokens -----------------------------------------------------------------------------

    async def create_api_token(
        self, principal: str, name: str, *, scope: str = "", ttl: float | None = None
    ) -> tuple[str, str]:
        """A long-lived opaque token for scripts and services: ``(token, token_id)``. Only its hash
        is stored; the token is shown once."""
        row = await self._row(principal)
        check_name(name, "API token")
        if ttl is not None and ttl <= 0:
            raise ValueError(f"an API token's ttl must be positive, not {ttl!r}")
        token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = self.clock() + ttl if ttl is not None else None
        token_id = await self.store.insert_api_token(digest(token), row["id"], name, scope, expires)
        self.audit_log.record(
            "admin", "success", principal=row["name"], action="create_api_token", resource=token_id
        )
        return token, token_id

    async def verify_api_token(self, token: str, *, ip: str = "", request_id: str = "") -> Principal:
        """The principal an API token stands for (cached for a few seconds).

        Raises:
            InvalidToken: unknown, revoked, expired, or its principal is disabled.
        """
        now = self.clock()
        if not isinstance(token, str) or not token.startswith(API_TOKEN_PREFIX) or len(token) > 200:
            raise InvalidToken("not an API token")
        key = digest(token)
        cached = self._api_token_cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await self.store.api_token(key)
        reason = None
        if record is None:
            reason = "unknown API token"
        elif record["revoked_at"] is not None:
            reason = "API token revoked"
        elif record["expires_at"] is not None and record["expires_at"].timestamp() < now:
            reason = "API token expired"
        row = await self.store.principal_by_id(record["principal_id"]) if record else None
        if reason is None and (row is None or row["disabled"]):
            reason = "the API token's principal is disabled"
        if reason is not None or row is None or record is None:
            self.audit_log.record(
                "authn",
                "failure",
                action="verify_api_token",
                reason=str(reason),
                request_id=request_id,
                ip=ip,
            )
            raise InvalidToken(str(reason))
        roles = await self.store.roles_of(row["id"])
        principal = Principal(
            id=row["id"],
            name=row["name"],
            kind=row["kind"],
            tenant=row["tenant"],
            roles=tuple(roles),
            amr=("api_token",),
            scope=record["scope"],
            claims={"token_id": record["id"]},
        )
        self._api_token_cache[key] = (now + self.settings.api_token_cache_seconds, principal)
        return principal

    async def revoke_api_token(self, token_id: str) -> None:
        if not await self.store.revoke_api_token(token_id, self.clock()):
            raise ValueError(f"no live API token with id {token_id!r}")
        self._api_token_cache.clear()
        self.audit_log.record("admin", "success", action="revoke_api_token", resource=token_id)

    # ---- MFA ------------------------------------------------------------------------------------

    async def enrol_totp(self, name: str) -> dict[str, str]:
        """Start TOTP enrolment: a new secret (stored encrypted by aria_security) and its otpauth URI.
        Until :meth:`confirm_totp`, login does not ask for codes."""
        row = await self._row(name)
        if row["kind"] != "user":
            raise ValueError(f"{name!r} is a service identity; only users enrol TOTP")
        secret = mfa.new_secret()
        encrypted = await self.secrets.encrypt("default", secret, context=f"totp:{row['id']}")
        await self.store.set_totp(row["id"], encrypted, confirmed=False)
        self.audit_log.record("admin", "success", principal=row["name"], action="enrol_totp")
        return {"secret": secret, "uri": mfa.provisioning_uri(secret, row["name"], self.settings.totp_issuer)}

    async def confirm_totp(self, name: str, code: str) -> list[str]:
        """Finish enrolment with a code from the app; returns the recovery codes (shown once).

        Raises:
            InvalidCredentials: if the code is wrong.
        """
        row = await self._row(name)
        secret = await self._totp_secret(row)
        step = mfa.matching_step(secret, code, self.clock(), row["totp_last_step"])
        if step is None or not await self.store.claim_totp_step(row["id"], step):
            self.audit_log.record(
                "authn", "failure", principal=row["name"], action="confirm_totp", reason="wrong code"
            )
            raise InvalidCredentials("invalid one-time code")
        await self.store.set_totp(row["id"], row["totp_secret"], confirmed=True)
        await self.store.claim_totp_step(row["id"], step)
        codes = mfa.new_recovery_codes(self.settings.recovery_codes)
        await self.store.replace_recovery_codes(row["id"], [digest(c) for c in codes])
        self.audit_log.record("authn", "success", principal=row["name"], action="confirm_totp")
        return codes

    async def disable_totp(self, name: str) -> None:
        row = await self._row(name)
        await self.store.set_totp(row["id"], None, confirmed=False)
        await self.store.replace_recovery_codes(row["id"], [])
        self.audit_log.record("admin", "success", principal=row["name"], action="disable_totp")

    async def recovery_codes_left(self, name: str) -> int:
        return await self.store.recovery_codes_left((await self._row(name))["id"])

    # ---- authorisation --------------------------------------------------------------------------

    def authorize_now(
        self,
        subject: Principal,
        action: str,
        resource: Resource | str,
        context: Mapping[str, Any] | None = None,
    ) -> Decision:
        """:meth:`authorize` without awaiting (the decision is in memory; the audit record is queued)."""
        if not isinstance(subject, Principal):
            raise TypeError(f"subject must be a Principal (from verify_token), not {type(subject).__name__}")
        if isinstance(resource, str):
            kind, _, ident = resource.partition("/")
            resource = Resource(kind, ident)
        context = dict(context or {})
        cutoff = self.verifier.not_before.get(subject.id)
        issued = subject.claims.get("iat")
        if cutoff is not None and (not isinstance(issued, int | float) or issued < cutoff):
            decision = Decision(False, "denied: the subject's sessions were ended or it was disabled")
        else:
            decision = self.policy.decide(subject, action, resource, context)
        self.audit_log.record(
            "authz",
            "allow" if decision.allowed else "deny",
            principal=subject.name,
            action=action,
            resource=str(resource),
            reason=decision.reason,
            request_id=str(context.get("request_id", "")),
            ip=str(context.get("ip", "")),
        )
        return decision

    async def authorize(
        self,
        subject: Principal,
        action: str,
        resource: Resource | str,
        context: Mapping[str, Any] | None = None,
    ) -> Decision:
        """May ``subject`` do ``action`` on ``resource``? Deny by default; the Decision says why.

        ``context`` may carry ``ip``, ``time`` (datetime or epoch seconds; default now) and
        ``request_id`` (recorded in the audit log). A principal whose sessions were ended after its
        token was issued is denied.
        """
        return self.authorize_now(subject, action, resource, context)

    async def audit(self, **filters: Any) -> list[dict[str, Any]]:
        """Query the audit log (newest first): ``principal``, ``kind``, ``result``, ``request_id``,
        ``since`` (epoch seconds), ``limit``."""
        return await self.audit_log.query(**filters)

    # ---- WebRTC ---------------------------------------------------------------------------------

    def turn_credentials(self, principal: Principal, ttl: int | None = None) -> dict[str, Any]:
        """Short-lived TURN credentials for ``principal`` (TURN REST API scheme, user = principal id)."""
        return turn_credentials(
            self._turn_secret,
            principal.id,
            ttl=int(ttl or self.settings.turn_ttl),
            now=self.clock(),
            uris=list(self.settings.turn_uris),
        )

    async def turn_shared_secret(self) -> bytes:
        """The shared secret to configure on the TURN server (``static-auth-secret`` in coturn)."""
        return self._turn_secret

    # ---- OAuth clients and codes (used by the OAuth provider in oauth.py) ------------------------

    async def register_client(
        self,
        client_id: str,
        *,
        name: str = "",
        redirect_uris: Iterable[str] = (),
        grant_types: Iterable[str] = ("authorization_code", "refresh_token"),
        scope: str = "openid profile",
        public: bool = False,
        service: str | None = None,
        id_token_signed_response_alg: str = RS256,
    ) -> str | None:
        """Register an OAuth client; returns its secret (shown once), None for a public client.

        ``service`` names the service identity that ``client_credentials`` tokens stand for;
        ``id_token_signed_response_alg`` (OpenID Connect client metadata) how its ID tokens are
        signed: ``RS256`` (the default every OpenID Connect client supports) or ``ES256``.

        Raises:
            ValueError: malformed id, redirect URI (absolute http(s), no fragment), grant type, a
                public client with client_credentials, an ID token algorithm other than RS256 or
                ES256, or an id already taken.
        """
        check_name(client_id, "client")
        if id_token_signed_response_alg not in ID_TOKEN_ALGORITHMS:
            raise ValueError(
                f"client {client_id!r}: ID tokens are signed with one of {list(ID_TOKEN_ALGORITHMS)}, "
                f"not {id_token_signed_response_alg!r}"
            )
        uris = list(redirect_uris)
        for uri in uris:
            if not isinstance(uri, str) or not uri.startswith(("https://", "http://")) or "#" in uri:
                raise ValueError(
                    f"client {client_id!r}: redirect URI {uri!r} must be absolute http(s), no fragment"
                )
        grants = list(grant_types)
        unknown = set(grants) - set(GRANT_TYPES)
        if unknown:
            raise ValueError(
                f"client {client_id!r}: unknown grant types {sorted(unknown)}; known {GRANT_TYPES}"
            )
        if "authorization_code" in grants and not uris:
            raise ValueError(f"client {client_id!r}: the authorization_code grant needs a redirect URI")
        principal_id = None
        if "client_credentials" in grants:
            if public:
                raise ValueError(f"client {client_id!r}: a public client cannot use client_credentials")
            if service is None:
                raise ValueError(f"client {client_id!r}: client_credentials needs service= (its identity)")
            row = await self._row(service)
            if row["kind"] != "service":
                raise ValueError(f"client {client_id!r}: {service!r} is not a service identity")
            principal_id = row["id"]
        secret = None if public else secrets.token_urlsafe(32)
        created = await self.store.create_client(
            client_id,
            digest(secret) if secret else None,
            name or client_id,
            uris,
            grants,
            scope,
            principal_id,
            id_token_signed_response_alg,
        )
        if not created:
            raise ValueError(f"an OAuth client {client_id!r} exists already")
        self.audit_log.record("admin", "success", action="register_client", resource=f"client/{client_id}")
        return secret

    async def client(self, client_id: str) -> dict[str, Any]:
        record = await self.store.client(client_id) if isinstance(client_id, str) else None
        if record is None:
            raise UnknownClient(str(client_id))
        return record

    # ---- federation -----------------------------------------------------------------------------

    async def add_federation_provider(
        self,
        name: str,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        scope: str = "openid profile",
        create_users: bool = True,
    ) -> None:
        """Trust an external OIDC provider for login. Its client secret is kept in aria_security."""
        check_name(name, "provider")
        if not issuer.startswith(("https://", "http://")):
            raise ValueError(f"provider {name!r}: issuer {issuer!r} must be an http(s) URL")
        if "openid" not in scope.split():
            raise ValueError(f"provider {name!r}: scope {scope!r} must include 'openid'")
        await self.secrets.put_secret(f"federation/{name}", {"client_secret": client_secret})
        await self.store.put_provider(name, issuer.rstrip("/"), client_id, scope, create_users)
        self._provider_cache.pop(name, None)
        self.audit_log.record(
            "admin", "success", action="add_federation_provider", resource=f"provider/{name}"
        )

    async def _provider(self, name: str, http: httpx.AsyncClient) -> dict[str, Any]:
        cached = self._provider_cache.get(name)
        if cached is not None and cached["fetched"] > self.clock() - 3600:
            return cached
        record = await self.store.provider(name) if isinstance(name, str) else None
        if record is None:
            raise KeyError(f"no federation provider named {name!r}")
        try:
            response = await http.get(f"{record['issuer']}/.well-known/openid-configuration")
            response.raise_for_status()
            discovery = response.json()
            jwks_response = await http.get(discovery["jwks_uri"])
            jwks_response.raise_for_status()
            keys = KeySet.import_key_set(jwks_response.json())
        except (httpx.HTTPError, ValueError, KeyError, JoseError) as exc:
            raise AuthUnavailable(
                f"federation provider {name!r} at {record['issuer']} is unusable: {exc}"
            ) from exc
        if discovery.get("issuer", "").rstrip("/") != record["issuer"]:
            raise AuthUnavailable(
                f"federation provider {name!r}: discovery names issuer {discovery.get('issuer')!r}, "
                f"not {record['issuer']!r}"
            )
        provider = {**record, "discovery": discovery, "keys": keys, "fetched": self.clock()}
        self._provider_cache[name] = provider
        return provider

    async def federation_start(self, name: str, redirect_uri: str, http: httpx.AsyncClient) -> str:
        """The URL to send the browser to: the provider's authorization endpoint with state, nonce
        and a PKCE challenge (all remembered here for the callback)."""
        provider = await self._provider(name, http)
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(16)
        verifier = secrets.token_urlsafe(48)
        challenge = b64url(hashlib.sha256(verifier.encode()).digest())
        await self.store.save_state(digest(state), name, nonce, verifier, self.clock() + 600)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": provider["client_id"],
                "redirect_uri": redirect_uri,
                "scope": provider["scope"],
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{provider['discovery']['authorization_endpoint']}?{query}"

    async def federation_finish(
        self,
        name: str,
        *,
        code: str,
        state: str,
        redirect_uri: str,
        http: httpx.AsyncClient,
        ip: str = "",
        request_id: str = "",
    ) -> TokenSet:
        """Complete a federated login: check the state, exchange the code, verify the ID token
        (issuer, audience, expiry, nonce, signature against the provider's JWKS), map the external
        subject to a local user (creating one if the provider allows it) and issue our tokens.

        Raises:
            InvalidCredentials: unknown or expired state, refused code, or an ID token that fails.
        """
        audit = {"kind": "authn", "action": f"federated_login:{name}", "request_id": request_id, "ip": ip}
        provider = await self._provider(name, http)
        saved = await self.store.take_state(digest(state or ""), name, self.clock()) if state else None
        if saved is None:
            self.audit_log.record(result="failure", reason="unknown or expired state", **audit)
            raise InvalidCredentials("federated login failed")
        secret = (await self.secrets.get_secret(f"federation/{name}"))["client_secret"]
        try:
            response = await http.post(
                provider["discovery"]["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": saved["code_verifier"],
                },
                auth=(provider["client_id"], secret),
            )
        except httpx.HTTPError as exc:
            raise AuthUnavailable(f"federation provider {name!r} did not answer: {exc}") from exc
        if response.status_code != 200:
            self.audit_log.record(result="failure", reason=f"code refused: {response.text[:200]}", **audit)
            raise InvalidCredentials("federated login failed")
        id_token = response.json().get("id_token", "")
        try:
            decoded = jose_jwt.decode(id_token, provider["keys"], algorithms=["ES256", "RS256", "EdDSA"])
            claims = decoded.claims
            registry = jose_jwt.JWTClaimsRegistry(
                now=lambda: int(self.clock()),
                leeway=int(self.settings.clock_leeway),
                iss={"essential": True, "value": provider["issuer"]},
                aud={"essential": True, "value": provider["client_id"]},
                exp={"essential": True},
                sub={"essential": True},
                nonce={"essential": True, "value": saved["nonce"]},
            )
            registry.validate(claims)
        except (JoseError, ValueError) as exc:
            self.audit_log.record(result="failure", reason=f"ID token rejected: {exc}", **audit)
            raise InvalidCredentials("federated login failed") from None
        subject = str(claims["sub"])
        principal_id = await self.store.linked_principal(name, subject)
        if principal_id is None:
            if not provider["create_users"]:
                self.audit_log.record(result="failure", reason=f"no local user for {subject}", **audit)
                raise InvalidCredentials("federated login failed")
            local_name = f"{name}:{claims.get('preferred_username') or subject}"
            row = await self.store.create_principal("user", local_name, "", None, {"federated": name})
            if row is None:
                row = await self.store.create_principal(
                    "user", f"{name}:{subject}", "", None, {"federated": name}
                )
            if row is None:
                raise InvalidCredentials("federated login failed")
            await self.store.link(name, subject, row["id"])
        else:
            row = await self.store.principal_by_id(principal_id)
        if row is None or row["disabled"]:
            self.audit_log.record(result="failure", reason="local user disabled", **audit)
            raise InvalidCredentials("federated login failed")
        roles = await self.store.roles_of(row["id"])
        upstream_amr = [str(m) for m in claims.get("amr", [])] if isinstance(claims.get("amr"), list) else []
        amr = ["fed", *(m for m in upstream_amr if m in {"otp", "mfa"})]
        self.audit_log.record(
            result="success", principal=row["name"], reason=f"via {name} ({subject})", **audit
        )
        return await self.issue_tokens(row, roles, amr=amr, client_id="", scope="", auth_time=self.clock())


def random_request_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(9)).decode()
