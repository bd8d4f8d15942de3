"""aria_auth's SQL, in one place (tables in ``migrations/001_auth.sql``).

Every statement runs on CockroachDB 22.1 and PostgreSQL 15. Times are passed in from the service's
clock rather than taken from ``now()`` where they decide something (lockouts, expiries), so one clock
rules every decision. JSONB values go in and out as JSON text.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from aria.apps.data.api import UniqueViolation


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _record(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    out = dict(row)
    for key, value in out.items():
        if isinstance(value, uuid.UUID):
            out[key] = str(value)
        elif key in {
            "attributes",
            "permissions",
            "redirect_uris",
            "grant_types",
            "amr",
            "details",
        } and isinstance(value, str):
            out[key] = json.loads(value)
    return out


def _records(rows: Iterable[Any]) -> list[dict[str, Any]]:
    return [r for r in (_record(row) for row in rows) if r is not None]


_PRINCIPAL = (
    "id, kind, name, tenant, password_hash, disabled, failed_logins, locked_until, totp_secret, "
    "totp_confirmed, totp_last_step, attributes, sessions_not_before, created_at"
)


class Store:
    """The tables of aria_auth over aria_data's API (``db`` is its ``Database`` or a reference)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    # ---- principals -----------------------------------------------------------------------------

    async def create_principal(
        self, kind: str, name: str, tenant: str, password_hash: str | None, attributes: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The new principal, or None if the name is taken."""
        try:
            row = await self.db.fetchrow(
                f"INSERT INTO auth_principals (kind, name, tenant, password_hash, attributes) "
                f"VALUES ($1, $2, $3, $4, $5::JSONB) RETURNING {_PRINCIPAL}",
                kind,
                name,
                tenant,
                password_hash,
                json.dumps(attributes),
            )
        except UniqueViolation:
            return None
        return _record(row)

    async def principal_by_name(self, name: str) -> dict[str, Any] | None:
        return _record(
            await self.db.fetchrow(f"SELECT {_PRINCIPAL} FROM auth_principals WHERE name = $1", name)
        )

    async def principal_by_id(self, principal_id: str) -> dict[str, Any] | None:
        key = _uuid(principal_id)
        if key is None:
            return None
        return _record(await self.db.fetchrow(f"SELECT {_PRINCIPAL} FROM auth_principals WHERE id = $1", key))

    async def list_principals(self, kind: str | None = None) -> list[dict[str, Any]]:
        if kind is None:
            rows = await self.db.fetch(f"SELECT {_PRINCIPAL} FROM auth_principals ORDER BY name")
        else:
            rows = await self.db.fetch(
                f"SELECT {_PRINCIPAL} FROM auth_principals WHERE kind = $1 ORDER BY name", kind
            )
        return _records(rows)

    async def ensure_services(self, names: Sequence[str]) -> None:
        await self.db.executemany(
            "INSERT INTO auth_principals (kind, name) VALUES ('service', $1) ON CONFLICT (name) DO NOTHING",
            [(name,) for name in names],
        )

    async def set_password_hash(self, principal_id: str, password_hash: str) -> None:
        await self.db.execute(
            "UPDATE auth_principals SET password_hash = $2, failed_logins = 0, locked_until = NULL, "
            "updated_at = now() WHERE id = $1",
            _uuid(principal_id),
            password_hash,
        )

    async def set_disabled(self, principal_id: str, disabled: bool, now: float) -> None:
        await self.db.execute(
            "UPDATE auth_principals SET disabled = $2, updated_at = now(), "
            "sessions_not_before = CASE WHEN $2 THEN $3 ELSE sessions_not_before END WHERE id = $1",
            _uuid(principal_id),
            disabled,
            at(now),
        )

    async def end_sessions(self, principal_id: str, now: float) -> None:
        await self.db.execute(
            "UPDATE auth_principals SET sessions_not_before = $2 WHERE id = $1", _uuid(principal_id), at(now)
        )

    async def sessions_cutoffs(self) -> dict[str, float]:
        rows = await self.db.fetch(
            "SELECT id, sessions_not_before FROM auth_principals WHERE sessions_not_before IS NOT NULL"
        )
        return {str(r["id"]): r["sessions_not_before"].timestamp() for r in rows}

    async def record_login_failure(
        self, principal_id: str, now: float, max_failures: int, lockout: float
    ) -> float | None:
        """Count a failure; locks the account when it reaches ``max_failures``. Returns the lock's end."""

        async def body(tx: Any) -> float | None:
            row = await tx.fetchrow(
                "UPDATE auth_principals SET failed_logins = failed_logins + 1 WHERE id = $1 "
                "RETURNING failed_logins",
                _uuid(principal_id),
            )
            if row is None or row["failed_logins"] < max_failures:
                return None
            await tx.execute(
                "UPDATE auth_principals SET failed_logins = 0, locked_until = $2 WHERE id = $1",
                _uuid(principal_id),
                at(now + lockout),
            )
            return now + lockout

        result: float | None = await self.db.transact(body)
        return result

    async def reset_login_failures(self, principal_id: str) -> None:
        await self.db.execute(
            "UPDATE auth_principals SET failed_logins = 0, locked_until = NULL "
            "WHERE id = $1 AND (failed_logins <> 0 OR locked_until IS NOT NULL)",
            _uuid(principal_id),
        )

    # ---- TOTP and recovery codes ----------------------------------------------------------------

    async def set_totp(self, principal_id: str, encrypted_secret: str | None, confirmed: bool) -> None:
        await self.db.execute(
            "UPDATE auth_principals SET totp_secret = $2, totp_confirmed = $3, totp_last_step = 0 "
            "WHERE id = $1",
            _uuid(principal_id),
            encrypted_secret,
            confirmed,
        )

    async def claim_totp_step(self, principal_id: str, step: int) -> bool:
        """Record ``step`` as used; False when it (or a later one) already was: a replay."""
        row = await self.db.fetchrow(
            "UPDATE auth_principals SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2 "
            "RETURNING id",
            _uuid(principal_id),
            step,
        )
        return row is not None

    async def replace_recovery_codes(self, principal_id: str, hashes: Sequence[str]) -> None:
        async def body(tx: Any) -> None:
            await tx.execute("DELETE FROM auth_recovery_codes WHERE principal_id = $1", _uuid(principal_id))
            for code_hash in hashes:
                await tx.execute(
                    "INSERT INTO auth_recovery_codes (principal_id, code_hash) VALUES ($1, $2)",
                    _uuid(principal_id),
                    code_hash,
                )

        await self.db.transact(body)

    async def use_recovery_code(self, principal_id: str, code_hash: str, now: float) -> bool:
        row = await self.db.fetchrow(
            "UPDATE auth_recovery_codes SET used_at = $3 WHERE principal_id = $1 AND code_hash = $2 "
            "AND used_at IS NULL RETURNING code_hash",
            _uuid(principal_id),
            code_hash,
            at(now),
        )
        return row is not None

    async def recovery_codes_left(self, principal_id: str) -> int:
        return int(
            await self.db.fetchval(
                "SELECT count(*) FROM auth_recovery_codes WHERE principal_id = $1 AND used_at IS NULL",
                _uuid(principal_id),
            )
        )

    # ---- roles and groups -----------------------------------------------------------------------

    async def put_role(self, name: str, permissions: list[Any], require_mfa: bool, description: str) -> None:
        await self.db.execute(
            "INSERT INTO auth_roles (name, permissions, require_mfa, description) "
            "VALUES ($1, $2::JSONB, $3, $4) "
            "ON CONFLICT (name) DO UPDATE SET permissions = excluded.permissions, "
            "require_mfa = excluded.require_mfa, description = excluded.description, updated_at = now()",
            name,
            json.dumps(permissions),
            require_mfa,
            description,
        )

    async def insert_role_if_missing(
        self, name: str, permissions: list[Any], require_mfa: bool, description: str
    ) -> None:
        await self.db.execute(
            "INSERT INTO auth_roles (name, permissions, require_mfa, description) "
            "VALUES ($1, $2::JSONB, $3, $4) "
            "ON CONFLICT (name) DO NOTHING",
            name,
            json.dumps(permissions),
            require_mfa,
            description,
        )

    async def delete_role(self, name: str) -> bool:
        return (
            await self.db.fetchrow("DELETE FROM auth_roles WHERE name = $1 RETURNING name", name) is not None
        )

    async def roles(self) -> list[dict[str, Any]]:
        return _records(
            await self.db.fetch(
                "SELECT name, permissions, require_mfa, description FROM auth_roles ORDER BY name"
            )
        )

    async def bind_role(self, role: str, subject_kind: str, subject: str) -> None:
        await self.db.execute(
            "INSERT INTO auth_role_bindings (role_name, subject_kind, subject) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING",
            role,
            subject_kind,
            subject,
        )

    async def unbind_role(self, role: str, subject_kind: str, subject: str) -> bool:
        row = await self.db.fetchrow(
            "DELETE FROM auth_role_bindings WHERE role_name = $1 AND subject_kind = $2 AND subject = $3 "
            "RETURNING role_name",
            role,
            subject_kind,
            subject,
        )
        return row is not None

    async def roles_of(self, principal_id: str) -> list[str]:
        """Roles bound to the principal directly or through its groups."""
        rows = await self.db.fetch(
            "SELECT role_name FROM auth_role_bindings WHERE subject_kind = 'principal' AND subject = $1 "
            "UNION SELECT b.role_name FROM auth_role_bindings b JOIN auth_group_members m "
            "ON b.subject_kind = 'group' AND b.subject = m.group_name WHERE m.principal_id = $2",
            str(principal_id),
            _uuid(principal_id),
        )
        return sorted(r["role_name"] for r in rows)

    async def create_group(self, name: str, description: str) -> bool:
        try:
            await self.db.execute(
                "INSERT INTO auth_groups (name, description) VALUES ($1, $2)", name, description
            )
        except UniqueViolation:
            return False
        return True

    async def group_exists(self, name: str) -> bool:
        return await self.db.fetchrow("SELECT name FROM auth_groups WHERE name = $1", name) is not None

    async def add_member(self, group: str, principal_id: str) -> None:
        await self.db.execute(
            "INSERT INTO auth_group_members (group_name, principal_id) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING",
            group,
            _uuid(principal_id),
        )

    async def remove_member(self, group: str, principal_id: str) -> bool:
        row = await self.db.fetchrow(
            "DELETE FROM auth_group_members WHERE group_name = $1 AND principal_id = $2 RETURNING group_name",
            group,
            _uuid(principal_id),
        )
        return row is not None

    async def groups_of(self, principal_id: str) -> list[str]:
        rows = await self.db.fetch(
            "SELECT group_name FROM auth_group_members WHERE principal_id = $1 ORDER BY group_name",
            _uuid(principal_id),
        )
        return [r["group_name"] for r in rows]

    # ---- OAuth clients and authorization codes --------------------------------------------------

    async def create_client(
        self,
        client_id: str,
        secret_hash: str | None,
        name: str,
        redirect_uris: list[str],
        grant_types: list[str],
        scope: str,
        principal_id: str | None,
        id_token_alg: str,
    ) -> bool:
        try:
            await self.db.execute(
                "INSERT INTO auth_clients (client_id, secret_hash, name, redirect_uris, grant_types, scope, "
                "principal_id, id_token_signed_response_alg) "
                "VALUES ($1, $2, $3, $4::JSONB, $5::JSONB, $6, $7, $8)",
                client_id,
                secret_hash,
                name,
                json.dumps(redirect_uris),
                json.dumps(grant_types),
                scope,
                _uuid(principal_id) if principal_id else None,
                id_token_alg,
            )
        except UniqueViolation:
            return False
        return True

    async def client(self, client_id: str) -> dict[str, Any] | None:
        return _record(
            await self.db.fetchrow(
                "SELECT client_id, secret_hash, name, redirect_uris, grant_types, scope, principal_id, "
                "id_token_signed_response_alg FROM auth_clients WHERE client_id = $1",
                client_id,
            )
        )

    async def save_code(self, code_hash: str, values: dict[str, Any], expires_at: float) -> None:
        await self.db.execute(
            "INSERT INTO auth_codes (code_hash, client_id, principal_id, redirect_uri, scope, nonce, "
            "code_challenge, code_challenge_method, auth_time, amr, expires_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::JSONB, $11)",
            code_hash,
            values["client_id"],
            _uuid(values["principal_id"]),
            values["redirect_uri"],
            values["scope"],
            values["nonce"],
            values["code_challenge"],
            values["code_challenge_method"],
            int(values["auth_time"]),
            json.dumps(values["amr"]),
            at(expires_at),
        )

    async def take_code(self, code_hash: str, client_id: str, now: float) -> dict[str, Any] | None:
        """The code's record, deleted as it is read: a code is good for one attempt, right or wrong."""
        row = await self.db.fetchrow(
            "DELETE FROM auth_codes WHERE code_hash = $1 RETURNING client_id, principal_id, redirect_uri, "
            "scope, nonce, code_challenge, code_challenge_method, auth_time, amr, expires_at",
            code_hash,
        )
        record = _record(row)
        if record is None or record["client_id"] != client_id or record["expires_at"].timestamp() < now:
            return None
        return record

    # ---- refresh tokens and the revocation list -------------------------------------------------

    async def insert_refresh(self, token_hash: str, family: str, values: dict[str, Any]) -> None:
        await self.db.execute(
            "INSERT INTO auth_refresh_tokens (token_hash, family_id, principal_id, client_id, scope, amr, "
            "auth_time, access_jti, access_expires_at, expires_at) "
            "VALUES ($1, $2, $3, $4, $5, $6::JSONB, $7, $8, $9, $10)",
            token_hash,
            _uuid(family),
            _uuid(values["principal_id"]),
            values["client_id"],
            values["scope"],
            json.dumps(values["amr"]),
            int(values["auth_time"]),
            values["access_jti"],
            at(values["access_expires_at"]),
            at(values["expires_at"]),
        )

    async def use_refresh(self, token_hash: str, now: float) -> dict[str, Any] | None:
        """Mark a live refresh token used and return it; None when it is unknown, used, revoked or
        expired (see :meth:`refresh_by_hash` to tell which)."""
        return _record(
            await self.db.fetchrow(
                "UPDATE auth_refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL "
                "AND revoked_at IS NULL AND expires_at > $2 "
                "RETURNING id, family_id, principal_id, client_id, "
                "scope, amr, auth_time, access_jti",
                token_hash,
                at(now),
            )
        )

    async def refresh_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        return _record(
            await self.db.fetchrow(
                "SELECT id, family_id, principal_id, client_id, scope, amr, auth_time, access_jti, "
                "expires_at, "
                "used_at, revoked_at FROM auth_refresh_tokens WHERE token_hash = $1",
                token_hash,
            )
        )

    async def revoke_family(self, family: str, reason: str, now: float) -> list[tuple[str, float]]:
        """Revoke every refresh token of the family; returns the (jti, expiry) of access tokens issued
        with it that have not expired yet, for the revocation list."""
        rows = await self.db.fetch(
            "UPDATE auth_refresh_tokens SET revoked_at = $2, revoked_reason = $3 WHERE family_id = $1 "
            "AND revoked_at IS NULL RETURNING access_jti, access_expires_at",
            _uuid(family),
            at(now),
            reason,
        )
        return [
            (r["access_jti"], r["access_expires_at"].timestamp())
            for r in rows
            if r["access_jti"] and r["access_expires_at"] and r["access_expires_at"].timestamp() > now
        ]

    async def families_of(self, principal_id: str) -> list[str]:
        rows = await self.db.fetch(
            "SELECT DISTINCT family_id FROM auth_refresh_tokens "
            "WHERE principal_id = $1 AND revoked_at IS NULL",
            _uuid(principal_id),
        )
        return [str(r["family_id"]) for r in rows]

    async def revoke_jti(self, jti: str, expires_at: float, reason: str, now: float) -> None:
        await self.db.execute(
            "INSERT INTO auth_revoked_tokens (jti, expires_at, revoked_at, reason) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (jti) DO NOTHING",
            jti,
            at(expires_at),
            at(now),
            reason,
        )

    async def revoked_jtis(self, now: float) -> set[str]:
        rows = await self.db.fetch("SELECT jti FROM auth_revoked_tokens WHERE expires_at > $1", at(now - 300))
        return {r["jti"] for r in rows}

    async def prune(self, now: float, audit_retention: float = 0.0) -> None:
        """Forget what can no longer matter: expired revocations, codes, states and refresh tokens,
        and audit records older than ``audit_retention`` seconds (0: keep them)."""
        if audit_retention > 0:
            await self.db.execute("DELETE FROM auth_audit WHERE at < $1", at(now - audit_retention))
        cutoff = at(now - 300)
        await self.db.execute("DELETE FROM auth_revoked_tokens WHERE expires_at < $1", cutoff)
        await self.db.execute("DELETE FROM auth_codes WHERE expires_at < $1", cutoff)
        await self.db.execute("DELETE FROM auth_federation_states WHERE expires_at < $1", cutoff)
        await self.db.execute("DELETE FROM auth_refresh_tokens WHERE expires_at < $1", cutoff)

    # ---- API tokens -----------------------------------------------------------------------------

    async def insert_api_token(
        self, token_hash: str, principal_id: str, name: str, scope: str, expires_at: float | None
    ) -> str:
        row = await self.db.fetchrow(
            "INSERT INTO auth_api_tokens (token_hash, principal_id, name, scope, expires_at) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id",
            token_hash,
            _uuid(principal_id),
            name,
            scope,
            at(expires_at) if expires_at is not None else None,
        )
        return str(row["id"])

    async def api_token(self, token_hash: str) -> dict[str, Any] | None:
        return _record(
            await self.db.fetchrow(
                "SELECT id, principal_id, name, scope, expires_at, revoked_at FROM auth_api_tokens "
                "WHERE token_hash = $1",
                token_hash,
            )
        )

    async def revoke_api_token(self, token_id: str, now: float) -> bool:
        key = _uuid(token_id)
        if key is None:
            return False
        row = await self.db.fetchrow(
            "UPDATE auth_api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING id",
            key,
            at(now),
        )
        return row is not None

    # ---- federation -----------------------------------------------------------------------------

    async def put_provider(
        self, name: str, issuer: str, client_id: str, scope: str, create_users: bool
    ) -> None:
        await self.db.execute(
            "INSERT INTO auth_federation_providers (name, issuer, client_id, scope, create_users) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET issuer = excluded.issuer, "
            "client_id = excluded.client_id, scope = excluded.scope, create_users = excluded.create_users",
            name,
            issuer,
            client_id,
            scope,
            create_users,
        )

    async def provider(self, name: str) -> dict[str, Any] | None:
        return _record(
            await self.db.fetchrow(
                "SELECT name, issuer, client_id, scope, create_users FROM auth_federation_providers "
                "WHERE name = $1",
                name,
            )
        )

    async def save_state(
        self, state_hash: str, provider: str, nonce: str, verifier: str, expires_at: float
    ) -> None:
        await self.db.execute(
            "INSERT INTO auth_federation_states (state_hash, provider, nonce, code_verifier, expires_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            state_hash,
            provider,
            nonce,
            verifier,
            at(expires_at),
        )

    async def take_state(self, state_hash: str, provider: str, now: float) -> dict[str, Any] | None:
        record = _record(
            await self.db.fetchrow(
                "DELETE FROM auth_federation_states WHERE state_hash = $1 RETURNING provider, nonce, "
                "code_verifier, expires_at",
                state_hash,
            )
        )
        if record is None or record["provider"] != provider or record["expires_at"].timestamp() < now:
            return None
        return record

    async def linked_principal(self, provider: str, subject: str) -> str | None:
        value = await self.db.fetchval(
            "SELECT principal_id FROM auth_federation_links WHERE provider = $1 AND subject = $2",
            provider,
            subject,
        )
        return str(value) if value is not None else None

    async def link(self, provider: str, subject: str, principal_id: str) -> None:
        await self.db.execute(
            "INSERT INTO auth_federation_links (provider, subject, principal_id) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING",
            provider,
            subject,
            _uuid(principal_id),
        )

    # ---- audit ----------------------------------------------------------------------------------

    async def insert_audit(self, records: Sequence[dict[str, Any]]) -> None:
        await self.db.executemany(
            "INSERT INTO auth_audit (at, kind, principal, action, resource, result, reason, request_id, ip, "
            "details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::JSONB)",
            [
                (
                    at(r["at"]),
                    r["kind"],
                    r["principal"],
                    r["action"],
                    r["resource"],
                    r["result"],
                    r["reason"],
                    r["request_id"],
                    r["ip"],
                    json.dumps(r["details"], default=str),
                )
                for r in records
            ],
        )

    async def query_audit(
        self,
        *,
        principal: str | None,
        kind: str | None,
        result: str | None,
        request_id: str | None,
        since: float | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        clauses, args = [], []
        for column, value in (
            ("principal", principal),
            ("kind", kind),
            ("result", result),
            ("request_id", request_id),
        ):
            if value is not None:
                args.append(value)
                clauses.append(f"{column} = ${len(args)}")
        if since is not None:
            args.append(at(since))
            clauses.append(f"at >= ${len(args)}")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        args.append(limit)
        rows = await self.db.fetch(
            "SELECT at, kind, principal, action, resource, result, reason, request_id, ip, details "
            f"FROM auth_audit {where} ORDER BY at DESC, id LIMIT ${len(args)}",
            *args,
        )
        return _records(rows)
